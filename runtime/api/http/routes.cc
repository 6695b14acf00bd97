#include "api/http/routes.h"

#include "api/http/call.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <vector>

#include "absl/strings/escaping.h"
#include "blocks/metadata/metadata_block.h"
#include "blocks/pubsub/cloudevents.h"
#include "blocks/pubsub/pubsub_block.h"
#include "blocks/secrets/secrets_block.h"
#include "blocks/state/state_block.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "remora/runtime/errors.h"
#include "remora/runtime/log.h"

namespace remora::runtime::http {
namespace {

using errors::Code;
using nlohmann::json;
namespace field = beast_http;

// Percent-decoding; `plus_is_space` for query strings. nullopt on a bad escape.
std::optional<std::string> Unescape(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      if (i + 2 >= in.size()) return std::nullopt;  // a '%' needs two hex digits
      int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool ParseQuery(std::string_view text, Query* query) {
  while (!text.empty()) {
    size_t amp = text.find('&');
    std::string_view pair = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    auto key = Unescape(pair.substr(0, eq), true);
    auto value = Unescape(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!key || !value) return false;
    if (key->starts_with("metadata.")) {
      query->metadata.emplace(key->substr(9), *std::move(value));
    } else {
      query->params.emplace(*std::move(key), *std::move(value));
    }
  }
  return true;
}

// go-chi's view of the path: cleaned (path.Clean), split into unescaped segments.
bool SplitPath(std::string_view path, std::vector<std::string>* segments) {
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view raw = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (raw.empty() || raw == ".") continue;
    if (raw == "..") {
      if (!segments->empty()) segments->pop_back();
      continue;
    }
    auto segment = Unescape(raw, false);
    if (!segment) return false;
    segments->push_back(*std::move(segment));
  }
  return true;
}

bool IsApiVersion(std::string_view v) {
  return v == "v1.0" || v == "v1.0-alpha1" || v == "v1.0-alpha2" || v == "v1.0-beta1";
}

// Dapr validates state options in the component (CheckRequestOptions): an unknown value fails the
// operation with the operation's code.
bool ParseConcurrency(std::string_view text, state::Concurrency* out) {
  if (text.empty())
    *out = state::Concurrency::kUnspecified;
  else if (text == "first-write")
    *out = state::Concurrency::kFirstWrite;
  else if (text == "last-write")
    *out = state::Concurrency::kLastWrite;
  else
    return false;
  return true;
}
bool ParseConsistency(std::string_view text, state::Consistency* out) {
  if (text.empty())
    *out = state::Consistency::kUnspecified;
  else if (text == "eventual")
    *out = state::Consistency::kEventual;
  else if (text == "strong")
    *out = state::Consistency::kStrong;
  else
    return false;
  return true;
}

// One HTTP StateItem: {"key","value","etag","metadata","options":{"concurrency","consistency"}}.
// `op` is the code an invalid option fails with (Dapr reports it from the component).
absl::Status ParseStateItem(const json& j, Code op, std::string* key, std::string* value,
                            std::optional<std::string>* etag, state::RequestMetadata* metadata,
                            state::Options* options) {
  if (!j.is_object()) return Malformed("a state item must be a JSON object");
  auto k = j.find("key");
  if (k == j.end() || k->is_null() ||
      (k->is_string() && k->get_ref<const std::string&>().empty())) {
    return errors::Make(Code::kMalformedRequest, "\"key\" is a required field");
  }
  if (!k->is_string()) return Malformed("\"key\" must be a string");
  *key = k->get<std::string>();
  if (value != nullptr) {
    auto v = j.find("value");
    // The value is stored as its JSON text: a JSON string keeps its quotes (contract §8).
    *value = v == j.end() ? "null" : v->dump(-1, ' ', false, kDump);
  }
  if (auto e = j.find("etag"); e != j.end() && !e->is_null()) {
    if (!e->is_string()) return Malformed("\"etag\" must be a string");
    *etag = e->get<std::string>();
  }
  if (auto m = j.find("metadata"); m != j.end()) {
    if (auto s = ParseStringMap(*m, "metadata", metadata); !s.ok()) return s;
  }
  if (auto o = j.find("options"); o != j.end() && !o->is_null()) {
    if (!o->is_object()) return Malformed("\"options\" must be an object");
    std::string concurrency = o->value("concurrency", "");
    std::string consistency = o->value("consistency", "");
    if (!ParseConcurrency(concurrency, &options->concurrency)) {
      return errors::Make(op, StrCat("unrecognized concurrency model '", concurrency, "'"));
    }
    if (!ParseConsistency(consistency, &options->consistency)) {
      return errors::Make(op, StrCat("unrecognized consistency model '", consistency, "'"));
    }
  }
  return absl::OkStatus();
}

void Overlay(const state::RequestMetadata& from, state::RequestMetadata* to) {
  for (const auto& [k, v] : from) (*to)[k] = v;
}

// Stored bytes as a JSON value for bulk responses: embedded when they are JSON, else a string.
json DataAsJson(const std::string& data) {
  json parsed = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return json(data);
  return parsed;
}

// One bulk publish entry's `event` as the bytes to publish, by its content type (contract §2.3).
absl::StatusOr<std::string> BulkEventBytes(const json& event, std::string_view content_type) {
  std::string media(content_type.substr(0, content_type.find(';')));
  while (!media.empty() && media.back() == ' ') media.pop_back();
  std::transform(media.begin(), media.end(), media.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (media == "application/octet-stream") {
    std::string bytes;
    if (!event.is_string() ||
        !absl::Base64Unescape(Sv(event.get_ref<const std::string&>()), &bytes)) {
      return MakeStatus(absl::StatusCode::kInvalidArgument,
                        "an application/octet-stream event must be a base64 string");
    }
    return bytes;
  }
  if (media.starts_with("text/") || media == "application/xml") {
    if (!event.is_string()) {
      return MakeStatus(absl::StatusCode::kInvalidArgument,
                        StrCat("a ", media, " event must be a string"));
    }
    return event.get<std::string>();
  }
  if (pubsub::IsJsonContentType(media)) return event.dump(-1, ' ', false, kDump);
  return MakeStatus(absl::StatusCode::kInvalidArgument,
                    StrCat("content type \"", content_type, "\" is not supported"));
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

absl::Status Malformed(std::string_view what) {
  return errors::Make(Code::kMalformedRequest, StrCat("failed deserializing HTTP body: ", what));
}

absl::StatusOr<json> ParseBody(const std::string& body) {
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    return Malformed(e.what());
  }
}

absl::Status ParseStringMap(const json& j, std::string_view field,
                            std::map<std::string, std::string>* out) {
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_object()) return Malformed(StrCat("\"", field, "\" must be an object of strings"));
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) return Malformed(StrCat("\"", field, ".", k, "\" must be a string"));
    (*out)[k] = v.get<std::string>();
  }
  return absl::OkStatus();
}

