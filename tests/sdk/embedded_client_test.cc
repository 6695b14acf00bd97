// The SDK's embedded transport: the shared client suite against an in-process runtime, plus what
// only embedded mode has (components from a YAML directory, start-up errors, Shutdown).

#include "remora/client.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "remora/components/common/strings.h"
#include "tests/sdk/client_suite.h"
#include "tests/tools/redis_server.h"
#include "tests/tools/test_env.h"

namespace remora::sdk_test {
namespace {

Transport EmbeddedTransport() {
  return {"Embedded", "state.in-memory", [] {
            EmbeddedOptions options;
            options.app_id = kAppId;
            return Client::Embedded(options);
          }};
}

INSTANTIATE_TEST_SUITE_P(Embedded, ClientSuite, ::testing::Values(EmbeddedTransport()),
                         TransportName);

#if REMORA_TEST_STATE_REDIS
// The suite again with "statestore" on state.redis against a real redis-server: that store answers
// on the runtime's event loop, so every call waits for a callback from another thread.
absl::StatusOr<std::unique_ptr<Client>> EmbeddedRedisClient() {
  static std::unique_ptr<testing::RedisServer> redis;  // one per run, killed at exit
  static std::string dir;
  if (!redis) {
    auto started = testing::RedisServer::Start();
    if (!started.ok()) return started.status();
    redis = *std::move(started);
    dir = testing::WriteTempFile("statestore.yaml", StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: ")",
                                                           redis->address(), "\"\n"));
  }
  EmbeddedOptions options;
  options.app_id = kAppId;
  options.resources_paths = {dir};
  return Client::Embedded(options);
}

INSTANTIATE_TEST_SUITE_P(EmbeddedRedis, ClientSuite,
                         ::testing::Values(Transport{"EmbeddedRedis", "state.redis",
                                                     EmbeddedRedisClient}),
                         TransportName);
#endif

TEST(EmbeddedClientTest, LoadsComponentsFromAResourcesDirectory) {
  std::string dir = testing::WriteTempFile("orders.yaml", R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orders
spec:
  type: state.in-memory
  version: v1
  metadata:
  - name: keyPrefix
    value: none
)");
  EmbeddedOptions options;
  options.app_id = "shop";
  options.resources_paths = {dir};
  auto client = Client::Embedded(options);
  ASSERT_TRUE(client.ok()) << client.status();

  ASSERT_TRUE((*client)->SaveState("orders", "o-1", "3 cakes").ok());
  EXPECT_EQ((*client)->GetState("orders", "o-1")->value, "3 cakes");
  // Only what the directory declares: no built-in default store next to it.
  EXPECT_EQ((*client)->GetState("statestore", "o-1").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto md = (*client)->GetMetadata();
  ASSERT_TRUE(md.ok());
  ASSERT_EQ(md->components.size(), 1u);
  EXPECT_EQ(md->components[0].name, "orders");
}

TEST(EmbeddedClientTest, BadComponentFileFailsCreationNamingTheFile) {
  std::string dir = testing::WriteTempFile("broken.yaml", R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: broken
spec:
  type: state.no-such-type
  version: v1
)");
  EmbeddedOptions options;
  options.resources_paths = {dir};
  auto client = Client::Embedded(options);
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.status().message().find("broken.yaml"), absl::string_view::npos)
      << client.status();
  EXPECT_NE(client.status().message().find("state.no-such-type"), absl::string_view::npos)
      << client.status();
}

TEST(EmbeddedClientTest, UnknownLogLevelIsRejected) {
  EmbeddedOptions options;
  options.log_level = "loud";
  auto client = Client::Embedded(options);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(client.status().message().find("loud"), absl::string_view::npos);
}

TEST(EmbeddedClientTest, CallsAfterShutdownFailWithFailedPrecondition) {
  auto client = Client::Embedded();
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->SaveState("statestore", "k", "v").ok());
  ASSERT_TRUE((*client)->Shutdown().ok());
  EXPECT_EQ((*client)->GetState("statestore", "k").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*client)->SaveState("statestore", "k", "v").code(),
            absl::StatusCode::kFailedPrecondition);
}

