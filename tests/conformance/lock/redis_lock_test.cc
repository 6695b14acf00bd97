// lock.redis: the lock conformance suite against a real redis-server on a free port, plus what the
// suite leaves to the implementation: Dapr's layout read and written directly in Redis (so daprd
// and remorad respect each other's locks), Redis going away and coming back, a key of another
// type, a primary with replicas (refused, as Dapr refuses it), and metadata.yaml kept in sync.

#include "components/lock/redis/redis_lock.h"

#include <utility>  // before Asio

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "remora/components/common/strings.h"
#include "tests/conformance/lock/lock_conformance.h"
#include "tests/tools/redis_component.h"
#include "tests/tools/redis_server.h"

namespace remora::conformance::lock {
namespace {

namespace rl = ::remora::components::lock::redis;
using ::remora::testing::RedisServer;
using ::remora::testing::SharedIoContext;
using ::remora::testing::SharedRedisServer;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

LockStoreHarness RedisHarness() {
  LockStoreHarness h;
  h.name = "Redis";
  h.type = "lock.redis";
  h.factory = rl::Create;
  h.prepare = [](components::ComponentContext& context) -> absl::Status {
    absl::StatusOr<RedisServer*> redis = SharedRedisServer();
    if (!redis.ok()) return redis.status();
    context.metadata = components::Metadata({{"redisHost", (*redis)->address()}});
    context.io_context = &SharedIoContext();
    return absl::OkStatus();
  };
  return h;
}

INSTANTIATE_TEST_SUITE_P(Redis, LockConformanceTest, ::testing::Values(RedisHarness()),
                         LockHarnessName());

// ---- lock.redis specifics ------------------------------------------------------------------

class RedisLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    store_ = NewStore(redis_->address());
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override { store_.reset(); }

