#include "tests/tools/grpc_test_app.h"

#include <atomic>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "dapr/proto/runtime/v1/appcallback.grpc.pb.h"

namespace remora::testing {
namespace {

namespace v1 = ::dapr::proto::runtime::v1;
namespace common = ::dapr::proto::common::v1;

std::map<std::string, std::string> MetadataOf(const ::grpc::ServerContext& ctx) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : ctx.client_metadata()) {
    out[std::string(k.data(), k.size())] = std::string(v.data(), v.size());
  }
  return out;
}

}  // namespace

struct GrpcTestApp::Impl final : public v1::AppCallback::Service,
                                 public v1::AppCallbackHealthCheck::Service {
  Options options;
  int port = 0;
  std::unique_ptr<::grpc::Server> server;

  mutable std::mutex mu;
  Policy policy;
  std::vector<Event> events;
  std::map<std::pair<std::string, std::string>, int> attempts;  // (path, id) → deliveries
  std::vector<Invocation> invocations;
  std::atomic<int> list_calls{0};
  std::atomic<int> health_checks{0};
  std::atomic<int> concurrent{0};
  std::atomic<int> max_concurrent{0};

  ::grpc::Status ListTopicSubscriptions(::grpc::ServerContext*, const google::protobuf::Empty*,
                                        v1::ListTopicSubscriptionsResponse* res) override {
    list_calls.fetch_add(1);
    if (options.subscriptions_unimplemented) {
      return ::grpc::Status(::grpc::StatusCode::UNIMPLEMENTED, "no subscriptions here");
    }
    *res = options.subscriptions;
    return ::grpc::Status::OK;
  }

  ::grpc::Status OnTopicEvent(::grpc::ServerContext* ctx, const v1::TopicEventRequest* req,
                              v1::TopicEventResponse* res) override {
    Event event;
    event.request = *req;
    event.metadata = MetadataOf(*ctx);
    Policy current;
    {
      std::lock_guard lock(mu);
      event.attempt = ++attempts[{req->path(), req->id()}];
      events.push_back(event);
      current = policy;
    }
    int now = concurrent.fetch_add(1) + 1;
    for (int seen = max_concurrent.load();
         now > seen && !max_concurrent.compare_exchange_weak(seen, now);) {
    }
    Answer answer = current ? current(event) : Answer{};
    // The app being slow is the point here (concurrency limits), not a wait of the test.
    if (answer.delay.count() > 0) std::this_thread::sleep_for(answer.delay);
    concurrent.fetch_sub(1);
    if (!answer.error.ok()) return answer.error;
    res->set_status(answer.status);
    return ::grpc::Status::OK;
  }

  ::grpc::Status OnBulkTopicEvent(::grpc::ServerContext* ctx, const v1::TopicEventBulkRequest* req,
                                  v1::TopicEventBulkResponse* res) override {
    for (const v1::TopicEventBulkRequestEntry& entry : req->entries()) {
      Event event;
      event.bulk = true;
      event.metadata = MetadataOf(*ctx);
      const v1::TopicEventCERequest& ce = entry.cloud_event();
      event.request.set_id(entry.has_cloud_event() ? ce.id() : entry.entry_id());
      event.request.set_source(ce.source());
      event.request.set_type(ce.type());
      event.request.set_spec_version(ce.spec_version());
      event.request.set_data_content_type(ce.data_content_type());
      event.request.set_data(entry.has_cloud_event() ? ce.data() : entry.bytes());
      *event.request.mutable_extensions() = ce.extensions();
      event.request.set_topic(req->topic());
      event.request.set_pubsub_name(req->pubsub_name());
      event.request.set_path(req->path());
      Policy current;
      {
        std::lock_guard lock(mu);
        event.attempt = ++attempts[{req->path(), event.request.id()}];
        events.push_back(event);
        current = policy;
      }
      Answer answer = current ? current(event) : Answer{};
      v1::TopicEventBulkResponseEntry* status = res->add_statuses();
      status->set_entry_id(entry.entry_id());
      status->set_status(answer.error.ok() ? answer.status : v1::TopicEventResponse::RETRY);
    }
    return ::grpc::Status::OK;
  }

  ::grpc::Status OnInvoke(::grpc::ServerContext* ctx, const common::InvokeRequest* req,
                          common::InvokeResponse* res) override {
    {
      std::lock_guard lock(mu);
      invocations.push_back({*req, MetadataOf(*ctx)});
    }
    if (req->method() == "fail") {
      return ::grpc::Status(::grpc::StatusCode::NOT_FOUND, "no such method");
    }
    ctx->AddInitialMetadata("x-echo", req->method());
    res->set_content_type("text/plain");
    res->mutable_data()->set_value(req->method() + ":" + req->data().value());
    return ::grpc::Status::OK;
  }

  ::grpc::Status HealthCheck(::grpc::ServerContext*, const google::protobuf::Empty*,
                             v1::HealthCheckResponse*) override {
    health_checks.fetch_add(1);
    return ::grpc::Status::OK;
  }
};

absl::StatusOr<std::unique_ptr<GrpcTestApp>> GrpcTestApp::Start(Options options) {
  std::unique_ptr<GrpcTestApp> app(new GrpcTestApp());
  app->impl_ = std::make_unique<Impl>();
  app->impl_->options = std::move(options);
  ::grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", ::grpc::InsecureServerCredentials(), &app->impl_->port);
  builder.RegisterService(static_cast<v1::AppCallback::Service*>(app->impl_.get()));
  builder.RegisterService(static_cast<v1::AppCallbackHealthCheck::Service*>(app->impl_.get()));
  app->impl_->server = builder.BuildAndStart();
  if (app->impl_->server == nullptr || app->impl_->port <= 0) {
    return absl::UnavailableError("the gRPC test app cannot listen");
  }
  return app;
}

GrpcTestApp::~GrpcTestApp() {
  if (impl_ && impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now());
    impl_->server->Wait();
  }
}

int GrpcTestApp::port() const { return impl_->port; }

void GrpcTestApp::SetPolicy(Policy policy) {
  std::lock_guard lock(impl_->mu);
  impl_->policy = std::move(policy);
}

std::vector<GrpcTestApp::Event> GrpcTestApp::Events() const {
  std::lock_guard lock(impl_->mu);
  return impl_->events;
}

std::vector<GrpcTestApp::Event> GrpcTestApp::EventsOn(const std::string& path) const {
  std::vector<Event> out;
  for (Event& e : Events()) {
    if (e.request.path() == path) out.push_back(std::move(e));
  }
  return out;
}

bool GrpcTestApp::WaitFor(const std::function<bool(const std::vector<Event>&)>& done,
                          std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done(Events())) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int GrpcTestApp::list_calls() const { return impl_->list_calls.load(); }

int GrpcTestApp::max_concurrent() const { return impl_->max_concurrent.load(); }

std::vector<GrpcTestApp::Invocation> GrpcTestApp::Invocations() const {
  std::lock_guard lock(impl_->mu);
  return impl_->invocations;
}

int GrpcTestApp::health_checks() const { return impl_->health_checks.load(); }

}  // namespace remora::testing
