#include "appchannel/http_app_channel.h"

#include <algorithm>
#include <cctype>
#include <deque>
#include <mutex>
#include <utility>

#include "remora/components/common/http/client.h"
#include "remora/components/common/strings.h"
#include "remora/components/common/uuid.h"
#include "remora/runtime/asio.h"
#include "remora/runtime/log.h"

namespace remora::runtime {
namespace {

namespace asio = boost::asio;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr milliseconds kFirstSubscribeRetry{50};
constexpr milliseconds kMaxSubscribeRetry{1000};
constexpr size_t kMaxBodyInError = 200;

// RFC 9110 token characters: what a header name may hold.
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

// Headers the channel sets itself (or the HTTP layer owns): broker metadata never overrides them.
bool IsReservedHeader(std::string_view name) {
  static constexpr std::string_view kReserved[] = {
      "content-type", "content-length", "transfer-encoding", "host",
      "connection",   "pubsubname",     "dapr-api-token",    "dapr-app-id"};
  return std::any_of(std::begin(kReserved), std::end(kReserved), [&](std::string_view r) {
    return r.size() == name.size() &&
           std::equal(r.begin(), r.end(), name.begin(), [](char a, char b) {
             return a == std::tolower(static_cast<unsigned char>(b));
           });
  });
}

bool IsHeaderValue(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == 0; });
}

// RFC 9110 §7.6.1 connection-specific headers, plus those the HTTP client computes itself: a
// proxy must not forward them.
bool IsHopByHop(std::string_view name) {
  static constexpr std::string_view kHop[] = {"connection",
                                              "keep-alive",
                                              "proxy-connection",
                                              "proxy-authenticate",
                                              "proxy-authorization",
                                              "te",
                                              "trailer",
                                              "transfer-encoding",
                                              "upgrade",
                                              "host",
                                              "content-length"};
  return std::any_of(std::begin(kHop), std::end(kHop), [&](std::string_view h) {
    return h.size() == name.size() &&
           std::equal(h.begin(), h.end(), name.begin(), [](char a, char b) {
             return a == std::tolower(static_cast<unsigned char>(b));
           });
  });
}

bool IsNamed(std::string_view name, std::string_view lower) {
  return name.size() == lower.size() &&
         std::equal(lower.begin(), lower.end(), name.begin(), [](char a, char b) {
           return a == std::tolower(static_cast<unsigned char>(b));
         });
}

std::string Path(std::string_view path) {
  if (!path.empty() && path.front() == '/') return std::string(path);
  return StrCat("/", path);
}

std::string Excerpt(const std::string& body) {
  if (body.size() <= kMaxBodyInError) return body;
  return StrCat(body.substr(0, kMaxBodyInError), "...");
}

absl::Status ItemError(size_t index, std::string_view problem) {
  return MakeStatus(
      absl::StatusCode::kInvalidArgument,
      StrCat("GET /dapr/subscribe: item ", static_cast<uint64_t>(index), ": ", problem));
}

// A string member; absent or null is "". False when present with another type.
bool StringMember(const json& object, const char* key, std::string* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    out->clear();
    return true;
  }
  if (!it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

}  // namespace