// The segments from `from` on, joined with '/': a topic may contain slashes.
std::string JoinFrom(const std::vector<std::string>& segments, size_t from) {
  std::string out;
  for (size_t i = from; i < segments.size(); ++i) StrAppend(&out, i > from ? "/" : "", segments[i]);
  return out;
}

std::string HeaderOf(const Request& request, std::string_view name) {
  auto it = request.find(name);
  return it == request.end() ? std::string() : std::string(it->value());
}

DaprHttpApi::DaprHttpApi(Blocks blocks, ApiHooks hooks, ApiConfig config)
    : blocks_(blocks),
      state_(*blocks.state),
      metadata_(*blocks.metadata),
      secrets_(*blocks.secrets),
      pubsub_(*blocks.pubsub),
      hooks_(std::move(hooks)),
      config_(std::move(config)) {}

Response DaprHttpApi::TooLarge(unsigned version, uint64_t limit) {
  errors::HttpError e = errors::ToHttp(errors::Make(
      Code::kBodyTooLarge,
      StrCat("request body too large: the limit is ", limit, " bytes (--max-body-size)")));
  Response res{static_cast<beast_http::status>(e.status), version};
  res.set(beast_http::field::content_type, "application/json");
  res.body() = std::move(e.body);
  return res;
}

void DaprHttpApi::Handle(Request& request, Reply reply) {
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  Call call{request,
            Responder(std::move(reply), request.version(), &in_flight_),
            {},
            {},
            request.method()};
  std::string_view target = request.target();
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (!SplitPath(path, &call.segments)) {
    return std::move(call.responder).Body(400, "invalid URL escape in path", "text/plain");
  }
  if (q != std::string_view::npos) call.query.raw = std::string(target.substr(q + 1));
  if (!call.query.raw.empty() && !ParseQuery(call.query.raw, &call.query)) {
    return std::move(call.responder).Body(400, "invalid URL escape in query", "text/plain");
  }
  if (config_.api_logging) {
    log::Info("HTTP API Called: ", request.method_string(), " ", path);
  }
  const auto& s = call.segments;
  bool health = s.size() >= 2 && s[0] == "v1.0" && s[1] == "healthz" &&
                (s.size() == 2 || (s.size() == 3 && s[2] == "outbound"));
  if (!config_.api_token.empty() && !health) {
    auto it = request.find("dapr-api-token");
    if (it == request.end() || !ConstantTimeEquals(it->value(), config_.api_token)) {
      return std::move(call.responder).Body(401, "invalid api token", "text/plain");
    }
    request.erase("dapr-api-token");
  }
  Route(call);
}

