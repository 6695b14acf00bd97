// remora::App: Dapr's AppCallback services on a synchronous gRPC server.
//
// The synchronous server is enough: every callback is a short unary call, and its thread pool
// gives handlers the concurrency the header promises without a completion queue of our own.

#include "remora/app.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <map>
#include <mutex>
#include <utility>

#include "dapr/proto/runtime/v1/appcallback.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "remora/components/common/strings.h"

namespace remora {
namespace {

namespace pb = dapr::proto::runtime::v1;
namespace common = dapr::proto::common::v1;

constexpr int kDefaultAppPort = 50051;

absl::StatusOr<nlohmann::json> ParseJson(const std::string& bytes, std::string_view what) {
  nlohmann::json value = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("the ", what, " is not JSON (", bytes.size(), " bytes)"));
  }
  return value;
}

// The caller's gRPC metadata without gRPC's own entries and the app token.
Metadata MetadataOf(const grpc::ServerContext& ctx) {
  Metadata out;
  for (const auto& [k, v] : ctx.client_metadata()) {
    std::string_view key(k.data(), k.size());
    if (key.empty() || key[0] == ':' || key.substr(0, 5) == "grpc-" || key == "user-agent" ||
        key == "dapr-api-token") {
      continue;
    }
    out[std::string(key)] = std::string(v.data(), v.size());
  }
  return out;
}

nlohmann::json StructToJson(const google::protobuf::Struct& value) {
  if (value.fields_size() == 0) return nlohmann::json::object();
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(value, &text).ok()) {
    return nlohmann::json::object();
  }
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? nlohmann::json::object() : parsed;
}

pb::TopicEventResponse::TopicEventResponseStatus ToProto(TopicResult result) {
  switch (result) {
    case TopicResult::kRetry:
      return pb::TopicEventResponse::RETRY;
    case TopicResult::kDrop:
      return pb::TopicEventResponse::DROP;
    case TopicResult::kSuccess:
      break;
  }
  return pb::TopicEventResponse::SUCCESS;
}

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(MessageOf(status)));
}

struct Route {
  Subscription subscription;
  TopicHandler handler;
};

}  // namespace

absl::StatusOr<nlohmann::json> TopicEvent::Json() const { return ParseJson(data, "event data"); }

absl::StatusOr<nlohmann::json> InvocationRequest::Json() const {
  return ParseJson(data, "invocation data");
}

struct App::Impl {
  // Handler registrations; read by every call, written by the registration methods.
  struct Registry {
    std::mutex mu;
    std::vector<Route> routes;  // registration order: rules are listed in it
    std::map<std::string, InvokeHandler> methods;
    std::function<absl::Status()> health;
    std::vector<std::string> errors;  // bad registrations, reported by Start()
  };

  class Callback final : public pb::AppCallback::Service {
   public:
    explicit Callback(Impl& impl) : impl_(impl) {}

    grpc::Status OnInvoke(grpc::ServerContext* ctx, const common::InvokeRequest* req,
                          common::InvokeResponse* resp) override {
      if (grpc::Status s = impl_.Authorize(*ctx); !s.ok()) return s;
      InvokeHandler handler;
      {
        std::lock_guard lock(impl_.registry.mu);
        auto it = impl_.registry.methods.find(req->method());
        if (it != impl_.registry.methods.end()) handler = it->second;
      }
      if (!handler) {
        return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                            StrCat("the app has no handler for method '", req->method(), "'"));
      }
      InvocationRequest in;
      in.method = req->method();
      if (req->has_http_extension() &&
          req->http_extension().verb() != common::HTTPExtension::NONE) {
        in.verb = common::HTTPExtension::Verb_Name(req->http_extension().verb());
      }
      in.data = req->data().value();
      in.content_type = req->content_type();
      in.query = req->http_extension().querystring();
      in.metadata = MetadataOf(*ctx);
      absl::StatusOr<InvocationResponse> out = handler(in);
      if (!out.ok()) return ToGrpc(out.status());
      resp->mutable_data()->set_value(std::move(out->data));
      resp->set_content_type(std::move(out->content_type));
      return grpc::Status::OK;
    }

