// gRPC proxying end to end (contract §1.6): a client calls an arbitrary method on remorad's gRPC
// port with `dapr-app-id`; two sidecars with --app-protocol grpc in front of two gRPC apps
// (tools/grpc_test_app). The app's AppCallback/OnInvoke stands in for a user service. Checked: the
// app's message, status and metadata back unchanged, through the own sidecar and through another
// one; the metadata the app sees; Dapr's error for an unknown app id; the app's own UNIMPLEMENTED
// for a method it lacks; the API token; no dapr-app-id keeps UNIMPLEMENTED from the sidecar; a
// streaming call (two request messages) is refused.

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "dapr/proto/runtime/v1/appcallback.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "remora/components/common/strings.h"
#include "tests/tools/grpc_test_app.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

namespace v1 = ::dapr::proto::runtime::v1;
namespace common = ::dapr::proto::common::v1;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Pair;

// A client-streaming call with two request messages, for the proxy's unary-only rule.
class TwoMessages final : public ::grpc::ClientBidiReactor<::grpc::ByteBuffer, ::grpc::ByteBuffer> {
 public:
  TwoMessages(::grpc::GenericStub& stub, ::grpc::ClientContext* ctx, const std::string& method) {
    for (auto* msg : {&first_, &second_}) {
      ::grpc::Slice slice(std::string("\x0a\x01x"));
      *msg = ::grpc::ByteBuffer(&slice, 1);
    }
    stub.PrepareBidiStreamingCall(ctx, method, ::grpc::StubOptions(), this);
    StartRead(&in_);
    StartWrite(&first_);
    StartCall();
  }
  void OnWriteDone(bool ok) override {
    if (ok && writes_++ == 0) return StartWrite(&second_);
    StartWritesDone();
  }
  void OnReadDone(bool) override {}
  void OnDone(const ::grpc::Status& s) override {
    std::lock_guard lock(mu_);
    status_ = s;
    cv_.notify_all();
  }
  std::optional<::grpc::Status> Wait() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(15), [&] { return status_.has_value(); });
    return status_;
  }

 private:
  ::grpc::ByteBuffer first_, second_, in_;
  int writes_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<::grpc::Status> status_;
};

class GrpcProxyE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = WriteTempFile("placeholder", "");
    config_ = WriteTempFile("config.yaml", StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: { name: proxy }
spec:
  nameResolution:
    component: directory
    configuration:
      path: )",
                                                  registry_, R"(/apps
      heartbeatInterval: 200ms
)"));
    for (auto* app : {&app_a_, &app_b_}) {
      auto started = GrpcTestApp::Start({});
      ASSERT_TRUE(started.ok()) << started.status();
      *app = *std::move(started);
    }
    auto a = Sidecar("a", app_a_->port(), {{"DAPR_API_TOKEN", "api-token"}});
    ASSERT_TRUE(a.ok()) << a.status();
    a_ = *std::move(a);
    auto b = Sidecar("b", app_b_->port(), {{"APP_API_TOKEN", "app-token-b"}});
    ASSERT_TRUE(b.ok()) << b.status();
    b_ = *std::move(b);
  }

  absl::StatusOr<Remorad> Sidecar(const std::string& app_id, int app_port,
                                  std::map<std::string, std::string> env) {
    return StartRemorad({"--app-id", app_id, "--app-port", std::to_string(app_port),
                         "--app-protocol", "grpc", "--config", config_ + "/config.yaml"},
                        env);
  }

  // OnInvoke through `sidecar`'s gRPC port as a user service, with `dapr-app-id: target`.
  ::grpc::Status Invoke(const Remorad& sidecar, const std::string& target,
                        const std::string& method, common::InvokeResponse* res,
                        std::multimap<std::string, std::string>* headers = nullptr,
                        const std::string& token = "") {
    auto stub = v1::AppCallback::NewStub(::grpc::CreateChannel(
        StrCat("127.0.0.1:", sidecar.grpc_port), ::grpc::InsecureChannelCredentials()));
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!target.empty()) ctx.AddMetadata("dapr-app-id", target);
    if (!token.empty()) ctx.AddMetadata("dapr-api-token", token);
    ctx.AddMetadata("x-custom", "from-client");
    common::InvokeRequest req;
    req.set_method(method);
    req.mutable_data()->set_value("hello");
    ::grpc::Status s = stub->OnInvoke(&ctx, req, res);
    if (headers != nullptr) {
      for (const auto& [k, v] : ctx.GetServerInitialMetadata()) {
        headers->emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
      }
    }
    return s;
  }

  std::string registry_;
  std::string config_;
  std::unique_ptr<GrpcTestApp> app_a_;
  std::unique_ptr<GrpcTestApp> app_b_;
  Remorad a_;
  Remorad b_;
};