void DaprHttpApi::Route(Call& call) {
  const auto& s = call.segments;
  const auto method = call.method;
  const bool post_or_put = method == beast_http::verb::post || method == beast_http::verb::put;
  if (s.size() < 2 || !IsApiVersion(s[0])) return Fallback(call);
  const bool v1 = s[0] == "v1.0";
  const std::string& group = s[1];

  if (v1 && group == "healthz" && method == beast_http::verb::get) {
    if (s.size() == 2) {
      std::string appid = call.query.Param("appid");
      if (!appid.empty() && appid != config_.app_id) {
        return std::move(call.responder)
            .Error(errors::Make(Code::kHealthAppIdNotMatch, "dapr app-id does not match"));
      }
      if (!hooks_.ready()) {
        return std::move(call.responder)
            .Error(errors::Make(Code::kHealthNotReady, "dapr is not ready"));
      }
      return std::move(call.responder).NoContent();
    }
    if (s.size() == 3 && s[2] == "outbound") {
      absl::Status health = hooks_.ready() ? hooks_.outbound_health()
                                           : MakeStatus(absl::StatusCode::kUnavailable,
                                                        "components are not initialized");
      if (!health.ok()) {
        return std::move(call.responder)
            .Error(errors::Make(Code::kOutboundHealthNotReady,
                                StrCat("dapr outbound is not ready: ", MessageOf(health))));
      }
      return std::move(call.responder).NoContent();
    }
  }
  if (v1 && group == "metadata") {
    if (s.size() == 2 && method == beast_http::verb::get) return GetMetadata(call);
    if (s.size() == 3 && method == beast_http::verb::put) {
      metadata_.Set(s[2], std::move(call.request.body()));
      return std::move(call.responder).NoContent();
    }
  }
  if (v1 && group == "shutdown" && s.size() == 2 && method == beast_http::verb::post) {
    auto it = call.request.find("dapr-force-shutdown");
    bool force = it != call.request.end() && it->value() == "true";
    std::move(call.responder).NoContent();
    hooks_.shutdown(force);
    return;
  }
  if (v1 && group == "state" && s.size() >= 3) {
    const std::string& store = s[2];
    if (s.size() == 3 && post_or_put) return SaveState(call, store);
    if (s.size() == 4 && post_or_put && s[3] == "bulk") return BulkGetState(call, store);
    if (s.size() == 4 && post_or_put && s[3] == "transaction") return Transaction(call, store);
    if (s.size() == 4 && method == beast_http::verb::get) return GetState(call, store, s[3]);
    if (s.size() == 4 && method == beast_http::verb::delete_) return DeleteState(call, store, s[3]);
  }
  if (group == "publish" && post_or_put && s.size() >= 3) {
    // go-chi prefers the static bulk route: /publish/bulk/{pubsub}/{topic...}.
    if (s[2] == "bulk" && s.size() >= 5 && (v1 || s[0] == "v1.0-alpha1")) {
      return BulkPublish(call, s[3], JoinFrom(s, 4));
    }
    if (v1) return Publish(call, s[2], JoinFrom(s, 3));
  }
  if (s[0] == "v1.0-alpha1" && s.size() == 3 && method == beast_http::verb::post) {
    if (group == "lock") return TryLock(call, s[2]);
    if (group == "unlock") return Unlock(call, s[2]);
  }
  if (v1 && group == "secrets" && s.size() == 4 && method == beast_http::verb::get) {
    if (s[3] == "bulk") return GetBulkSecret(call, s[2]);
    return GetSecret(call, s[2], s[3]);
  }
  if ((v1 || s[0] == "v1.0-alpha1") && group == "configuration" && s.size() >= 3 &&
      method == beast_http::verb::get) {
    if (s.size() == 3) return GetConfiguration(call, s[2]);
    if (s.size() == 4 && s[3] == "subscribe") return SubscribeConfiguration(call, s[2]);
    if (s.size() == 5 && s[4] == "unsubscribe") return UnsubscribeConfiguration(call, s[2], s[3]);
  }
  Fallback(call);
}

