#include "api/grpc/grpc_app_channel.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "dapr/proto/runtime/v1/appcallback.grpc.pb.h"
#include "google/protobuf/struct.pb.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/log.h"

namespace remora::runtime::grpc {

namespace v1 = ::dapr::proto::runtime::v1;
namespace common = ::dapr::proto::common::v1;
using nlohmann::json;

int HttpStatusFromGrpcCode(int grpc_code) {
  switch (static_cast<::grpc::StatusCode>(grpc_code)) {
    case ::grpc::StatusCode::OK:
      return 200;
    case ::grpc::StatusCode::CANCELLED:
      return 408;
    case ::grpc::StatusCode::INVALID_ARGUMENT:
    case ::grpc::StatusCode::FAILED_PRECONDITION:
    case ::grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case ::grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    case ::grpc::StatusCode::NOT_FOUND:
      return 404;
    case ::grpc::StatusCode::ALREADY_EXISTS:
    case ::grpc::StatusCode::ABORTED:
      return 409;
    case ::grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case ::grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case ::grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case ::grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case ::grpc::StatusCode::UNAVAILABLE:
      return 503;
    default:
      return 500;
  }
}

namespace {

// gRPC rejects (and logs) metadata it cannot send; broker metadata is arbitrary, so keys that are
// not lower-case header tokens, gRPC's own names and values with control characters stay out.
bool SendableMetadata(std::string_view key, std::string_view value) {
  if (key.empty() || key.front() == ':' || key.starts_with("grpc-")) return false;
  static constexpr std::string_view kReserved[] = {
      "content-type", "content-length",    "te",         "host",
      "connection",   "transfer-encoding", "user-agent", "dapr-api-token"};
  if (std::find(std::begin(kReserved), std::end(kReserved), key) != std::end(kReserved)) {
    return false;
  }
  bool key_ok = std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
  if (!key_ok) return false;
  if (key.ends_with("-bin")) return true;
  return std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Standard base64 (with or without padding); false on a character outside the alphabet.
bool Base64Decode(std::string_view in, std::string* out) {
  out->clear();
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+' || c == '-') {
      v = 62;
    } else if (c == '/' || c == '_') {
      v = 63;
    } else if (c == '=' || c == '\n' || c == '\r') {
      continue;
    } else {
      return false;
    }
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return true;
}

std::string MediaType(std::string_view content_type) {
  std::string type = Lower(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  return type;
}

bool IsJsonType(std::string_view media) {
  return media == "application/json" || media == "application/cloudevents+json" ||
         media.ends_with("+json");
}

bool IsStringType(std::string_view media) {
  return media.starts_with("text/") || media == "application/xml";
}

void ToValue(const json& j, google::protobuf::Value* out) {
  switch (j.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      out->set_null_value(google::protobuf::NULL_VALUE);
      break;
    case json::value_t::boolean:
      out->set_bool_value(j.get<bool>());
      break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      out->set_number_value(j.get<double>());
      break;
    case json::value_t::string:
      out->set_string_value(j.get<std::string>());
      break;
    case json::value_t::array:
      for (const json& item : j) ToValue(item, out->mutable_list_value()->add_values());
      break;
    case json::value_t::object:
      for (const auto& [k, v] : j.items()) {
        ToValue(v, &(*out->mutable_struct_value()->mutable_fields())[k]);
      }
      break;
    case json::value_t::binary:
      out->set_string_value(j.dump());
      break;
  }
}

std::string StringAttribute(const json& event, const char* name) {
  auto it = event.find(name);
  if (it == event.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

}  // namespace

// The CloudEvent as daprd's gRPC postman sends it (contract §1.4 TopicEventRequest).
void ToTopicEventRequest(const TopicEvent& event, v1::TopicEventRequest* result) {
  v1::TopicEventRequest& out = *result;
  const json& ce = event.cloud_event;
  out.set_id(StringAttribute(ce, "id"));
  out.set_source(StringAttribute(ce, "source"));
  out.set_type(StringAttribute(ce, "type"));
  out.set_spec_version(StringAttribute(ce, "specversion"));
  out.set_data_content_type(StringAttribute(ce, "datacontenttype"));
  out.set_topic(event.topic);
  out.set_pubsub_name(event.pubsub_name);
  out.set_path(event.path);
  std::string media = MediaType(out.data_content_type());
  if (auto b64 = ce.find("data_base64"); b64 != ce.end() && b64->is_string()) {
    std::string decoded;
    if (Base64Decode(b64->get_ref<const std::string&>(), &decoded)) {
      out.set_data(std::move(decoded));
    } else {
      out.set_data(b64->get<std::string>());
    }
  } else if (auto data = ce.find("data"); data != ce.end() && !data->is_null()) {
    if (data->is_string() && (IsStringType(media) || !IsJsonType(media))) {
      out.set_data(data->get<std::string>());
    } else {
      out.set_data(data->dump());
    }
  }
  static constexpr std::string_view kCore[] = {
      "id", "source", "type", "specversion", "datacontenttype", "data", "data_base64"};
  if (ce.is_object()) {
    for (const auto& [k, v] : ce.items()) {
      if (std::find(std::begin(kCore), std::end(kCore), k) != std::end(kCore)) continue;
      ToValue(v, &(*out.mutable_extensions()->mutable_fields())[k]);
    }
  }
}

namespace {

common::HTTPExtension::Verb ToVerb(std::string_view verb) {
  static const std::pair<std::string_view, common::HTTPExtension::Verb> kVerbs[] = {
      {"GET", common::HTTPExtension::GET},         {"HEAD", common::HTTPExtension::HEAD},
      {"POST", common::HTTPExtension::POST},       {"PUT", common::HTTPExtension::PUT},
      {"DELETE", common::HTTPExtension::DELETE},   {"CONNECT", common::HTTPExtension::CONNECT},
      {"OPTIONS", common::HTTPExtension::OPTIONS}, {"TRACE", common::HTTPExtension::TRACE},
      {"PATCH", common::HTTPExtension::PATCH}};
  for (const auto& [name, v] : kVerbs) {
    if (name == verb) return v;
  }
  return common::HTTPExtension::NONE;
}

SubscriptionSpec FromTopicSubscription(const v1::TopicSubscription& sub, int index) {
  SubscriptionSpec spec;
  spec.type = SubscriptionSpec::Type::kProgrammatic;
  spec.source = StrCat("ListTopicSubscriptions item ", index);
  spec.pubsub_name = sub.pubsub_name();
  spec.topic = sub.topic();
  for (const auto& [k, v] : sub.metadata()) spec.metadata[k] = v;
  for (const v1::TopicRule& rule : sub.routes().rules()) {
    spec.rules.push_back({rule.match(), rule.path()});
  }
  if (!sub.routes().default_().empty()) spec.rules.push_back({"", sub.routes().default_()});
  spec.dead_letter_topic = sub.dead_letter_topic();
  if (sub.has_bulk_subscribe()) {
    spec.bulk.enabled = sub.bulk_subscribe().enabled();
    if (sub.bulk_subscribe().max_messages_count() > 0) {
      spec.bulk.max_messages_count = sub.bulk_subscribe().max_messages_count();
    }
    if (sub.bulk_subscribe().max_await_duration_ms() > 0) {
      spec.bulk.max_await_duration_ms = sub.bulk_subscribe().max_await_duration_ms();
    }
  }
  return spec;
}

std::chrono::system_clock::time_point After(std::chrono::milliseconds timeout) {
  return std::chrono::system_clock::now() + timeout;
}

}  // namespace

// Shared with every call in flight (their callbacks hold it), so that a callback never touches a
// destroyed channel.
struct GrpcAppChannel::Impl {
  AppChannelConfig config;
  std::string address;
  std::shared_ptr<::grpc::Channel> channel;
  std::unique_ptr<v1::AppCallback::Stub> app;
  std::unique_ptr<v1::AppCallbackHealthCheck::Stub> health;
  std::unique_ptr<v1::AppCallbackAlpha::Stub> alpha;
  std::atomic<uint64_t> next_bulk_id{1};

  std::mutex mu;
  std::condition_variable idle;
  int active = 0;                                   // calls started, callback not yet run
  int in_app = 0;                                   // counted against max_concurrency
  std::deque<std::function<void(bool run)>> queue;  // waiting for a max_concurrency slot
  std::set<::grpc::ClientContext*> contexts;        // of the calls in flight, for cancelling
  bool closed = false;

  void Prepare(::grpc::ClientContext* ctx) {
    if (!config.app_api_token.empty()) ctx->AddMetadata("dapr-api-token", config.app_api_token);
  }

  // Registers a call about to start; false once the channel is closing.
  bool Track(::grpc::ClientContext* ctx) {
    std::lock_guard lock(mu);
    if (closed) return false;
    ++active;
    contexts.insert(ctx);
    return true;
  }
  void Untrack(::grpc::ClientContext* ctx) {
    std::lock_guard lock(mu);
    contexts.erase(ctx);
    if (--active == 0) idle.notify_all();
  }

  // Runs `start(true)` now or once a max_concurrency slot frees; `start(false)` when the channel
  // closes first. Every started call must call Release() when it completes.
  void Acquire(std::function<void(bool run)> start) {
    bool run = false;
    {
      std::lock_guard lock(mu);
      if (!closed) {
        if (config.max_concurrency > 0 && in_app >= config.max_concurrency) {
          queue.push_back(std::move(start));
          return;
        }
        ++in_app;
        run = true;
      }
    }
    start(run);
  }
  void Release() {
    std::function<void(bool)> next;
    {
      std::lock_guard lock(mu);
      if (!queue.empty() && !closed) {
        next = std::move(queue.front());
        queue.pop_front();
      } else {
        --in_app;
      }
    }
    if (next) next(true);
  }
};

namespace {

absl::Status Failure(const GrpcAppChannel::Impl& impl, std::string_view rpc,
                     const ::grpc::Status& status) {
  return MakeStatus(static_cast<absl::StatusCode>(status.error_code()),
                    StrCat(rpc, " on the app at ", impl.address, ": ", status.error_message()));
}

absl::Status Closed(std::string_view rpc) {
  return MakeStatus(absl::StatusCode::kCancelled, StrCat(rpc, ": the app channel is closing"));
}

}  // namespace

GrpcAppChannel::GrpcAppChannel(AppChannelConfig config) : impl_(std::make_shared<Impl>()) {
  impl_->config = std::move(config);
  const std::string& host = impl_->config.host;
  impl_->address = host.find(':') != std::string::npos && !host.starts_with('[')
                       ? StrCat("[", host, "]:", impl_->config.port)
                       : StrCat(host, ":", impl_->config.port);
  ::grpc::ChannelArguments args;
  // An app that is still starting is retried often: gRPC's default backoff grows to 2 minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(-1);
  impl_->channel =
      ::grpc::CreateCustomChannel(impl_->address, ::grpc::InsecureChannelCredentials(), args);
  impl_->app = v1::AppCallback::NewStub(impl_->channel);
  impl_->health = v1::AppCallbackHealthCheck::NewStub(impl_->channel);
  impl_->alpha = v1::AppCallbackAlpha::NewStub(impl_->channel);
}

GrpcAppChannel::~GrpcAppChannel() {
  std::deque<std::function<void(bool)>> queued;
  {
    std::unique_lock lock(impl_->mu);
    impl_->closed = true;
    queued.swap(impl_->queue);
    for (::grpc::ClientContext* ctx : impl_->contexts) ctx->TryCancel();
  }
  for (auto& start : queued) start(false);
  std::unique_lock lock(impl_->mu);
  impl_->idle.wait(lock, [this] { return impl_->active == 0; });
}

void GrpcAppChannel::ListSubscriptions(Callback<std::vector<SubscriptionSpec>> done) {
  struct Call {
    ::grpc::ClientContext ctx;
    google::protobuf::Empty request;
    v1::ListTopicSubscriptionsResponse response;
    Callback<std::vector<SubscriptionSpec>> done;
  };
  auto call = std::make_shared<Call>();
  call->done = std::move(done);
  impl_->Prepare(&call->ctx);
  // The app may not listen yet: wait for it rather than fail at the first refused connection.
  call->ctx.set_wait_for_ready(true);
  call->ctx.set_deadline(After(impl_->config.subscribe_wait));
  if (!impl_->Track(&call->ctx)) return std::move(call->done)(Closed("ListTopicSubscriptions"));
  impl_->app->async()->ListTopicSubscriptions(
      &call->ctx, &call->request, &call->response, [impl = impl_, call](::grpc::Status status) {
        absl::StatusOr<std::vector<SubscriptionSpec>> result;
        if (status.error_code() == ::grpc::StatusCode::UNIMPLEMENTED) {
          result = std::vector<SubscriptionSpec>();
        } else if (!status.ok()) {
          result = Failure(*impl, "ListTopicSubscriptions", status);
        } else {
          std::vector<SubscriptionSpec> specs;
          int index = 0;
          for (const v1::TopicSubscription& sub : call->response.subscriptions()) {
            specs.push_back(FromTopicSubscription(sub, index++));
          }
          result = std::move(specs);
        }
        std::move(call->done)(std::move(result));
        impl->Untrack(&call->ctx);
      });
}

void GrpcAppChannel::DeliverEvent(TopicEvent event, Callback<EventStatus> done) {
  struct Call {
    ::grpc::ClientContext ctx;
    v1::TopicEventRequest request;
    v1::TopicEventResponse response;
    Callback<EventStatus> done;
  };
  auto call = std::make_shared<Call>();
  call->done = std::move(done);
  ToTopicEventRequest(event, &call->request);
  impl_->Prepare(&call->ctx);
  for (const auto& [key, value] : event.metadata) {
    std::string name = Lower(key);
    if (SendableMetadata(name, value)) call->ctx.AddMetadata(name, value);
  }
  for (const char* trace : {"traceparent", "tracestate"}) {
    std::string value = StringAttribute(event.cloud_event, trace);
    if (!value.empty() && SendableMetadata(trace, value) &&
        event.metadata.find(trace) == event.metadata.end()) {
      call->ctx.AddMetadata(trace, value);
    }
  }
  call->ctx.set_deadline(After(impl_->config.event_timeout));
  impl_->Acquire([impl = impl_, call](bool run) {
    if (!run || !impl->Track(&call->ctx)) {
      if (run) impl->Release();
      return std::move(call->done)(Closed("OnTopicEvent"));
    }
    impl->app->async()->OnTopicEvent(
        &call->ctx, &call->request, &call->response, [impl, call](::grpc::Status status) {
          impl->Release();
          absl::StatusOr<EventStatus> result;
          if (status.error_code() == ::grpc::StatusCode::UNIMPLEMENTED) {
            log::Warn("OnTopicEvent is not implemented by the app: event ", call->request.id(),
                      " of topic ", call->request.topic(), " dropped");
            result = EventStatus::kDrop;
          } else if (!status.ok()) {
            result = Failure(*impl, "OnTopicEvent", status);
          } else {
            switch (call->response.status()) {
              case v1::TopicEventResponse::SUCCESS:
                result = EventStatus::kSuccess;
                break;
              case v1::TopicEventResponse::DROP:
                result = EventStatus::kDrop;
                break;
              case v1::TopicEventResponse::RETRY:
                result = EventStatus::kRetry;
                break;
              default:
                log::Warn("the app answered event ", call->request.id(), " with unknown status ",
                          static_cast<int>(call->response.status()), ": retried");
                result = EventStatus::kRetry;
            }
          }
          std::move(call->done)(std::move(result));
          impl->Untrack(&call->ctx);
        });
  });
}

EventStatus EventStatusOf(int topic_event_response_status) {
  switch (topic_event_response_status) {
    case v1::TopicEventResponse::SUCCESS:
      return EventStatus::kSuccess;
    case v1::TopicEventResponse::DROP:
      return EventStatus::kDrop;
    default:
      return EventStatus::kRetry;
  }
}

void GrpcAppChannel::BulkDeliver(BulkTopicEvent bulk, Callback<BulkEventStatuses> done) {
  // One attempt of the batch; `alpha` picks OnBulkTopicEventAlpha1.
  struct Call {
    ::grpc::ClientContext ctx;
    v1::TopicEventBulkRequest request;
    v1::TopicEventBulkResponse response;
  };
  struct Batch {
    v1::TopicEventBulkRequest request;
    BulkTopicEvent bulk;  // kept for the entry-by-entry fallback
    Callback<BulkEventStatuses> done;
  };
  auto batch = std::make_shared<Batch>();
  v1::TopicEventBulkRequest& request = batch->request;
  request.set_id(StrCat("bulk-", impl_->next_bulk_id.fetch_add(1)));
  request.set_topic(bulk.topic);
  request.set_pubsub_name(bulk.pubsub_name);
  request.set_type("com.dapr.event.sent.bulk");
  request.set_path(bulk.path);
  for (const BulkTopicEvent::Entry& entry : bulk.entries) {
    v1::TopicEventBulkRequestEntry* out = request.add_entries();
    out->set_entry_id(entry.entry_id);
    out->set_content_type(entry.content_type);
    for (const auto& [k, v] : entry.metadata) (*out->mutable_metadata())[k] = v;
    if (entry.event.is_object()) {
      TopicEvent one;
      one.cloud_event = entry.event;
      v1::TopicEventRequest mapped;
      ToTopicEventRequest(one, &mapped);
      v1::TopicEventCERequest* ce = out->mutable_cloud_event();
      ce->set_id(mapped.id());
      ce->set_source(mapped.source());
      ce->set_type(mapped.type());
      ce->set_spec_version(mapped.spec_version());
      ce->set_data_content_type(mapped.data_content_type());
      ce->set_data(mapped.data());
      *ce->mutable_extensions() = mapped.extensions();
    } else {
      out->set_bytes(entry.event.is_string() ? entry.event.get<std::string>() : entry.event.dump());
    }
  }
  batch->bulk = std::move(bulk);
  batch->done = std::move(done);

  // Tries the stable RPC, then the Alpha1 one, then entry by entry (daprd's order).
  auto attempt = std::make_shared<std::function<void(bool, bool)>>();
  std::weak_ptr<std::function<void(bool, bool)>> weak_attempt = attempt;
  *attempt = [this, impl = impl_, batch, weak_attempt](bool alpha, bool run) {
    auto call = std::make_shared<Call>();
    if (!run || !impl->Track(&call->ctx)) {
      if (run) impl->Release();
      return std::move(batch->done)(Closed("OnBulkTopicEvent"));
    }
    call->request = batch->request;
    impl->Prepare(&call->ctx);
    call->ctx.set_deadline(After(impl->config.event_timeout));
    auto finished = [this, impl, batch, call, alpha,
                     next = weak_attempt.lock()](::grpc::Status status) {
      impl->Release();
      if (status.error_code() == ::grpc::StatusCode::UNIMPLEMENTED) {
        // Started before Untrack, so the destructor waits for it. The retry holds a concurrency
        // slot like any call.
        if (!alpha) {
          impl->Acquire([next](bool run) { (*next)(true, run); });
        } else {
          AppChannel::BulkDeliver(std::move(batch->bulk), std::move(batch->done));
        }
        return impl->Untrack(&call->ctx);
      }
      absl::StatusOr<BulkEventStatuses> result;
      if (!status.ok()) {
        result = Failure(*impl, alpha ? "OnBulkTopicEventAlpha1" : "OnBulkTopicEvent", status);
      } else {
        BulkEventStatuses statuses;
        for (const v1::TopicEventBulkResponseEntry& e : call->response.statuses()) {
          statuses[e.entry_id()] = EventStatusOf(e.status());
        }
        result = std::move(statuses);
      }
      std::move(batch->done)(std::move(result));
      impl->Untrack(&call->ctx);
    };
    if (alpha) {
      impl->alpha->async()->OnBulkTopicEventAlpha1(&call->ctx, &call->request, &call->response,
                                                   std::move(finished));
    } else {
      impl->app->async()->OnBulkTopicEvent(&call->ctx, &call->request, &call->response,
                                           std::move(finished));
    }
  };
  impl_->Acquire([attempt](bool run) { (*attempt)(false, run); });
}

void GrpcAppChannel::Invoke(InvokeRequest request, Callback<InvokeResponse> done) {
  struct Call {
    ::grpc::ClientContext ctx;
    common::InvokeRequest request;
    common::InvokeResponse response;
    Callback<InvokeResponse> done;
  };
  auto call = std::make_shared<Call>();
  call->done = std::move(done);
  call->request.set_method(request.method);
  call->request.mutable_data()->set_value(std::move(request.data));
  call->request.set_content_type(request.content_type);
  call->request.mutable_http_extension()->set_verb(ToVerb(request.verb));
  call->request.mutable_http_extension()->set_querystring(request.query);
  impl_->Prepare(&call->ctx);
  for (const auto& [key, value] : request.headers) {
    std::string name = Lower(key);
    if (SendableMetadata(name, value)) call->ctx.AddMetadata(name, value);
  }
  call->ctx.set_deadline(After(impl_->config.invoke_timeout));
  impl_->Acquire([impl = impl_, call](bool run) {
    if (!run || !impl->Track(&call->ctx)) {
      if (run) impl->Release();
      return std::move(call->done)(Closed("OnInvoke"));
    }
    impl->app->async()->OnInvoke(
        &call->ctx, &call->request, &call->response, [impl, call](::grpc::Status status) {
          impl->Release();
          absl::StatusOr<InvokeResponse> result;
          if (status.error_code() == ::grpc::StatusCode::UNAVAILABLE ||
              status.error_code() == ::grpc::StatusCode::DEADLINE_EXCEEDED) {
            result = Failure(*impl, "OnInvoke", status);
          } else {
            InvokeResponse out;
            out.grpc_code = static_cast<int>(status.error_code());
            out.grpc_message = status.error_message();
            out.http_status = HttpStatusFromGrpcCode(out.grpc_code);
            if (status.ok()) {
              out.content_type = call->response.content_type();
              out.data = call->response.data().value();
            }
            for (const auto* md :
                 {&call->ctx.GetServerInitialMetadata(), &call->ctx.GetServerTrailingMetadata()}) {
              for (const auto& [k, v] : *md) {
                out.headers.emplace_back(std::string(k.data(), k.size()),
                                         std::string(v.data(), v.size()));
              }
            }
            result = std::move(out);
          }
          std::move(call->done)(std::move(result));
          impl->Untrack(&call->ctx);
        });
  });
}

void GrpcAppChannel::CheckHealth(DoneCallback done) {
  struct Call {
    ::grpc::ClientContext ctx;
    google::protobuf::Empty request;
    v1::HealthCheckResponse response;
    DoneCallback done;
  };
  auto call = std::make_shared<Call>();
  call->done = std::move(done);
  impl_->Prepare(&call->ctx);
  call->ctx.set_deadline(After(impl_->config.health_timeout));
  if (!impl_->Track(&call->ctx)) return std::move(call->done)(Closed("HealthCheck"));
  impl_->health->async()->HealthCheck(
      &call->ctx, &call->request, &call->response, [impl = impl_, call](::grpc::Status status) {
        std::move(call->done)(status.ok() ? absl::OkStatus()
                                          : Failure(*impl, "HealthCheck", status));
        impl->Untrack(&call->ctx);
      });
}

}  // namespace remora::runtime::grpc
