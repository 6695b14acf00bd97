// The remote client's pub/sub and secrets calls against a real remorad: events published with
// PublishEvent / BulkPublishEvent reach a subscriber app through pubsub.in-memory, secrets come
// from a local.file store, InvokeMethod reaches the HTTP app through the sidecar, and the
// sidecar's error codes arrive as the SDK's statuses.

#include <chrono>
#include <optional>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "remora/client.h"
#include "remora/components/common/strings.h"
#include "tests/tools/test_app.h"
#include "tests/tools/test_env.h"

namespace remora::sdk_test {
namespace {

using testing::TestApp;

class RemoteApisTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto app = TestApp::Start({.subscribe_body = R"([
      {"pubsubname":"pubsub","topic":"orders","route":"/orders"},
      {"pubsubname":"pubsub","topic":"batch","route":"/batch"}])"});
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = app->release();
    const std::string secrets_dir =
        testing::WriteTempFile("secrets.json", R"({"db":{"user":"u1","password":"p1"},"api":"k"})");
    const std::string resources = StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: pubsub }
spec: { type: pubsub.in-memory, version: v1 }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: localsecrets }
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - { name: secretsFile, value: ")",
                                         secrets_dir, R"(/secrets.json" }
)");
    const std::string dir = testing::WriteTempFile("components.yaml", resources);
    auto sidecar = testing::StartRemorad({"--app-id", "sdk-apis", "--resources-path", dir,
                                          "--app-port", std::to_string(app_->port())});
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = new testing::Remorad(*std::move(sidecar));
  }

  static void TearDownTestSuite() {
    delete sidecar_;
    sidecar_ = nullptr;
    delete app_;
    app_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(sidecar_, nullptr);
    RemoteOptions options;
    options.address = StrCat("127.0.0.1:", sidecar_->grpc_port);
    options.api_token = "";
    client_ = Client::Remote(options);
  }

  static TestApp* app_;
  static testing::Remorad* sidecar_;
  std::unique_ptr<Client> client_;
};

TestApp* RemoteApisTest::app_ = nullptr;
testing::Remorad* RemoteApisTest::sidecar_ = nullptr;

TEST_F(RemoteApisTest, PublishedEventReachesTheSubscriber) {
  ASSERT_TRUE(client_->PublishJson("pubsub", "orders", {{"id", 7}, {"qty", 3}}).ok());
  ASSERT_TRUE(client_
                  ->PublishEvent({.pubsub = "pubsub",
                                  .topic = "orders",
                                  .data = "plain words",
                                  .content_type = "text/plain",
                                  .metadata = {{"cloudevent.type", "order.note"}}})
                  .ok());
  ASSERT_TRUE(app_->WaitFor([](const auto&) { return app_->EventsOn("/orders").size() >= 2; }));
  std::vector<TestApp::Event> events = app_->EventsOn("/orders");
  ASSERT_EQ(events.size(), 2u);
  // The sidecar wrapped each in a CloudEvent; the order of delivery is the broker's.
  bool saw_json = false, saw_text = false;
  for (const TestApp::Event& e : events) {
    ASSERT_TRUE(e.json.is_object()) << e.body;
    EXPECT_EQ(e.json["topic"], "orders");
    EXPECT_EQ(e.json["pubsubname"], "pubsub");
    if (e.json["datacontenttype"] == "application/json") {
      saw_json = true;
      EXPECT_EQ(e.json["data"], nlohmann::json({{"id", 7}, {"qty", 3}}));
    } else {
      saw_text = true;
      EXPECT_EQ(e.json["data"], "plain words");
      EXPECT_EQ(e.json["type"], "order.note");
    }
  }
  EXPECT_TRUE(saw_json && saw_text);
}