// Fallback (service invocation, every request no route takes) is in routes_invoke.cc.

void DaprHttpApi::GetState(Call& call, std::string_view store, std::string_view key) {
  state::GetRequest request;
  request.key = std::string(key);
  request.metadata = std::move(call.query.metadata);
  std::string consistency = call.query.Param("consistency");
  if (!ParseConsistency(consistency, &request.options.consistency)) {
    return std::move(call.responder)
        .Error(errors::Make(Code::kStateGet,
                            StrCat("unrecognized consistency model '", consistency, "'")));
  }
  state_.Get(store, std::move(request),
             [r = std::move(call.responder)](absl::StatusOr<state::GetResponse> result) mutable {
               if (!result.ok()) return std::move(r).Error(result.status());
               if (!result->found) return std::move(r).NoContent();
               Response res{beast_http::status::ok, r.version()};
               res.set(beast_http::field::content_type, "application/json");
               if (result->etag) res.set(beast_http::field::etag, *result->etag);
               for (const auto& [k, v] : result->metadata) res.set(StrCat("metadata.", k), v);
               res.body() = std::move(result->data);
               std::move(r).Send(std::move(res));
             });
}

void DaprHttpApi::SaveState(Call& call, std::string_view store) {
  auto body = ParseBody(call.request.body());
  if (!body.ok()) return std::move(call.responder).Error(body.status());
  if (!body->is_array()) {
    return std::move(call.responder)
        .Error(Malformed("the body must be a JSON array of state items"));
  }
  std::vector<state::SetRequest> items(body->size());
  for (size_t i = 0; i < body->size(); ++i) {
    auto& item = items[i];
    absl::Status s = ParseStateItem((*body)[i], Code::kStateSave, &item.key, &item.value,
                                    &item.etag, &item.metadata, &item.options);
    if (!s.ok()) return std::move(call.responder).Error(s);
    Overlay(call.query.metadata, &item.metadata);
  }
  state_.Save(store, std::move(items), [r = std::move(call.responder)](absl::Status s) mutable {
    if (!s.ok()) return std::move(r).Error(s);
    std::move(r).NoContent();
  });
}

