// The remote client's configuration and lock calls against a real remorad on configuration.redis
// and lock.redis (one real redis-server): values and versions, a subscription whose handler sees
// a change made in Redis and nothing after Unsubscribe, and the lock's owner rules.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "remora/client.h"
#include "remora/components/common/strings.h"
#include "tests/tools/redis_server.h"
#include "tests/tools/test_env.h"

namespace remora::sdk_test {
namespace {

std::string Component(const std::string& name, const std::string& type, const std::string& redis) {
  return StrCat("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: { name: ", name,
                " }\nspec:\n  type: ", type, "\n  version: v1\n  metadata:\n",
                "  - { name: redisHost, value: \"", redis, "\" }\n---\n");
}

class RemoteConfigLockTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto redis = testing::RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = redis->release();
    ASSERT_TRUE(redis_->Command({"SET", "limit", "100||3"}).ok());
    ASSERT_TRUE(redis_->Command({"SET", "color", "blue"}).ok());
    const std::string dir = testing::WriteTempFile(
        "components.yaml", Component("configstore", "configuration.redis", redis_->address()) +
                               Component("lockstore", "lock.redis", redis_->address()));
    auto sidecar = testing::StartRemorad({"--app-id", "sdk-cfg", "--resources-path", dir});
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = new testing::Remorad(*std::move(sidecar));
  }

  static void TearDownTestSuite() {
    delete sidecar_;
    sidecar_ = nullptr;
    delete redis_;
    redis_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(sidecar_, nullptr);
    RemoteOptions options;
    options.address = StrCat("127.0.0.1:", sidecar_->grpc_port);
    options.api_token = "";
    client_ = Client::Remote(options);
  }

  static testing::RedisServer* redis_;
  static testing::Remorad* sidecar_;
  std::unique_ptr<Client> client_;
};

testing::RedisServer* RemoteConfigLockTest::redis_ = nullptr;
testing::Remorad* RemoteConfigLockTest::sidecar_ = nullptr;

TEST_F(RemoteConfigLockTest, GetConfigurationReturnsValuesAndVersions) {
  auto got = client_->GetConfiguration("configstore", {"limit", "color", "missing"});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ(got->at("limit").value, "100");
  EXPECT_EQ(got->at("limit").version, "3");
  EXPECT_EQ(got->at("color").value, "blue");

  auto unknown = client_->GetConfiguration("nope", {"limit"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument) << unknown.status();
}

TEST_F(RemoteConfigLockTest, SubscriptionHandlerSeesChangesUntilUnsubscribed) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<ConfigurationUpdate> updates;
  auto id = client_->SubscribeConfiguration("configstore", {"watched"},
                                            [&](const ConfigurationUpdate& update) {
                                              std::lock_guard lock(mu);
                                              updates.push_back(update);
                                              cv.notify_all();
                                            });
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_FALSE(id->empty());

  ASSERT_TRUE(redis_->Command({"SET", "watched", "on||2"}).ok());
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return !updates.empty(); }));
    EXPECT_EQ(updates[0].subscription_id, *id);
    ASSERT_EQ(updates[0].items.count("watched"), 1u);
    EXPECT_EQ(updates[0].items.at("watched").value, "on");
    EXPECT_EQ(updates[0].items.at("watched").version, "2");
  }

  ASSERT_TRUE(client_->UnsubscribeConfiguration("configstore", *id).ok());
  size_t seen;
  {
    std::lock_guard lock(mu);
    seen = updates.size();
  }
  ASSERT_TRUE(redis_->Command({"SET", "watched", "off||3"}).ok());
  // A change after Unsubscribe returned reaches nobody: a second subscription sees it, ours not.
  std::mutex mu2;
  std::condition_variable cv2;
  bool other_saw = false;
  auto other =
      client_->SubscribeConfiguration("configstore", {"watched"}, [&](const ConfigurationUpdate&) {
        std::lock_guard lock(mu2);
        other_saw = true;
        cv2.notify_all();
      });
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(redis_->Command({"SET", "watched", "again||4"}).ok());
  {
    std::unique_lock lock(mu2);
    ASSERT_TRUE(cv2.wait_for(lock, std::chrono::seconds(10), [&] { return other_saw; }));
  }
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(updates.size(), seen);
  }
  EXPECT_EQ(client_->UnsubscribeConfiguration("configstore", *id).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RemoteConfigLockTest, LockBelongsToItsOwnerUntilUnlocked) {
  auto first = client_->TryLock("lockstore", "order-7", "worker-1", 30);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);
  auto second = client_->TryLock("lockstore", "order-7", "worker-2", 30);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(*second);

  EXPECT_EQ(client_->Unlock("lockstore", "order-7", "worker-2").value(),
            UnlockStatus::kLockBelongsToOthers);
  EXPECT_EQ(client_->Unlock("lockstore", "order-7", "worker-1").value(), UnlockStatus::kSuccess);
  EXPECT_EQ(client_->Unlock("lockstore", "order-7", "worker-1").value(),
            UnlockStatus::kLockDoesNotExist);
  EXPECT_TRUE(client_->TryLock("lockstore", "order-7", "worker-2", 30).value());
}

TEST_F(RemoteConfigLockTest, LockErrorsCarryDaprsCodes) {
  EXPECT_EQ(client_->TryLock("lockstore", "r", "o", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->TryLock("lockstore", "", "o", 5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->TryLock("nope", "r", "o", 5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->Unlock("nope", "r", "o").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace remora::sdk_test
