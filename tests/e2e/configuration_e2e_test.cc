// remorad's configuration API end to end on configuration.redis and a real redis-server: HTTP
// GET/subscribe/unsubscribe with updates POSTed to a subscribed app (contract §2.6, §8.3), gRPC
// GetConfiguration and the SubscribeConfiguration stream (§1.2), and Dapr's error codes.

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/tools/redis_server.h"
#include "tests/tools/test_app.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

namespace v1 = ::dapr::proto::runtime::v1;
using ::testing::HasSubstr;
using json = nlohmann::json;

std::string Resources(const RedisServer& redis) {
  return WriteTempFile("config.yaml", StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: configstore }
spec:
  type: configuration.redis
  version: v1
  metadata:
  - { name: redisHost, value: ")",
                                             redis.address(), "\" }\n"));
}

std::unique_ptr<v1::Dapr::Stub> Stub(int port) {
  return v1::Dapr::NewStub(
      ::grpc::CreateChannel(StrCat("127.0.0.1:", port), ::grpc::InsecureChannelCredentials()));
}

void Deadline(::grpc::ClientContext* ctx, int seconds = 10) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

class ConfigurationE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    ASSERT_TRUE(redis_->Command({"SET", "limit", "100||3"}).ok());
    ASSERT_TRUE(redis_->Command({"SET", "color", "blue"}).ok());
  }
  std::unique_ptr<RedisServer> redis_;
};

TEST_F(ConfigurationE2E, HttpGetSubscribeDeliversToTheAppAndUnsubscribe) {
  auto app = TestApp::Start({});
  ASSERT_TRUE(app.ok()) << app.status();
  auto sidecar = StartRemorad({"--app-id", "cfg-http", "--resources-path", Resources(*redis_),
                               "--app-port", std::to_string((*app)->port())});
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  int port = sidecar->http_port;

  auto got = HttpCall("127.0.0.1", port, "GET",
                      "/v1.0/configuration/configstore?key=limit&key=color&key=missing");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 200) << got->body;
  EXPECT_EQ(json::parse(got->body),
            json::parse(R"({"limit":{"value":"100","version":"3","metadata":{}},
                            "color":{"value":"blue","version":"","metadata":{}}})"));
  auto none =
      HttpCall("127.0.0.1", port, "GET", "/v1.0-alpha1/configuration/configstore?key=missing");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->status, 204);
  auto all = HttpCall("127.0.0.1", port, "GET", "/v1.0/configuration/configstore");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(json::parse(all->body).size(), 2u) << all->body;

  auto unknown = HttpCall("127.0.0.1", port, "GET", "/v1.0/configuration/nope?key=limit");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 400);
  EXPECT_EQ(json::parse(unknown->body)["errorCode"], "ERR_CONFIGURATION_STORE_NOT_FOUND");

  auto sub =
      HttpCall("127.0.0.1", port, "GET", "/v1.0/configuration/configstore/subscribe?key=limit");
  ASSERT_TRUE(sub.ok());
  ASSERT_EQ(sub->status, 200) << sub->body;
  std::string id = json::parse(sub->body).value("id", "");
  ASSERT_FALSE(id.empty()) << sub->body;

  ASSERT_TRUE(redis_->Command({"SET", "limit", "200||4"}).ok());
  ASSERT_TRUE((*app)->WaitFor([](const std::vector<TestApp::Event>& events) {
    return !events.empty();
  })) << "the app got no update";
  TestApp::Event update = (*app)->Events().front();
  EXPECT_EQ(update.method, "POST");
  EXPECT_EQ(update.path, "/configuration/configstore/limit");
  EXPECT_EQ(
      update.json,
      json::parse(StrCat(R"({"id":")", id,
                         R"(","items":{"limit":{"value":"200","version":"4","metadata":{}}}})")))
      << update.body;

  auto unsub = HttpCall("127.0.0.1", port, "GET",
                        StrCat("/v1.0/configuration/configstore/", id, "/unsubscribe"));
  ASSERT_TRUE(unsub.ok());
  EXPECT_EQ(unsub->status, 200);
  EXPECT_EQ(json::parse(unsub->body), json::parse(R"({"ok":true})"));
  auto again = HttpCall("127.0.0.1", port, "GET",
                        StrCat("/v1.0/configuration/configstore/", id, "/unsubscribe"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, 500);
  EXPECT_EQ(json::parse(again->body)["ok"], false);
  EXPECT_THAT(json::parse(again->body).value("message", ""),
              HasSubstr("subscription does not exist"));

  // After unsubscribe a change no longer reaches the app: a second subscription on another key
  // proves notifications still flow.
  auto witness =
      HttpCall("127.0.0.1", port, "GET", "/v1.0/configuration/configstore/subscribe?key=color");
  ASSERT_TRUE(witness.ok() && witness->status == 200);
  ASSERT_TRUE(redis_->Command({"SET", "limit", "300||5"}).ok());
  ASSERT_TRUE(redis_->Command({"SET", "color", "red||2"}).ok());
  ASSERT_TRUE((*app)->WaitFor([](const std::vector<TestApp::Event>& events) {
    for (const auto& e : events) {
      if (e.path == "/configuration/configstore/color") return true;
    }
    return false;
  }));
  EXPECT_TRUE((*app)->EventsOn("/configuration/configstore/limit").size() == 1u);
}