void DaprHttpApi::DeleteState(Call& call, std::string_view store, std::string_view key) {
  state::DeleteRequest request;
  request.key = std::string(key);
  request.metadata = std::move(call.query.metadata);
  if (auto it = call.request.find(beast_http::field::if_match); it != call.request.end()) {
    request.etag = std::string(it->value());
  }
  std::string concurrency = call.query.Param("concurrency");
  std::string consistency = call.query.Param("consistency");
  if (!ParseConcurrency(concurrency, &request.options.concurrency)) {
    return std::move(call.responder)
        .Error(errors::Make(Code::kStateDelete,
                            StrCat("unrecognized concurrency model '", concurrency, "'")));
  }
  if (!ParseConsistency(consistency, &request.options.consistency)) {
    return std::move(call.responder)
        .Error(errors::Make(Code::kStateDelete,
                            StrCat("unrecognized consistency model '", consistency, "'")));
  }
  state_.Delete(store, std::move(request), [r = std::move(call.responder)](absl::Status s) mutable {
    if (!s.ok()) return std::move(r).Error(s);
    std::move(r).NoContent();
  });
}

void DaprHttpApi::BulkGetState(Call& call, std::string_view store) {
  auto body = ParseBody(call.request.body());
  if (!body.ok()) return std::move(call.responder).Error(body.status());
  if (!body->is_object())
    return std::move(call.responder).Error(Malformed("the body must be an object"));
  std::vector<std::string> keys;
  if (auto k = body->find("keys"); k != body->end() && !k->is_null()) {
    if (!k->is_array())
      return std::move(call.responder).Error(Malformed("\"keys\" must be an array"));
    for (const auto& key : *k) {
      if (!key.is_string()) {
        return std::move(call.responder).Error(Malformed("\"keys\" must hold strings"));
      }
      keys.push_back(key.get<std::string>());
    }
  }
  if (auto p = body->find("parallelism");
      p != body->end() && !p->is_null() && !p->is_number_integer()) {
    return std::move(call.responder).Error(Malformed("\"parallelism\" must be an integer"));
  }
  state::RequestMetadata metadata;
  if (auto m = body->find("metadata"); m != body->end()) {
    if (auto s = ParseStringMap(*m, "metadata", &metadata); !s.ok()) {
      return std::move(call.responder).Error(s);
    }
  }
  Overlay(call.query.metadata, &metadata);
  state_.BulkGet(store, std::move(keys), std::move(metadata),
                 [r = std::move(call.responder)](
                     absl::StatusOr<std::vector<state::BulkGetItem>> result) mutable {
                   if (!result.ok()) return std::move(r).Error(result.status());
                   json out = json::array();
                   for (auto& item : *result) {
                     json j = {{"key", item.key}};
                     if (!item.error.empty()) {
                       j["error"] = item.error;
                     } else if (item.response.found) {
                       j["data"] = DataAsJson(item.response.data);
                       if (item.response.etag) j["etag"] = *item.response.etag;
                       if (!item.response.metadata.empty()) j["metadata"] = item.response.metadata;
                     }
                     out.push_back(std::move(j));
                   }
                   std::move(r).Json(out);
                 });
}

void DaprHttpApi::Transaction(Call& call, std::string_view store) {
  auto body = ParseBody(call.request.body());
  if (!body.ok()) return std::move(call.responder).Error(body.status());
  if (!body->is_object())
    return std::move(call.responder).Error(Malformed("the body must be an object"));
  state::TransactionRequest request;
  if (auto m = body->find("metadata"); m != body->end()) {
    if (auto s = ParseStringMap(*m, "metadata", &request.metadata); !s.ok()) {
      return std::move(call.responder).Error(s);
    }
  }
  Overlay(call.query.metadata, &request.metadata);
  auto ops = body->find("operations");
  if (ops != body->end() && !ops->is_null()) {
    if (!ops->is_array()) {
      return std::move(call.responder).Error(Malformed("\"operations\" must be an array"));
    }
    for (const json& op : *ops) {
      if (!op.is_object())
        return std::move(call.responder).Error(Malformed("an operation must be an object"));
      std::string type = op.value("operation", "");
      auto req = op.find("request");
      if (req == op.end())
        return std::move(call.responder).Error(Malformed("an operation needs \"request\""));
      state::Operation operation;
      absl::Status s;
      if (type == "upsert") {
        operation.type = state::Operation::Type::kUpsert;
        auto& set = operation.set;
        s = ParseStateItem(*req, Code::kStateTransaction, &set.key, &set.value, &set.etag,
                           &set.metadata, &set.options);
      } else if (type == "delete") {
        operation.type = state::Operation::Type::kDelete;
        auto& del = operation.delete_;
        s = ParseStateItem(*req, Code::kStateTransaction, &del.key, nullptr, &del.etag,
                           &del.metadata, &del.options);
      } else {
        s = errors::Make(Code::kNotSupportedStateOperation,
                         StrCat("operation type ", type, " not supported"));
      }
      if (!s.ok()) return std::move(call.responder).Error(s);
      request.operations.push_back(std::move(operation));
    }
  }
  state_.Transaction(store, std::move(request),
                     [r = std::move(call.responder)](absl::Status s) mutable {
                       if (!s.ok()) return std::move(r).Error(s);
                       std::move(r).NoContent();
                     });
}