TEST_F(GrpcProxyE2E, OwnAppThroughItsSidecar) {
  common::InvokeResponse res;
  std::multimap<std::string, std::string> headers;
  ::grpc::Status s = Invoke(b_, "b", "greet", &res, &headers);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(res.data().value(), "greet:hello");
  EXPECT_EQ(res.content_type(), "text/plain");
  ASSERT_EQ(headers.count("x-echo"), 1u);
  EXPECT_EQ(headers.find("x-echo")->second, "greet");

  const auto invocations = app_b_->Invocations();
  ASSERT_EQ(invocations.size(), 1u);
  const auto& md = invocations[0].metadata;
  EXPECT_THAT(md, Contains(Pair("x-custom", "from-client")));
  EXPECT_THAT(md, Contains(Pair("dapr-callee-app-id", "b")));
  EXPECT_THAT(md,
              Contains(Pair("dapr-api-token", "app-token-b")));  // APP_API_TOKEN, not the caller's
  EXPECT_EQ(md.count("dapr-app-id"), 0u);
  EXPECT_TRUE(app_a_->Invocations().empty());
}

TEST_F(GrpcProxyE2E, OtherAppThroughTwoSidecars) {
  common::InvokeResponse res;
  std::multimap<std::string, std::string> headers;
  ::grpc::Status s = Invoke(a_, "b", "greet", &res, &headers, "api-token");
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(res.data().value(), "greet:hello");
  ASSERT_EQ(headers.count("x-echo"), 1u);
  EXPECT_EQ(headers.find("x-echo")->second, "greet");

  const auto invocations = app_b_->Invocations();
  ASSERT_EQ(invocations.size(), 1u);
  const auto& md = invocations[0].metadata;
  EXPECT_THAT(md, Contains(Pair("x-custom", "from-client")));
  EXPECT_THAT(md, Contains(Pair("dapr-caller-app-id", "a")));
  EXPECT_THAT(md, Contains(Pair("dapr-callee-app-id", "b")));
  EXPECT_THAT(md, Contains(Pair("dapr-api-token", "app-token-b")));
  EXPECT_TRUE(app_a_->Invocations().empty());

  // And back: b's sidecar to a's app.
  s = Invoke(b_, "a", "back", &res);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(res.data().value(), "back:hello");
  ASSERT_EQ(app_a_->Invocations().size(), 1u);
}

TEST_F(GrpcProxyE2E, AppErrorsPassThrough) {
  common::InvokeResponse res;
  for (const Remorad* sidecar : {&a_, &b_}) {
    ::grpc::Status s = Invoke(*sidecar, "b", "fail", &res, nullptr, "api-token");
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(s.error_message(), "no such method");
  }

  // A method app b does not serve: its own gRPC server's UNIMPLEMENTED, from both sidecars.
  for (const Remorad* sidecar : {&a_, &b_}) {
    ::grpc::GenericStub stub(::grpc::CreateChannel(StrCat("127.0.0.1:", sidecar->grpc_port),
                                                   ::grpc::InsecureChannelCredentials()));
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ctx.AddMetadata("dapr-app-id", "b");
    ctx.AddMetadata("dapr-api-token", "api-token");
    std::string bytes =
        "\x0a\x03"
        "bob";
    ::grpc::Slice slice(bytes);
    ::grpc::ByteBuffer req(&slice, 1), resp;
    std::mutex mu;
    std::condition_variable cv;
    std::optional<::grpc::Status> got;
    stub.UnaryCall(&ctx, "/mycompany.Greeter/SayHello", ::grpc::StubOptions(), &req, &resp,
                   [&](::grpc::Status st) {
                     std::lock_guard lock(mu);
                     got = st;
                     cv.notify_all();
                   });
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(15), [&] { return got.has_value(); }));
    EXPECT_EQ(got->error_code(), ::grpc::StatusCode::UNIMPLEMENTED);
    // The app's answer names its own service; the sidecar's would say "remorad".
    EXPECT_THAT(got->error_message(), ::testing::Not(HasSubstr("remorad")));
  }
}

TEST_F(GrpcProxyE2E, SidecarErrors) {
  common::InvokeResponse res;
  // Unknown app id: Dapr's ERR_DIRECT_INVOKE.
  ::grpc::Status s = Invoke(b_, "nope", "greet", &res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INTERNAL);
  EXPECT_THAT(s.error_message(), HasSubstr("failed to invoke, id: nope"));

  // a checks DAPR_API_TOKEN on proxied calls too.
  s = Invoke(a_, "b", "greet", &res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(app_b_->Invocations().empty());

  // Without dapr-app-id the sidecar does not serve the method itself.
  s = Invoke(b_, "", "greet", &res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_TRUE(app_b_->Invocations().empty());
}

TEST_F(GrpcProxyE2E, StreamingCallsAreRefused) {
  ::grpc::GenericStub stub(::grpc::CreateChannel(StrCat("127.0.0.1:", b_.grpc_port),
                                                 ::grpc::InsecureChannelCredentials()));
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ctx.AddMetadata("dapr-app-id", "b");
  TwoMessages call(stub, &ctx, "/mycompany.Greeter/Chat");
  std::optional<::grpc::Status> s = call.Wait();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->error_code(), ::grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(s->error_message(), HasSubstr("unary calls only"));
}

}  // namespace
}  // namespace remora::testing