absl::StatusOr<std::vector<SubscriptionSpec>> ParseSubscribeResponse(const std::string& body) {
  std::vector<SubscriptionSpec> out;
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return out;
  json items = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (items.is_discarded() || !items.is_array()) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("GET /dapr/subscribe: the body is not a JSON array: ", Excerpt(body)));
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const json& item = items[i];
    if (!item.is_object()) return ItemError(i, "must be an object");
    SubscriptionSpec spec;
    spec.type = SubscriptionSpec::Type::kProgrammatic;
    spec.source = StrCat("GET /dapr/subscribe item ", static_cast<uint64_t>(i));
    if (!StringMember(item, "pubsubname", &spec.pubsub_name) || spec.pubsub_name.empty()) {
      return ItemError(i, "\"pubsubname\" is required");
    }
    if (!StringMember(item, "topic", &spec.topic) || spec.topic.empty()) {
      return ItemError(i, "\"topic\" is required");
    }
    if (!StringMember(item, "deadLetterTopic", &spec.dead_letter_topic)) {
      return ItemError(i, "\"deadLetterTopic\" must be a string");
    }
    if (auto m = item.find("metadata"); m != item.end() && !m->is_null()) {
      if (!m->is_object()) return ItemError(i, "\"metadata\" must be an object");
      for (const auto& [k, v] : m->items()) {
        spec.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
      }
    }
    std::string route;
    if (!StringMember(item, "route", &route)) return ItemError(i, "\"route\" must be a string");
    std::string fallback;
    if (auto routes = item.find("routes"); routes != item.end() && !routes->is_null()) {
      if (!routes->is_object()) return ItemError(i, "\"routes\" must be an object");
      if (auto rules = routes->find("rules"); rules != routes->end() && !rules->is_null()) {
        if (!rules->is_array()) return ItemError(i, "\"routes.rules\" must be an array");
        for (const json& rule : *rules) {
          SubscriptionSpec::Rule parsed;
          if (!rule.is_object() || !StringMember(rule, "match", &parsed.match) ||
              !StringMember(rule, "path", &parsed.path)) {
            return ItemError(i,
                             "\"routes.rules\" entries must be {\"match\": string, \"path\": "
                             "string}");
          }
          if (parsed.path.empty()) return ItemError(i, "a routing rule has no \"path\"");
          spec.rules.push_back(std::move(parsed));
        }
      }
      if (!StringMember(*routes, "default", &fallback)) {
        return ItemError(i, "\"routes.default\" must be a string");
      }
    }
    // routes.default, or the v1 `route` when there is no default, is the final catch-all rule.
    if (fallback.empty()) fallback = route;
    if (!fallback.empty()) spec.rules.push_back({"", fallback});
    if (auto bulk = item.find("bulkSubscribe"); bulk != item.end() && bulk->is_object()) {
      spec.bulk.enabled = bulk->value("enabled", false);
      spec.bulk.max_messages_count = bulk->value("maxMessagesCount", spec.bulk.max_messages_count);
      spec.bulk.max_await_duration_ms =
          bulk->value("maxAwaitDurationMs", spec.bulk.max_await_duration_ms);
    }
    out.push_back(std::move(spec));
  }
  return out;
}

absl::StatusOr<EventStatus> EventStatusFromResponse(int http_status, const std::string& body) {
  if (http_status >= 200 && http_status <= 299) {
    // daprd decodes {"status": ...} and counts a body it cannot decode as success.
    json answer = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (answer.is_discarded() || !answer.is_object()) return EventStatus::kSuccess;
    auto status = answer.find("status");
    if (status == answer.end() || !status->is_string()) return EventStatus::kSuccess;
    const std::string& s = status->get_ref<const std::string&>();
    if (s.empty() || s == "SUCCESS") return EventStatus::kSuccess;
    if (s == "DROP") return EventStatus::kDrop;
    if (s != "RETRY")
      log::Warn("the app answered an event with unknown status \"", s, "\": retried");
    return EventStatus::kRetry;
  }
  if (http_status == 404) return EventStatus::kDrop;
  return MakeStatus(absl::StatusCode::kUnavailable,
                    StrCat("the app answered HTTP ", http_status, ": ", Excerpt(body)));
}

absl::StatusOr<BulkEventStatuses> BulkStatusesFromResponse(
    int http_status, const std::string& body, const std::vector<std::string>& entry_ids) {
  BulkEventStatuses out;
  if (http_status == 404) {
    for (const std::string& id : entry_ids) out[id] = EventStatus::kDrop;
    return out;
  }
  if (http_status < 200 || http_status > 299) {
    return MakeStatus(absl::StatusCode::kUnavailable,
                      StrCat("the app answered HTTP ", http_status, ": ", Excerpt(body)));
  }
  json answer = json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto statuses = answer.is_object() ? answer.find("statuses") : answer.end();
  if (answer.is_discarded() || !answer.is_object() || statuses == answer.end() ||
      !statuses->is_array()) {
    // Unlike a single event, a bulk answer without statuses says nothing about any entry.
    return MakeStatus(absl::StatusCode::kUnavailable,
                      StrCat("the app's bulk answer has no \"statuses\" array: ", Excerpt(body)));
  }
  for (const json& item : *statuses) {
    if (!item.is_object()) continue;
    std::string id;
    std::string status;
    if (!StringMember(item, "entryId", &id) || !StringMember(item, "status", &status)) continue;
    EventStatus mapped = EventStatus::kRetry;
    if (status.empty() || status == "SUCCESS") {
      mapped = EventStatus::kSuccess;
    } else if (status == "DROP") {
      mapped = EventStatus::kDrop;
    }
    out[id] = mapped;
  }
  return out;
}