// 200 with the secret's map (contract §2.5); query metadata.* is the request metadata.
void DaprHttpApi::GetSecret(Call& call, std::string_view store, std::string_view key) {
  secrets_.Get(store, std::string(key), std::move(call.query.metadata),
               [r = std::move(call.responder)](absl::StatusOr<secrets::SecretData> result) mutable {
                 if (!result.ok()) return std::move(r).Error(result.status());
                 std::move(r).Json(json(*result));
               });
}

// 200 with {"<secret>": {"<k>": "<v>"}}, secrets denied by scope left out.
void DaprHttpApi::GetBulkSecret(Call& call, std::string_view store) {
  secrets_.BulkGet(
      store, std::move(call.query.metadata),
      [r = std::move(call.responder)](absl::StatusOr<secrets::BulkSecretData> result) mutable {
        if (!result.ok()) return std::move(r).Error(result.status());
        std::move(r).Json(json(*result));
      });
}

// 204 once the broker has the event (contract §2.3); Content-Type is the data's content type.
void DaprHttpApi::Publish(Call& call, std::string pubsub, std::string topic) {
  PublishEventRequest request;
  request.pubsub_name = std::move(pubsub);
  request.topic = std::move(topic);
  request.data = std::move(call.request.body());
  request.content_type = HeaderOf(call.request, "content-type");
  request.metadata = std::move(call.query.metadata);
  request.traceparent = HeaderOf(call.request, "traceparent");
  request.tracestate = HeaderOf(call.request, "tracestate");
  pubsub_.Publish(std::move(request), [r = std::move(call.responder)](absl::Status s) mutable {
    if (!s.ok()) return std::move(r).Error(s);
    std::move(r).NoContent();
  });
}

// Body: [{"entryId","event","contentType","metadata"}]. 204 when every entry is published; else
// 500 {"failedEntries":[{"entryId","error"}],"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE"}.
void DaprHttpApi::BulkPublish(Call& call, std::string pubsub, std::string topic) {
  auto fail = [&](std::string_view why) {
    std::move(call.responder)
        .Error(errors::Make(Code::kPubsubUnmarshalEvents,
                            StrCat("error when unmarshaling the request for topic ", topic,
                                   " pubsub ", pubsub, ": ", why)));
  };
  json body = json::parse(call.request.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_array()) {
    return fail("the body must be a JSON array of entries");
  }
  BulkPublishEventRequest request;
  request.entries.reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    const json& item = body[i];
    std::string where = StrCat("entry ", static_cast<uint64_t>(i));
    if (!item.is_object()) return fail(StrCat(where, " must be an object"));
    BulkPublishEventEntry entry;
    if (auto id = item.find("entryId"); id != item.end() && !id->is_null()) {
      if (!id->is_string()) return fail(StrCat(where, ": \"entryId\" must be a string"));
      entry.entry_id = id->get<std::string>();
    }
    if (auto ct = item.find("contentType"); ct != item.end() && !ct->is_null()) {
      if (!ct->is_string()) return fail(StrCat(where, ": \"contentType\" must be a string"));
      entry.content_type = ct->get<std::string>();
    }
    if (entry.content_type.empty()) return fail(StrCat(where, ": \"contentType\" is required"));
    if (auto m = item.find("metadata"); m != item.end()) {
      if (absl::Status s = ParseStringMap(*m, "metadata", &entry.metadata); !s.ok()) {
        return fail(StrCat(where, ": \"metadata\" must be an object of strings"));
      }
    }
    auto event = item.find("event");
    auto bytes = BulkEventBytes(event == item.end() ? json() : *event, entry.content_type);
    if (!bytes.ok())
      return fail(StrCat(where, " (", entry.entry_id, "): ", MessageOf(bytes.status())));
    entry.data = *std::move(bytes);
    request.entries.push_back(std::move(entry));
  }
  request.pubsub_name = std::move(pubsub);
  request.topic = std::move(topic);
  request.metadata = std::move(call.query.metadata);
  request.traceparent = HeaderOf(call.request, "traceparent");
  request.tracestate = HeaderOf(call.request, "tracestate");
  pubsub_.BulkPublish(
      std::move(request),
      [r = std::move(call.responder)](absl::StatusOr<BulkPublishEventResult> result) mutable {
        if (!result.ok()) return std::move(r).Error(result.status());
        if (result->failed.empty()) return std::move(r).NoContent();
        json failed = json::array();
        for (const auto& f : result->failed) {
          failed.push_back({{"entryId", f.entry_id}, {"error", f.error}});
        }
        json out = {{"failedEntries", std::move(failed)},
                    {"errorCode", errors::SpecOf(Code::kPubsubPublishMessage).error_code}};
        std::move(r).Body(errors::SpecOf(Code::kPubsubPublishMessage).http_status,
                          out.dump(-1, ' ', false, kDump), "application/json");
      });
}