TEST_F(RemoteApisTest, BulkPublishDeliversEveryEntry) {
  BulkPublishRequest request{.pubsub = "pubsub", .topic = "batch"};
  for (int i = 0; i < 3; ++i) {
    request.entries.push_back(
        {.event = StrCat(R"({"n":)", i, "}"), .content_type = "application/json"});
  }
  absl::StatusOr<BulkPublishResult> result = client_->BulkPublishEvent(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->all_published());
  ASSERT_TRUE(app_->WaitFor([](const auto&) { return app_->EventsOn("/batch").size() >= 3; }));
  std::set<int> seen;
  for (const TestApp::Event& e : app_->EventsOn("/batch"))
    seen.insert(e.json["data"]["n"].get<int>());
  EXPECT_EQ(seen, (std::set<int>{0, 1, 2}));
}

TEST_F(RemoteApisTest, PublishErrorsCarryDaprsCodes) {
  absl::Status unknown = client_->PublishEvent("nosuch", "orders", "x");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument) << unknown;
  EXPECT_EQ(ErrorReason(unknown), "DAPR_PUBSUB_NOT_FOUND") << unknown;
  absl::Status no_topic = client_->PublishEvent("pubsub", "", "x");
  EXPECT_EQ(no_topic.code(), absl::StatusCode::kInvalidArgument) << no_topic;
  auto bulk =
      client_->BulkPublishEvent({.pubsub = "nosuch", .topic = "t", .entries = {{.event = "x"}}});
  EXPECT_EQ(bulk.status().code(), absl::StatusCode::kInvalidArgument) << bulk.status();
}

// Service invocation of the sidecar's own app id: remorad calls the HTTP app on --app-port.
TEST_F(RemoteApisTest, InvokeMethodReachesTheAppAndReturnsItsAnswer) {
  app_->SetPolicy([](const TestApp::Event& e) {
    if (e.path.rfind("/echo", 0) == 0)
      return TestApp::Answer{.status = 200, .body = "pong:" + e.body};
    if (e.path.rfind("/gone", 0) == 0) return TestApp::Answer{.status = 404, .body = "no such"};
    return TestApp::Answer{};
  });
  auto answer = client_->InvokeMethod({.app_id = "sdk-apis",
                                       .method = "echo",
                                       .verb = "put",
                                       .data = "ping",
                                       .content_type = "text/plain",
                                       .headers = {{"X-Order", "7"}},
                                       .query = "a=1"});
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->data, "pong:ping");
  EXPECT_EQ(answer->http_status, 200);
  std::vector<TestApp::Event> calls = app_->EventsOn("/echo");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].method, "PUT");
  EXPECT_EQ(calls[0].body, "ping");
  EXPECT_EQ(calls[0].headers["x-order"], "7");

  auto gone = client_->InvokeMethod("sdk-apis", "gone", "GET");
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound) << gone.status();
  EXPECT_EQ(client_->InvokeMethod({.app_id = "sdk-apis", .method = "echo", .verb = "FETCH"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RemoteApisTest, SecretsFromALocalFileStore) {
  absl::StatusOr<Secret> api = client_->GetSecret("localsecrets", "api");
  ASSERT_TRUE(api.ok()) << api.status();
  EXPECT_EQ(*api, (Secret{{"api", "k"}}));
  // local.file flattens nested objects with its default separator ":".
  absl::StatusOr<Secret> user = client_->GetSecret("localsecrets", "db:user");
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(*user, (Secret{{"db:user", "u1"}}));

  absl::StatusOr<BulkSecret> all = client_->GetBulkSecret("localsecrets");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)["db:password"], (Secret{{"db:password", "p1"}}));
  EXPECT_EQ((*all)["api"], (Secret{{"api", "k"}}));
}

TEST_F(RemoteApisTest, SecretErrorsCarryDaprsCodes) {
  auto unknown_store = client_->GetSecret("nosuch", "api");
  EXPECT_EQ(unknown_store.status().code(), absl::StatusCode::kInvalidArgument)
      << unknown_store.status();
  auto missing = client_->GetSecret("localsecrets", "absent");
  EXPECT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInternal) << missing.status();
  auto bulk = client_->GetBulkSecret("nosuch");
  EXPECT_EQ(bulk.status().code(), absl::StatusCode::kInvalidArgument) << bulk.status();
}

}  // namespace
}  // namespace remora::sdk_test