// Pub/sub and secrets in-process: publish through pubsub.in-memory, secrets from local.file, with
// the same codes and reasons as over gRPC.
TEST(EmbeddedClientTest, PublishesAndReadsSecretsThroughTheRuntimesBlocks) {
  std::string secrets = testing::WriteTempFile("s.json", R"({"db":{"user":"u1"},"api":"k"})");
  std::string dir = testing::WriteTempFile("components.yaml", StrCat(R"(apiVersion: dapr.io/v1alpha1
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
                                                                     secrets, "/s.json\" }\n"));
  EmbeddedOptions options;
  options.app_id = "shop";
  options.resources_paths = {dir};
  auto client = Client::Embedded(options);
  ASSERT_TRUE(client.ok()) << client.status();

  EXPECT_TRUE((*client)->PublishJson("pubsub", "orders", {{"qty", 3}}).ok());
  absl::Status unknown = (*client)->PublishEvent("nosuch", "orders", "x");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument) << unknown;
  EXPECT_EQ(ErrorReason(unknown), "DAPR_PUBSUB_NOT_FOUND");
  auto bulk = (*client)->BulkPublishEvent(
      {.pubsub = "pubsub", .topic = "orders", .entries = {{.event = "a"}, {.event = "b"}}});
  ASSERT_TRUE(bulk.ok()) << bulk.status();
  EXPECT_TRUE(bulk->all_published());

  auto api = (*client)->GetSecret("localsecrets", "api");
  ASSERT_TRUE(api.ok()) << api.status();
  EXPECT_EQ(*api, (Secret{{"api", "k"}}));
  auto all = (*client)->GetBulkSecret("localsecrets");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, (BulkSecret{{"api", {{"api", "k"}}}, {"db:user", {{"db:user", "u1"}}}}));
  EXPECT_EQ((*client)->GetSecret("nosuch", "api").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*client)->GetSecret("localsecrets", "absent").status().code(),
            absl::StatusCode::kInternal);
}

#if REMORA_TEST_STATE_REDIS
// Configuration and lock in-process on configuration.redis and lock.redis (a real redis-server):
// the same answers as through a sidecar; invocation is not available embedded.
TEST(EmbeddedClientTest, ConfigurationAndLockThroughTheRuntimesBlocks) {
  auto redis = testing::RedisServer::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  ASSERT_TRUE((*redis)->Command({"SET", "limit", "100||3"}).ok());
  auto component = [&](const std::string& name, const std::string& type) {
    return StrCat("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: { name: ", name,
                  " }\nspec:\n  type: ", type, "\n  version: v1\n  metadata:\n",
                  "  - { name: redisHost, value: \"", (*redis)->address(), "\" }\n---\n");
  };
  EmbeddedOptions options;
  options.app_id = "shop";
  options.resources_paths = {testing::WriteTempFile(
      "c.yaml",
      component("configstore", "configuration.redis") + component("lockstore", "lock.redis"))};
  auto client = Client::Embedded(options);
  ASSERT_TRUE(client.ok()) << client.status();

  auto got = (*client)->GetConfiguration("configstore", {"limit"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->at("limit").value, "100");
  EXPECT_EQ(got->at("limit").version, "3");

  std::mutex mu;
  std::condition_variable cv;
  std::vector<ConfigurationUpdate> updates;
  auto id = (*client)->SubscribeConfiguration("configstore", {"limit"},
                                              [&](const ConfigurationUpdate& u) {
                                                std::lock_guard lock(mu);
                                                updates.push_back(u);
                                                cv.notify_all();
                                              });
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE((*redis)->Command({"SET", "limit", "7||8"}).ok());
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return !updates.empty(); }));
    EXPECT_EQ(updates[0].subscription_id, *id);
    EXPECT_EQ(updates[0].items.at("limit").value, "7");
  }
  EXPECT_TRUE((*client)->UnsubscribeConfiguration("configstore", *id).ok());

  EXPECT_TRUE((*client)->TryLock("lockstore", "r1", "me", 30).value());
  EXPECT_FALSE((*client)->TryLock("lockstore", "r1", "you", 30).value());
  EXPECT_EQ((*client)->Unlock("lockstore", "r1", "you").value(),
            UnlockStatus::kLockBelongsToOthers);
  EXPECT_EQ((*client)->Unlock("lockstore", "r1", "me").value(), UnlockStatus::kSuccess);
  EXPECT_EQ((*client)->TryLock("nope", "r1", "me", 30).status().code(),
            absl::StatusCode::kInvalidArgument);

  EXPECT_EQ((*client)->InvokeMethod("shop", "m").status().code(),
            absl::StatusCode::kFailedPrecondition);
}
#endif

}  // namespace
}  // namespace remora::sdk_test