void DaprHttpApi::GetMetadata(Call& call) {
  MetadataSnapshot m = metadata_.Snapshot();
  json out = {{"id", m.app_id}, {"runtimeVersion", m.runtime_version}};
  if (!m.enabled_features.empty()) out["enabledFeatures"] = m.enabled_features;
  if (!m.components.empty()) {
    json components = json::array();
    for (const auto& c : m.components) {
      json j = {{"name", c.name}, {"type", c.type}, {"version", c.version}};
      if (!c.capabilities.empty()) j["capabilities"] = c.capabilities;
      components.push_back(std::move(j));
    }
    out["components"] = std::move(components);
  }
  out["extended"] = m.extended;
  json app = json::object();
  const AppConnectionInfo& a = m.app_connection;
  if (a.port > 0) app["port"] = a.port;
  if (!a.protocol.empty()) app["protocol"] = a.protocol;
  if (!a.channel_address.empty()) app["channelAddress"] = a.channel_address;
  if (a.max_concurrency > 0) app["maxConcurrency"] = a.max_concurrency;
  if (a.health_check) {
    app["health"] = {{"healthCheckPath", a.health_check_path},
                     {"healthProbeInterval", a.health_probe_interval},
                     {"healthProbeTimeout", a.health_probe_timeout},
                     {"healthThreshold", a.health_threshold}};
  }
  if (!m.subscriptions.empty()) {
    // §2.8: rules flattened (unlike the proto's rules.rules), empty fields left out.
    json subscriptions = json::array();
    for (const SubscriptionSpec& sub : m.subscriptions) {
      json j = {{"pubsubname", sub.pubsub_name}, {"topic", sub.topic}};
      if (!sub.metadata.empty()) j["metadata"] = sub.metadata;
      if (!sub.rules.empty()) {
        json rules = json::array();
        for (const auto& rule : sub.rules) {
          json r = {{"path", rule.path}};
          if (!rule.match.empty()) r["match"] = rule.match;
          rules.push_back(std::move(r));
        }
        j["rules"] = std::move(rules);
      }
      if (!sub.dead_letter_topic.empty()) j["deadLetterTopic"] = sub.dead_letter_topic;
      j["type"] = std::string(SubscriptionTypeName(sub.type));
      subscriptions.push_back(std::move(j));
    }
    out["subscriptions"] = std::move(subscriptions);
  }
  out["appConnectionProperties"] = std::move(app);
  out["actorRuntime"] = {{"runtimeStatus", "DISABLED"}};
  std::move(call.responder).Json(out);
}

}  // namespace remora::runtime::http