    grpc::Status ListTopicSubscriptions(grpc::ServerContext* ctx, const google::protobuf::Empty*,
                                        pb::ListTopicSubscriptionsResponse* resp) override {
      if (grpc::Status s = impl_.Authorize(*ctx); !s.ok()) return s;
      std::lock_guard lock(impl_.registry.mu);
      // One TopicSubscription per (pubsub, topic), in the order of their first route.
      std::map<std::pair<std::string, std::string>, pb::TopicSubscription*> by_topic;
      for (const Route& route : impl_.registry.routes) {
        const Subscription& s = route.subscription;
        pb::TopicSubscription*& out = by_topic[{s.pubsub, s.topic}];
        if (out == nullptr) {
          out = resp->add_subscriptions();
          out->set_pubsub_name(s.pubsub);
          out->set_topic(s.topic);
        }
        if (out->dead_letter_topic().empty()) out->set_dead_letter_topic(s.dead_letter_topic);
        for (const auto& [k, v] : s.metadata) (*out->mutable_metadata())[k] = v;
        if (s.bulk.enabled && !out->bulk_subscribe().enabled()) {
          out->mutable_bulk_subscribe()->set_enabled(true);
          out->mutable_bulk_subscribe()->set_max_messages_count(s.bulk.max_messages_count);
          out->mutable_bulk_subscribe()->set_max_await_duration_ms(s.bulk.max_await_duration_ms);
        }
        if (s.match.empty()) {
          out->mutable_routes()->set_default_(s.route);
        } else {
          pb::TopicRule* rule = out->mutable_routes()->add_rules();
          rule->set_match(s.match);
          rule->set_path(s.route);
        }
      }
      return grpc::Status::OK;
    }

    grpc::Status OnTopicEvent(grpc::ServerContext* ctx, const pb::TopicEventRequest* req,
                              pb::TopicEventResponse* resp) override {
      if (grpc::Status s = impl_.Authorize(*ctx); !s.ok()) return s;
      TopicHandler handler = impl_.FindRoute(req->pubsub_name(), req->topic(), req->path());
      if (!handler) return impl_.NoRoute(req->pubsub_name(), req->topic(), req->path());
      TopicEvent event;
      event.id = req->id();
      event.source = req->source();
      event.type = req->type();
      event.spec_version = req->spec_version();
      event.data_content_type = req->data_content_type();
      event.data = req->data();
      event.topic = req->topic();
      event.pubsub = req->pubsub_name();
      event.path = req->path();
      event.extensions = StructToJson(req->extensions());
      event.metadata = MetadataOf(*ctx);
      resp->set_status(ToProto(handler(event)));
      return grpc::Status::OK;
    }

    grpc::Status ListInputBindings(grpc::ServerContext* ctx, const google::protobuf::Empty*,
                                   pb::ListInputBindingsResponse*) override {
      return impl_.Authorize(*ctx);
    }

    grpc::Status OnBulkTopicEvent(grpc::ServerContext* ctx, const pb::TopicEventBulkRequest* req,
                                  pb::TopicEventBulkResponse* resp) override {
      if (grpc::Status s = impl_.Authorize(*ctx); !s.ok()) return s;
      return impl_.Bulk(*ctx, *req, resp);
    }