// Shared with the callbacks of requests in flight, which may outlive the channel: `client` is
// null once the channel is destroyed.
struct HttpAppChannel::Impl : std::enable_shared_from_this<Impl> {
  struct Pending {
    http::Request request;
    Callback<http::Response> done;
  };

  Impl(asio::io_context& io, HttpAppChannelOptions options)
      : io(io), options(std::move(options)), client(std::make_unique<http::Client>(io)) {}

  // Sends now, or queues while `max_concurrency` requests are in the app.
  void Send(http::Request request, Callback<http::Response> done) {
    std::unique_lock lock(mu);
    if (client == nullptr) {
      lock.unlock();
      return std::move(done)(absl::CancelledError("the app channel is closed"));
    }
    if (options.max_concurrency > 0 && in_flight >= options.max_concurrency) {
      queue.push_back({std::move(request), std::move(done)});
      return;
    }
    ++in_flight;
    StartLocked(std::move(request), std::move(done));
  }

  void StartLocked(http::Request request, Callback<http::Response> done) {
    client->Send(options.host, options.port, std::move(request),
                 [self = shared_from_this(),
                  done = std::move(done)](absl::StatusOr<http::Response> result) mutable {
                   std::move(done)(std::move(result));
                   self->Release();
                 });
  }

  void Release() {
    std::deque<Pending> cancelled;
    {
      std::lock_guard lock(mu);
      --in_flight;
      if (client == nullptr) {
        cancelled.swap(queue);
      } else if (!queue.empty()) {
        Pending next = std::move(queue.front());
        queue.pop_front();
        ++in_flight;
        StartLocked(std::move(next.request), std::move(next.done));
      }
    }
    for (Pending& p : cancelled) {
      std::move(p.done)(absl::CancelledError("the app channel is closed"));
    }
  }

  void Close() {
    std::unique_ptr<http::Client> doomed;
    std::deque<Pending> cancelled;
    {
      std::lock_guard lock(mu);
      doomed = std::move(client);
      cancelled.swap(queue);
    }
    for (Pending& p : cancelled) {
      std::move(p.done)(absl::CancelledError("the app channel is closed"));
    }
    doomed.reset();  // requests in flight complete with CANCELLED on the io_context
  }

  bool closed() {
    std::lock_guard lock(mu);
    return client == nullptr;
  }

  struct ListAttempt {
    Callback<std::vector<SubscriptionSpec>> done;
    std::chrono::steady_clock::time_point deadline;
    milliseconds backoff = kFirstSubscribeRetry;
    int attempts = 0;
  };

  void ListOnce(std::shared_ptr<ListAttempt> attempt) {
    http::Request request;
    request.method = "GET";
    request.target = "/dapr/subscribe";
    request.timeout = options.subscribe_timeout;
    if (!options.app_id.empty()) request.headers.emplace_back("dapr-app-id", options.app_id);
    if (!options.app_api_token.empty()) {
      request.headers.emplace_back("dapr-api-token", options.app_api_token);
    }
    ++attempt->attempts;
    Send(std::move(request),
         [self = shared_from_this(), attempt](absl::StatusOr<http::Response> result) mutable {
           absl::Status retriable;
           if (!result.ok()) {
             if (result.status().code() == absl::StatusCode::kCancelled) {
               return std::move(attempt->done)(result.status());
             }
             retriable = result.status();
           } else if (result->status >= 500) {
             retriable = MakeStatus(absl::StatusCode::kUnavailable,
                                    StrCat("GET /dapr/subscribe answered HTTP ", result->status,
                                           ": ", Excerpt(result->body)));
           } else if (result->status == 404) {
             return std::move(attempt->done)(std::vector<SubscriptionSpec>());
           } else if (result->status < 200 || result->status > 299) {
             return std::move(attempt->done)(
                 MakeStatus(absl::StatusCode::kFailedPrecondition,
                            StrCat("GET /dapr/subscribe answered HTTP ", result->status, ": ",
                                   Excerpt(result->body))));
           } else {
             return std::move(attempt->done)(ParseSubscribeResponse(result->body));
           }
           if (std::chrono::steady_clock::now() + attempt->backoff > attempt->deadline ||
               self->closed()) {
             return std::move(attempt->done)(MakeStatus(
                 retriable.code(), StrCat("the app did not answer GET /dapr/subscribe after ",
                                          attempt->attempts, " attempts: ", MessageOf(retriable))));
           }
           log::Debug("GET /dapr/subscribe: ", MessageOf(retriable), "; retrying in ",
                      static_cast<int64_t>(attempt->backoff.count()), " ms");
           auto timer = std::make_shared<asio::steady_timer>(self->io, attempt->backoff);
           attempt->backoff = std::min(attempt->backoff * 2, kMaxSubscribeRetry);
           timer->async_wait([self, attempt, timer](const boost::system::error_code& ec) mutable {
             if (ec || self->closed()) {
               return std::move(attempt->done)(absl::CancelledError("the app channel is closed"));
             }
             self->ListOnce(std::move(attempt));
           });
         });
  }