TEST_F(ConfigurationE2E, HttpErrorsWithoutStoresOrApp) {
  auto bare = StartRemorad({"--app-id", "cfg-bare"});
  ASSERT_TRUE(bare.ok()) << bare.status();
  auto none =
      HttpCall("127.0.0.1", bare->http_port, "GET", "/v1.0/configuration/configstore?key=a");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->status, 500);
  EXPECT_EQ(json::parse(none->body)["errorCode"], "ERR_CONFIGURATION_STORE_NOT_CONFIGURED");

  auto no_app = StartRemorad({"--app-id", "cfg-noapp", "--resources-path", Resources(*redis_)});
  ASSERT_TRUE(no_app.ok()) << no_app.status();
  auto sub = HttpCall("127.0.0.1", no_app->http_port, "GET",
                      "/v1.0/configuration/configstore/subscribe?key=a");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->status, 500);
  EXPECT_EQ(json::parse(sub->body)["errorCode"], "ERR_APP_CHANNEL_NIL");
}

TEST_F(ConfigurationE2E, GrpcGetAndSubscriptionStream) {
  auto sidecar = StartRemorad({"--app-id", "cfg-grpc", "--resources-path", Resources(*redis_)});
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto stub = Stub(sidecar->grpc_port);

  v1::GetConfigurationRequest get;
  get.set_store_name("configstore");
  get.add_keys("limit");
  get.add_keys("missing");
  v1::GetConfigurationResponse got;
  {
    ::grpc::ClientContext ctx;
    Deadline(&ctx);
    ASSERT_TRUE(stub->GetConfiguration(&ctx, get, &got).ok());
  }
  ASSERT_EQ(got.items().size(), 1u);
  EXPECT_EQ(got.items().at("limit").value(), "100");
  EXPECT_EQ(got.items().at("limit").version(), "3");
  {
    ::grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::GetConfigurationResponse alpha;
    ASSERT_TRUE(stub->GetConfigurationAlpha1(&ctx, get, &alpha).ok());
    EXPECT_EQ(alpha.items().size(), 1u);
  }
  {
    get.set_store_name("nope");
    ::grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::GetConfigurationResponse unknown;
    auto status = stub->GetConfiguration(&ctx, get, &unknown);
    EXPECT_EQ(status.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(), "configuration store nope not found");
  }

  v1::SubscribeConfigurationRequest sub;
  sub.set_store_name("configstore");
  sub.add_keys("limit");
  ::grpc::ClientContext stream_ctx;
  Deadline(&stream_ctx, 30);
  auto reader = stub->SubscribeConfiguration(&stream_ctx, sub);
  v1::SubscribeConfigurationResponse first;
  ASSERT_TRUE(reader->Read(&first));
  ASSERT_FALSE(first.id().empty());
  EXPECT_TRUE(first.items().empty());

  ASSERT_TRUE(redis_->Command({"SET", "limit", "7||8"}).ok());
  v1::SubscribeConfigurationResponse update;
  ASSERT_TRUE(reader->Read(&update));
  EXPECT_EQ(update.id(), first.id());
  ASSERT_EQ(update.items().count("limit"), 1u);
  EXPECT_EQ(update.items().at("limit").value(), "7");
  EXPECT_EQ(update.items().at("limit").version(), "8");

  v1::UnsubscribeConfigurationRequest unsub;
  unsub.set_store_name("configstore");
  unsub.set_id(first.id());
  v1::UnsubscribeConfigurationResponse unsubscribed;
  {
    ::grpc::ClientContext ctx;
    Deadline(&ctx);
    ASSERT_TRUE(stub->UnsubscribeConfiguration(&ctx, unsub, &unsubscribed).ok());
  }
  EXPECT_TRUE(unsubscribed.ok());
  // The stream ends once unsubscribed.
  v1::SubscribeConfigurationResponse after;
  EXPECT_FALSE(reader->Read(&after));
  EXPECT_TRUE(reader->Finish().ok());

  v1::UnsubscribeConfigurationResponse unknown;
  {
    ::grpc::ClientContext ctx;
    Deadline(&ctx);
    ASSERT_TRUE(stub->UnsubscribeConfigurationAlpha1(&ctx, unsub, &unknown).ok());
  }
  EXPECT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.message(), StrCat("failed to unsubscribe to configuration request ", first.id(),
                                      ": subscription does not exist"));

  // A client that goes away ends its subscription; the sidecar keeps serving.
  {
    ::grpc::ClientContext ctx;
    Deadline(&ctx);
    auto gone = stub->SubscribeConfigurationAlpha1(&ctx, sub);
    v1::SubscribeConfigurationResponse id;
    ASSERT_TRUE(gone->Read(&id));
    ctx.TryCancel();
  }
  {
    ::grpc::ClientContext ctx;
    Deadline(&ctx);
    get.set_store_name("configstore");
    ASSERT_TRUE(stub->GetConfiguration(&ctx, get, &got).ok());
  }
  EXPECT_TRUE(sidecar->process->Running());
}

}  // namespace
}  // namespace remora::testing