   private:
    Impl& impl_;
  };

  class Health final : public pb::AppCallbackHealthCheck::Service {
   public:
    explicit Health(Impl& impl) : impl_(impl) {}
    grpc::Status HealthCheck(grpc::ServerContext* ctx, const google::protobuf::Empty*,
                             pb::HealthCheckResponse*) override {
      if (grpc::Status s = impl_.Authorize(*ctx); !s.ok()) return s;
      std::function<absl::Status()> health;
      {
        std::lock_guard lock(impl_.registry.mu);
        health = impl_.registry.health;
      }
      return health ? ToGrpc(health()) : grpc::Status::OK;
    }

   private:
    Impl& impl_;
  };

  // Sidecars older than 1.17 call the bulk RPC on the alpha service.
  class Alpha final : public pb::AppCallbackAlpha::Service {
   public:
    explicit Alpha(Impl& impl) : impl_(impl) {}
    grpc::Status OnBulkTopicEventAlpha1(grpc::ServerContext* ctx,
                                        const pb::TopicEventBulkRequest* req,
                                        pb::TopicEventBulkResponse* resp) override {
      if (grpc::Status s = impl_.Authorize(*ctx); !s.ok()) return s;
      return impl_.Bulk(*ctx, *req, resp);
    }

   private:
    Impl& impl_;
  };

  explicit Impl(AppOptions opts)
      : options(std::move(opts)), callback(*this), health(*this), alpha(*this) {
    if (options.api_token) {
      token = *options.api_token;
    } else if (const char* env = std::getenv("APP_API_TOKEN"); env != nullptr) {
      token = env;
    }
  }

  grpc::Status Authorize(const grpc::ServerContext& ctx) const {
    if (token.empty()) return grpc::Status::OK;
    auto it = ctx.client_metadata().find("dapr-api-token");
    if (it == ctx.client_metadata().end()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "missing api token in request metadata");
    }
    if (std::string_view(it->second.data(), it->second.size()) != token) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "authentication error: api token mismatch");
    }
    return grpc::Status::OK;
  }

  // The handler of the route the sidecar matched. A sidecar that sends no path means the default
  // route of the topic.
  TopicHandler FindRoute(const std::string& pubsub, const std::string& topic,
                         const std::string& path) {
    std::lock_guard lock(registry.mu);
    for (const Route& route : registry.routes) {
      const Subscription& s = route.subscription;
      if (s.pubsub != pubsub || s.topic != topic) continue;
      if (path.empty() ? s.match.empty() : s.route == path) return route.handler;
    }
    return nullptr;
  }

  // UNIMPLEMENTED makes Dapr drop the event instead of redelivering it forever.
  static grpc::Status NoRoute(const std::string& pubsub, const std::string& topic,
                              const std::string& path) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        StrCat("the app has no handler for pubsub '", pubsub, "' topic '", topic,
                               "' route '", path, "'"));
  }

  grpc::Status Bulk(const grpc::ServerContext& ctx, const pb::TopicEventBulkRequest& req,
                    pb::TopicEventBulkResponse* resp) {
    TopicHandler handler = FindRoute(req.pubsub_name(), req.topic(), req.path());
    if (!handler) return NoRoute(req.pubsub_name(), req.topic(), req.path());
    Metadata call_metadata = MetadataOf(ctx);
    for (const pb::TopicEventBulkRequestEntry& entry : req.entries()) {
      TopicEvent event;
      event.topic = req.topic();
      event.pubsub = req.pubsub_name();
      event.path = req.path();
      if (entry.has_cloud_event()) {
        const pb::TopicEventCERequest& ce = entry.cloud_event();
        event.id = ce.id();
        event.source = ce.source();
        event.type = ce.type();
        event.spec_version = ce.spec_version();
        event.data_content_type = ce.data_content_type();
        event.data = ce.data();
        event.extensions = StructToJson(ce.extensions());
      } else {
        event.id = entry.entry_id();
        event.data = entry.bytes();
        event.data_content_type = entry.content_type();
        event.extensions = nlohmann::json::object();
      }
      event.metadata = call_metadata;
      for (const auto& [k, v] : req.metadata()) event.metadata[k] = v;
      for (const auto& [k, v] : entry.metadata()) event.metadata[k] = v;
      pb::TopicEventBulkResponseEntry* status = resp->add_statuses();
      status->set_entry_id(entry.entry_id());
      status->set_status(ToProto(handler(event)));
    }
    return grpc::Status::OK;
  }

  AppOptions options;
  std::string token;
  Registry registry;
  Callback callback;
  Health health;
  Alpha alpha;

  // Lifecycle: Start/Stop are serialized by this mutex (never held by a handler's call).
  std::mutex life_mu;
  enum class State { kNew, kServing, kStopped };
  State state = State::kNew;
  std::unique_ptr<grpc::Server> server;
  std::atomic<int> port{0};
  std::atomic<bool> stop_requested{false};
};