  // Health probes skip the --app-max-concurrency queue: a busy app is not an unhealthy one.
  void SendNow(http::Request request, Callback<http::Response> done) {
    std::unique_lock lock(mu);
    if (client == nullptr) {
      lock.unlock();
      return std::move(done)(absl::CancelledError("the app channel is closed"));
    }
    client->Send(options.host, options.port, std::move(request), std::move(done));
  }

  asio::io_context& io;
  const HttpAppChannelOptions options;
  std::mutex mu;
  std::unique_ptr<http::Client> client;  // null once closed
  int in_flight = 0;
  std::deque<Pending> queue;
};

HttpAppChannel::HttpAppChannel(asio::io_context& io, HttpAppChannelOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

HttpAppChannel::~HttpAppChannel() { impl_->Close(); }

void HttpAppChannel::ListSubscriptions(Callback<std::vector<SubscriptionSpec>> done) {
  auto attempt = std::make_shared<Impl::ListAttempt>();
  attempt->done = std::move(done);
  attempt->deadline = std::chrono::steady_clock::now() + impl_->options.subscribe_retry_for;
  impl_->ListOnce(std::move(attempt));
}

void HttpAppChannel::DeliverEvent(TopicEvent event, Callback<EventStatus> done) {
  http::Request request;
  request.method = "POST";
  request.target = Path(event.path);
  request.timeout = impl_->options.event_timeout;
  request.headers.emplace_back("Content-Type", "application/cloudevents+json");
  request.headers.emplace_back("pubsubname", event.pubsub_name);
  for (const auto& [key, value] : event.metadata) {
    // Broker metadata that cannot be a header (a space in a name, a newline in a value) would
    // make the whole request unsendable: leave it out.
    if (!IsToken(key) || !IsHeaderValue(value) || IsReservedHeader(key)) {
      log::Debug("event metadata ", key, " cannot be sent as an HTTP header; left out");
      continue;
    }
    request.headers.emplace_back(key, value);
  }
  for (const char* trace : {"traceparent", "tracestate"}) {
    auto it = event.cloud_event.find(trace);
    if (it != event.cloud_event.end() && it->is_string() &&
        !it->get_ref<const std::string&>().empty() &&
        IsHeaderValue(it->get_ref<const std::string&>())) {
      request.headers.emplace_back(trace, it->get<std::string>());
    }
  }
  if (!impl_->options.app_api_token.empty()) {
    request.headers.emplace_back("dapr-api-token", impl_->options.app_api_token);
  }
  request.body = event.cloud_event.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string target = request.target;
  impl_->Send(std::move(request), [done = std::move(done), target = std::move(target)](
                                      absl::StatusOr<http::Response> result) mutable {
    if (!result.ok()) return std::move(done)(result.status());
    auto status = EventStatusFromResponse(result->status, result->body);
    if (status.ok() && *status == EventStatus::kDrop && result->status == 404) {
      log::Error("the app answered 404 to POST ", target, ": event dropped");
    }
    if (!status.ok()) {
      return std::move(done)(MakeStatus(status.status().code(),
                                        StrCat("POST ", target, ": ", MessageOf(status.status()))));
    }
    std::move(done)(*status);
  });
}

void HttpAppChannel::Invoke(InvokeRequest request, Callback<InvokeResponse> done) {
  http::Request out;
  out.method = request.verb.empty() ? "POST" : std::move(request.verb);
  out.target = Path(request.method);
  if (!request.query.empty()) StrAppend(&out.target, "?", request.query);
  out.timeout = impl_->options.invoke_timeout;
  out.headers.reserve(request.headers.size() + 2);
  for (auto& [name, value] : request.headers) {
    if (IsHopByHop(name) || IsNamed(name, "content-type") || IsNamed(name, "dapr-api-token") ||
        !IsToken(name) || !IsHeaderValue(value)) {
      continue;
    }
    out.headers.emplace_back(std::move(name), std::move(value));
  }
  if (!request.content_type.empty()) {
    out.headers.emplace_back("Content-Type", std::move(request.content_type));
  }
  if (!impl_->options.app_api_token.empty()) {
    out.headers.emplace_back("dapr-api-token", impl_->options.app_api_token);
  }
  out.body = std::move(request.data);
  impl_->Send(std::move(out),
              [done = std::move(done)](absl::StatusOr<http::Response> result) mutable {
                if (!result.ok()) return std::move(done)(result.status());
                InvokeResponse response;
                response.http_status = result->status;
                response.data = std::move(result->body);
                response.headers.reserve(result->headers.size());
                for (auto& [name, value] : result->headers) {
                  if (IsHopByHop(name)) continue;
                  if (IsNamed(name, "content-type")) {
                    response.content_type = value;
                    continue;
                  }
                  response.headers.emplace_back(std::move(name), std::move(value));
                }
                std::move(done)(std::move(response));
              });
}

void HttpAppChannel::CheckHealth(DoneCallback done) {
  http::Request request;
  request.method = "GET";
  request.target = Path(impl_->options.health_check_path);
  request.timeout = impl_->options.health_probe_timeout;
  if (!impl_->options.app_api_token.empty()) {
    request.headers.emplace_back("dapr-api-token", impl_->options.app_api_token);
  }
  std::string target = request.target;
  impl_->SendNow(std::move(request), [done = std::move(done), target = std::move(target)](
                                         absl::StatusOr<http::Response> result) mutable {
    if (!result.ok()) return std::move(done)(result.status());
    if (result->status < 200 || result->status > 299) {
      return std::move(done)(
          MakeStatus(absl::StatusCode::kUnavailable,
                     StrCat("app health probe GET ", target, " answered HTTP ", result->status)));
    }
    std::move(done)(absl::OkStatus());
  });
}

void HttpAppChannel::BulkDeliver(BulkTopicEvent bulk, Callback<BulkEventStatuses> done) {
  http::Request request;
  request.method = "POST";
  request.target = Path(bulk.path);
  request.timeout = impl_->options.event_timeout;
  request.headers.emplace_back("Content-Type", "application/json");
  request.headers.emplace_back("pubsubname", bulk.pubsub_name);
  if (!impl_->options.app_api_token.empty()) {
    request.headers.emplace_back("dapr-api-token", impl_->options.app_api_token);
  }
  json entries = json::array();
  std::vector<std::string> ids;
  ids.reserve(bulk.entries.size());
  for (BulkTopicEvent::Entry& entry : bulk.entries) {
    json metadata = json::object();
    for (auto& [k, v] : entry.metadata) metadata[k] = std::move(v);
    entries.push_back({{"entryId", entry.entry_id},
                       {"event", std::move(entry.event)},
                       {"contentType", std::move(entry.content_type)},
                       {"metadata", std::move(metadata)}});
    ids.push_back(std::move(entry.entry_id));
  }
  json body = {{"id", NewUuid()},
               {"type", "com.dapr.event.sent.bulk"},
               {"topic", bulk.topic},
               {"pubsubname", bulk.pubsub_name},
               {"metadata", json::object()},
               {"entries", std::move(entries)}};
  request.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string target = request.target;
  impl_->Send(std::move(request), [done = std::move(done), target = std::move(target),
                                   ids = std::move(ids)](
                                      absl::StatusOr<http::Response> result) mutable {
    if (!result.ok()) return std::move(done)(result.status());
    auto statuses = BulkStatusesFromResponse(result->status, result->body, ids);
    if (!statuses.ok()) {
      return std::move(done)(MakeStatus(
          statuses.status().code(), StrCat("POST ", target, ": ", MessageOf(statuses.status()))));
    }
    if (result->status == 404) {
      log::Error("the app answered 404 to bulk POST ", target, ": ", ids.size(), " events dropped");
    }
    std::move(done)(*std::move(statuses));
  });
}

}  // namespace remora::runtime
