// Service invocation over HTTP (contract §2.1): /v1.0/invoke/{appId}/method/{method...} for every
// verb, and any path carrying `dapr-app-id` (every request no other route takes ends here, as
// daprd's fallback route does).

#include <algorithm>
#include <cctype>

#include "api/http/call.h"
#include "api/http/routes.h"
#include "blocks/invocation/invocation_block.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/http/client.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/errors.h"

namespace remora::runtime::http {

using errors::Code;
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The segments were unescaped by the router; the app must receive a valid request target again,
// so what RFC 3986 does not allow in a path segment is escaped back.
void AppendEscaped(std::string* out, std::string_view segment) {
  StrAppend(out, remora::http::PercentEncode(segment, "!$&'()*+,;=:@"));
}

std::string MethodFrom(const std::vector<std::string>& segments, size_t from) {
  std::string out;
  for (size_t i = from; i < segments.size(); ++i) {
    if (i > from) out.push_back('/');
    AppendEscaped(&out, segments[i]);
  }
  return out;
}

}  // namespace

void DaprHttpApi::Fallback(Call& call) {
  const auto& s = call.segments;
  std::string app_id;
  std::string method;
  // The header wins over the URL (and then the whole path is the method).
  if (auto it = call.request.find("dapr-app-id"); it != call.request.end()) {
    app_id = std::string(it->value());
    method = MethodFrom(s, 0);
  } else if (s.size() >= 4 && s[0] == "v1.0" && s[1] == "invoke" && s[3] == "method") {
    app_id = s[2];
    method = MethodFrom(s, 4);
  }
  if (app_id.empty()) {
    return std::move(call.responder)
        .Error(errors::Make(Code::kDirectInvokeNoAppId,
                            "failed getting app id either from the URL path or the header "
                            "dapr-app-id"));
  }
  if (blocks_.invocation == nullptr) {
    return std::move(call.responder)
        .Error(InvokeError(app_id, "service invocation is not available in this build"));
  }
  InvokeRequest request;
  request.method = std::move(method);
  request.verb = std::string(call.request.method_string());
  request.query = std::move(call.query.raw);
  request.data = std::move(call.request.body());
  request.headers.reserve(8);
  for (const auto& field : call.request) {
    std::string name = Lower(field.name_string());
    if (name == "content-type") {
      request.content_type = std::string(field.value());
      continue;
    }
    if (name == "dapr-app-id" || name == "dapr-api-token") continue;
    request.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  blocks_.invocation->Invoke(
      std::move(app_id), std::move(request),
      [r = std::move(call.responder)](absl::StatusOr<InvokeResponse> result) mutable {
        if (!result.ok()) return std::move(r).Error(result.status());
        Response res{beast_http::status::ok, r.version()};
        if (result->grpc_code != 0) {
          // A gRPC app's error: the HTTP status from its code, the status as JSON (contract §2.1).
          res.result(errors::HttpStatusFromGrpc(static_cast<absl::StatusCode>(result->grpc_code)));
          res.set(beast_http::field::content_type, "application/json");
          res.body() = nlohmann::json{{"code", result->grpc_code},
                                      {"message", result->grpc_message},
                                      {"details", nlohmann::json::array()}}
                           .dump(-1, ' ', false, kDump);
          return std::move(r).Send(std::move(res));
        }
        res.result(static_cast<unsigned>(result->http_status));
        for (auto& [name, value] : result->headers) res.insert(name, value);
        if (!result->content_type.empty()) {
          res.set(beast_http::field::content_type, result->content_type);
        }
        res.body() = std::move(result->data);
        std::move(r).Send(std::move(res));
      });
}

}  // namespace remora::runtime::http