App::App(AppOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

App::~App() { Stop(); }

void App::Subscribe(Subscription subscription, TopicHandler handler) {
  std::lock_guard lock(impl_->registry.mu);
  Impl::Registry& r = impl_->registry;
  const std::string name =
      StrCat("pubsub '", subscription.pubsub, "' topic '", subscription.topic, "'");
  if (subscription.pubsub.empty() || subscription.topic.empty()) {
    r.errors.push_back(StrCat("Subscribe(", name, "): pubsub and topic must be set"));
    return;
  }
  if (!handler) {
    r.errors.push_back(StrCat("Subscribe(", name, "): no handler"));
    return;
  }
  int rules = 0;
  for (const Route& route : r.routes) {
    const Subscription& s = route.subscription;
    if (s.pubsub != subscription.pubsub || s.topic != subscription.topic) continue;
    if (!s.match.empty()) ++rules;
    if (s.match.empty() && subscription.match.empty()) {
      r.errors.push_back(StrCat("Subscribe(", name, "): a second default route (set .match)"));
      return;
    }
  }
  if (subscription.route.empty()) {
    subscription.route = StrCat("/", subscription.pubsub, "/", subscription.topic);
    if (!subscription.match.empty()) StrAppend(&subscription.route, "/", rules);
  }
  for (const Route& route : r.routes) {
    const Subscription& s = route.subscription;
    if (s.pubsub == subscription.pubsub && s.topic == subscription.topic &&
        s.route == subscription.route) {
      r.errors.push_back(
          StrCat("Subscribe(", name, "): route '", subscription.route, "' registered twice"));
      return;
    }
  }
  r.routes.push_back({std::move(subscription), std::move(handler)});
}

void App::OnInvoke(std::string method, InvokeHandler handler) {
  std::lock_guard lock(impl_->registry.mu);
  Impl::Registry& r = impl_->registry;
  if (!handler) {
    r.errors.push_back(StrCat("OnInvoke('", method, "'): no handler"));
    return;
  }
  if (!r.methods.emplace(method, std::move(handler)).second) {
    r.errors.push_back(StrCat("OnInvoke('", method, "'): method registered twice"));
  }
}

void App::OnHealthCheck(std::function<absl::Status()> handler) {
  std::lock_guard lock(impl_->registry.mu);
  impl_->registry.health = std::move(handler);
}

absl::Status App::Start() {
  std::lock_guard life(impl_->life_mu);
  if (impl_->state != Impl::State::kNew) {
    return MakeStatus(absl::StatusCode::kFailedPrecondition, impl_->state == Impl::State::kServing
                                                                 ? "the app is already serving"
                                                                 : "the app was stopped");
  }
  {
    std::lock_guard lock(impl_->registry.mu);
    if (!impl_->registry.errors.empty()) {
      std::string message = "bad registrations:";
      for (const std::string& e : impl_->registry.errors) StrAppend(&message, " ", e, ";");
      return MakeStatus(absl::StatusCode::kInvalidArgument, message);
    }
  }
  int port = kDefaultAppPort;
  if (impl_->options.port) {
    port = *impl_->options.port;
  } else if (const char* env = std::getenv("APP_PORT"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    long parsed = std::strtol(env, &end, 10);
    if (*end != '\0' || parsed <= 0 || parsed > 65535) {
      return MakeStatus(absl::StatusCode::kInvalidArgument,
                        StrCat("APP_PORT='", env, "' is not a port"));
    }
    port = static_cast<int>(parsed);
  }
  if (port < 0 || port > 65535) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("AppOptions.port ", port, " is not a port"));
  }
  grpc::ServerBuilder builder;
  int bound = 0;
  const std::string address = impl_->options.host.find(':') != std::string::npos
                                  ? StrCat("[", impl_->options.host, "]:", port)
                                  : StrCat(impl_->options.host, ":", port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &bound);
  // The sidecar enforces its own body limit; events as large as it lets through must arrive.
  builder.SetMaxReceiveMessageSize(-1);
  // gRPC binds with SO_REUSEPORT by default: a second app (or a stale one) on the same port would
  // then share it silently and get half of the sidecar's calls. A port in use must be an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&impl_->callback);
  builder.RegisterService(&impl_->health);
  builder.RegisterService(&impl_->alpha);
  impl_->server = builder.BuildAndStart();
  if (impl_->server == nullptr || bound == 0) {
    impl_->server.reset();
    return MakeStatus(absl::StatusCode::kUnavailable,
                      StrCat("cannot serve the app on ", address, " (port in use?)"));
  }
  impl_->port.store(bound);
  impl_->state = Impl::State::kServing;
  return absl::OkStatus();
}

absl::Status App::Run() {
  // Block the signals before Start so that the server's threads inherit the mask and the signals
  // stay pending for sigtimedwait below instead of killing the process.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &signals, &previous);
  absl::Status status = Start();
  if (status.ok()) {
    // A short timeout lets Stop() from another thread end the wait without a signal of its own.
    const timespec tick{0, 100 * 1000 * 1000};
    while (!impl_->stop_requested.load()) {
      int sig = sigtimedwait(&signals, nullptr, &tick);
      if (sig == SIGINT || sig == SIGTERM) break;
    }
    Stop();
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return status;
}

void App::Stop() {
  impl_->stop_requested.store(true);
  std::lock_guard life(impl_->life_mu);
  if (impl_->server != nullptr) {
    // Waits for the calls in flight (their handlers) to return; new calls are refused.
    impl_->server->Shutdown();
    impl_->server->Wait();
    impl_->server.reset();
  }
  impl_->state = Impl::State::kStopped;
}

int App::port() const { return impl_->port.load(); }

}  // namespace remora
