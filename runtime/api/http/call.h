#pragma once

// Internal to the HTTP API: one request being answered, and the parsing helpers every block's
// routes share. routes.cc routes; each block's handlers may live in their own routes_<block>.cc.

#include <atomic>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/http/server.h"
#include "nlohmann/json.hpp"
#include "remora/runtime/errors.h"

namespace remora::runtime::http {

// Invalid UTF-8 in a body is replaced rather than thrown on.
inline constexpr auto kDump = nlohmann::json::error_handler_t::replace;

// Completes one request: renders a body or an error and keeps the in-flight count.
class Responder {
 public:
  Responder(Reply reply, unsigned version, std::atomic<int>* in_flight)
      : reply_(std::move(reply)), version_(version), in_flight_(in_flight) {}
  Responder(Responder&&) = default;

  void Send(Response res) && {
    in_flight_->fetch_sub(1, std::memory_order_relaxed);
    std::move(reply_)(std::move(res));
  }
  // The status through the one error table (errors::ToHttp).
  void Error(const absl::Status& status) && {
    errors::HttpError e = errors::ToHttp(status);
    std::move(*this).Body(e.status, std::move(e.body), "application/json");
  }
  void Body(int status, std::string body, std::string_view content_type) && {
    Response res{static_cast<beast_http::status>(status), version_};
    res.set(beast_http::field::content_type, content_type);
    res.body() = std::move(body);
    std::move(*this).Send(std::move(res));
  }
  void Json(const nlohmann::json& body) && {
    std::move(*this).Body(200, body.dump(-1, ' ', false, kDump), "application/json");
  }
  void NoContent() && { std::move(*this).Send(Response{beast_http::status::no_content, version_}); }
  unsigned version() const { return version_; }

 private:
  Reply reply_;
  unsigned version_;
  std::atomic<int>* in_flight_;
};

// The query string, unescaped.
struct Query {
  std::map<std::string, std::string> metadata;  // metadata.<key>=value, first value wins
  std::map<std::string, std::string> params;    // everything else, first value wins
  std::string raw;                              // as received, without the '?'
  std::string Param(const std::string& key) const {
    auto it = params.find(key);
    return it == params.end() ? "" : it->second;
  }
};

struct Call {
  Request& request;
  Responder responder;
  std::vector<std::string> segments;  // the path, cleaned and unescaped
  Query query;
  beast_http::verb method;
};

// ERR_MALFORMED_REQUEST "failed deserializing HTTP body: <what>".
absl::Status Malformed(std::string_view what);
// Parses a JSON body with the failure as ERR_MALFORMED_REQUEST.
absl::StatusOr<nlohmann::json> ParseBody(const std::string& body);
// An optional JSON object of strings (null is empty) into `out`; `field` names it in errors.
absl::Status ParseStringMap(const nlohmann::json& j, std::string_view field,
                            std::map<std::string, std::string>* out);
// The segments from `from` on, joined with '/' (a topic or method may contain slashes).
std::string JoinFrom(const std::vector<std::string>& segments, size_t from);
// A header's value, "" when absent.
std::string HeaderOf(const Request& request, std::string_view name);

}  // namespace remora::runtime::http