  std::unique_ptr<cl::Store> NewStore(std::string address,
                                      std::map<std::string, std::string> extra = {}) {
    extra["redisHost"] = std::move(address);
    components::ComponentContext context;
    context.type = "lock.redis";
    context.metadata = components::Metadata(extra);
    context.io_context = &SharedIoContext();
    absl::StatusOr<std::unique_ptr<cl::Store>> store = rl::Create(context);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  absl::StatusOr<bool> TryLock(std::string resource, std::string owner, int32_t expiry_s,
                               cl::Store* store = nullptr) {
    cl::Store* s = store ? store : store_.get();
    absl::StatusOr<cl::TryLockResponse> r = Await<cl::TryLockResponse>(
        [&](Callback<cl::TryLockResponse> done) {
          s->TryLock({.resource_id = std::move(resource),
                      .lock_owner = std::move(owner),
                      .expiry_in_seconds = expiry_s},
                     std::move(done));
        },
        std::chrono::seconds(10));
    if (!r.ok()) return r.status();
    return r->success;
  }

  absl::StatusOr<cl::UnlockStatus> Unlock(std::string resource, std::string owner,
                                          cl::Store* store = nullptr) {
    cl::Store* s = store ? store : store_.get();
    return Await<cl::UnlockStatus>(
        [&](Callback<cl::UnlockStatus> done) {
          s->Unlock({.resource_id = std::move(resource), .lock_owner = std::move(owner)},
                    std::move(done));
        },
        std::chrono::seconds(10));
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<cl::Store> store_;
};

// The key is exactly the id given, holding the owner, with Redis' expiry in whole seconds.
TEST_F(RedisLockTest, LayoutIsDaprsStringKeyWithOwnerAndExpiry) {
  const std::string key = "lock||myapp||order-7";
  ASSERT_EQ(TryLock(key, "worker-1", 60).value_or(false), true);
  EXPECT_EQ(redis_->Command({"TYPE", key}).value_or(""), "string");
  EXPECT_EQ(redis_->Command({"GET", key}).value_or(""), "worker-1");
  absl::StatusOr<std::string> ttl = redis_->Command({"TTL", key});
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  int seconds = std::atoi(ttl->c_str());
  EXPECT_GT(seconds, 55);
  EXPECT_LE(seconds, 60);
  ASSERT_EQ(Unlock(key, "worker-1").value_or(cl::UnlockStatus::kInternalError),
            cl::UnlockStatus::kSuccess);
  EXPECT_EQ(redis_->Command({"EXISTS", key}).value_or(""), "0");
}

// A lock daprd took (the same SET it sends) is respected, and its owner can release it through
// remorad; a lock remorad took is refused to another SET NX, as daprd would send it.
TEST_F(RedisLockTest, InteroperatesWithLocksWrittenByDaprd) {
  const std::string key = "lock||app||shared";
  ASSERT_EQ(redis_->Command({"SET", key, "daprd-owner", "NX", "EX", "60"}).value_or(""), "OK");
  EXPECT_EQ(TryLock(key, "remora-owner", 60).value_or(true), false);
  EXPECT_EQ(Unlock(key, "remora-owner").value_or(cl::UnlockStatus::kSuccess),
            cl::UnlockStatus::kLockBelongsToOthers);
  EXPECT_EQ(Unlock(key, "daprd-owner").value_or(cl::UnlockStatus::kInternalError),
            cl::UnlockStatus::kSuccess);
  ASSERT_EQ(TryLock(key, "remora-owner", 60).value_or(false), true);
  EXPECT_THAT(redis_->Command({"SET", key, "daprd-owner", "NX", "EX", "60"}).status().code(),
              absl::StatusCode::kNotFound);  // nil: not set
}

// Owners and ids are binary-safe: no quoting or formatting between the API and Redis.
TEST_F(RedisLockTest, OwnersAreComparedByteForByte) {
  const std::string key = "lock||app||bytes";
  const std::string owner = std::string("o w\0ner \"x\"\n", 13);
  ASSERT_EQ(TryLock(key, owner, 60).value_or(false), true);
  EXPECT_EQ(Unlock(key, "o w").value_or(cl::UnlockStatus::kSuccess),
            cl::UnlockStatus::kLockBelongsToOthers);
  EXPECT_EQ(Unlock(key, owner).value_or(cl::UnlockStatus::kInternalError),
            cl::UnlockStatus::kSuccess);
}

// A key of another type under the lock's name: TryLock is refused (the key exists) and Unlock is
// an error, not a crash and not a deleted key.
TEST_F(RedisLockTest, KeyOfAnotherTypeIsAnErrorOnUnlock) {
  const std::string key = "lock||app||a-hash";
  ASSERT_TRUE(redis_->Command({"HSET", key, "f", "v"}).ok());
  EXPECT_EQ(TryLock(key, "owner", 60).value_or(true), false);
  absl::StatusOr<cl::UnlockStatus> unlock = Unlock(key, "owner");
  EXPECT_EQ(unlock.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(unlock.status().message(), HasSubstr("WRONGTYPE"));
  EXPECT_EQ(redis_->Command({"TYPE", key}).value_or(""), "hash");
}

// Redis away: errors (UNAVAILABLE naming the address), unhealthy; back: works again without a
// new store.
TEST_F(RedisLockTest, RedisDownIsAnErrorAndRecovers) {
  ASSERT_EQ(TryLock("lock||app||before", "o", 60).value_or(false), true);
  EXPECT_TRUE(store_->Health().ok());
  redis_->Kill();
  // The first request may race the connection's loss; poll until the outage is seen.
  absl::Status seen;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (seen.ok() && std::chrono::steady_clock::now() < deadline) {
    seen = TryLock("lock||app||during", "o", 60).status();
  }
  EXPECT_EQ(seen.code(), absl::StatusCode::kUnavailable) << seen;
  EXPECT_THAT(seen.message(), HasSubstr(redis_->address()));
  absl::StatusOr<cl::UnlockStatus> unlock = Unlock("lock||app||before", "o");
  EXPECT_FALSE(unlock.ok());
  EXPECT_FALSE(store_->Health().ok());

  ASSERT_TRUE(redis_->Restart().ok());  // empty dataset: the old lock is gone with it
  absl::StatusOr<bool> after;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    after = TryLock("lock||app||after", "o", 60);
    if (!after.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (!after.ok() && std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(*after);
  EXPECT_TRUE(store_->Health().ok());
}

// Like Dapr's Init: a primary with a replica is refused (a failover could hand the lock to two
// owners). The refusal takes no lock and makes the store unhealthy.
TEST_F(RedisLockTest, PrimaryWithReplicasIsRefused) {
  absl::StatusOr<std::unique_ptr<RedisServer>> replica =
      RedisServer::Start({"--replicaof", "127.0.0.1", StrCat(redis_->port())});
  ASSERT_TRUE(replica.ok()) << replica.status();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool attached = false;
  while (!attached && std::chrono::steady_clock::now() < deadline) {
    attached = redis_->Command({"INFO", "replication"}).value_or("").find("connected_slaves:1") !=
               std::string::npos;
    if (!attached) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(attached) << "the replica did not attach";
  std::unique_ptr<cl::Store> store = NewStore(redis_->address());
  absl::StatusOr<bool> locked = TryLock("lock||app||replicated", "o", 60, store.get());
  EXPECT_EQ(locked.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(locked.status().message(), HasSubstr("replication is not supported"));
  EXPECT_EQ(redis_->Command({"EXISTS", "lock||app||replicated"}).value_or(""), "0");
  EXPECT_EQ(Unlock("lock||app||replicated", "o", store.get()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Health().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RedisLockConfigTest, BadMetadataIsRefusedNamingTheKey) {
  components::Metadata none(std::map<std::string, std::string>{});
  absl::StatusOr<rl::Config> missing = rl::ParseConfig(none);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("redisHost"));
  components::Metadata cluster({{"redisHost", "h:1"}, {"redisType", "cluster"}});
  EXPECT_EQ(rl::ParseConfig(cluster).status().code(), absl::StatusCode::kInvalidArgument);
  components::Metadata failover({{"redisHost", "h:1"}, {"failover", "true"}});
  EXPECT_EQ(rl::ParseConfig(failover).status().code(), absl::StatusCode::kInvalidArgument);
  components::ComponentContext no_loop;
  no_loop.metadata = components::Metadata(std::map<std::string, std::string>{{"redisHost", "h"}});
  EXPECT_EQ(rl::Create(no_loop).status().code(), absl::StatusCode::kInvalidArgument);
}

// Every name metadata.yaml lists, and only those, is read by ParseConfig (through the metadata's
// usage tracking, which is what reports unknown keys to users).
TEST(RedisLockConfigTest, MetadataYamlIsInSyncWithParseConfig) {
  absl::StatusOr<testing::MetadataYamlKeys> keys = testing::ReadRedisMetadataKeys(
      "components/lock/redis/metadata.yaml",
      [](const components::Metadata& metadata) { return rl::ParseConfig(metadata).status(); });
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->type, "lock");
  EXPECT_EQ(keys->read, keys->documented)
      << "metadata.yaml lists keys ParseConfig ignores, or the reverse";
  // A key lock.redis does not read is reported as unused (the runtime warns about it).
  components::Metadata extra({{"redisHost", "h"}, {"ttlInSeconds", "5"}});
  ASSERT_TRUE(rl::ParseConfig(extra).ok());
  EXPECT_THAT(extra.Unused(), UnorderedElementsAre("ttlInSeconds"));
}

}  // namespace
}  // namespace remora::conformance::lock
