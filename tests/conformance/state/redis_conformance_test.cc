// state.redis: the state conformance suite against a real redis-server on a free port, plus what
// the suite leaves to each implementation: Dapr's storage layout read and written directly in
// Redis, script reloading, TTL details, Redis going away, and metadata.yaml kept in sync.

#include "components/state/redis/redis_store.h"

#include <utility>  // before Asio

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "remora/components/common/strings.h"
#include "tests/conformance/state/state_conformance.h"
#include "tests/tools/redis_component.h"
#include "tests/tools/redis_server.h"

namespace remora::conformance::state {
namespace {

namespace rs = ::remora::components::state::redis;
using ::remora::testing::RedisServer;
using ::remora::testing::SharedIoContext;
using ::remora::testing::SharedRedisServer;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

StateStoreHarness RedisHarness() {
  StateStoreHarness h;
  h.name = "Redis";
  h.type = "state.redis";
  h.factory = rs::Create;
  h.prepare = [](components::ComponentContext& context) -> absl::Status {
    absl::StatusOr<RedisServer*> redis = SharedRedisServer();
    if (!redis.ok()) return redis.status();
    context.metadata = components::Metadata({{"redisHost", (*redis)->address()}});
    context.io_context = &SharedIoContext();
    return absl::OkStatus();
  };
  StateCapabilities& c = h.capabilities;
  c.etag = true;
  c.first_write = true;
  c.ttl = true;
  c.transactions = true;
  c.atomic_transactions = true;  // one script checks every etag, then applies
  c.etag_on_missing_key_fails = false;
  c.last_write_checks_etag = false;
  c.first_write_conflict_is_etag_error = false;
  c.invalid_etag = "not-a-number";
  return h;
}

INSTANTIATE_TEST_SUITE_P(Redis, StateConformanceTest, ::testing::Values(RedisHarness()),
                         StateHarnessName());

// ---- state.redis specifics -----------------------------------------------------------------

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    store_ = NewStore({});
  }
  void TearDown() override { store_.reset(); }

  std::unique_ptr<cs::Store> NewStore(std::map<std::string, std::string> extra) {
    extra["redisHost"] = redis_->address();
    components::ComponentContext context;
    context.type = "state.redis";
    context.metadata = components::Metadata(extra);
    context.io_context = &SharedIoContext();
    absl::StatusOr<std::unique_ptr<cs::Store>> store = rs::Create(context);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  absl::Status Set(std::string key, std::string value, std::optional<std::string> etag = {},
                   cs::Concurrency concurrency = cs::Concurrency::kUnspecified,
                   cs::RequestMetadata metadata = {}, cs::Store* store = nullptr) {
    cs::SetRequest r;
    r.key = std::move(key);
    r.value = std::move(value);
    r.etag = std::move(etag);
    r.options.concurrency = concurrency;
    r.metadata = std::move(metadata);
    cs::Store* s = store ? store : store_.get();
    return AwaitCall<absl::Status>([&](auto done) { s->Set(std::move(r), std::move(done)); },
                                   std::chrono::seconds(5));
  }
  absl::StatusOr<cs::GetResponse> Get(std::string key, cs::Store* store = nullptr) {
    cs::GetRequest r;
    r.key = std::move(key);
    cs::Store* s = store ? store : store_.get();
    return AwaitCall<absl::StatusOr<cs::GetResponse>>(
        [&](auto done) { s->Get(std::move(r), std::move(done)); }, std::chrono::seconds(5));
  }
  absl::Status Delete(std::string key, std::optional<std::string> etag = {}) {
    cs::DeleteRequest r;
    r.key = std::move(key);
    r.etag = std::move(etag);
    return AwaitCall<absl::Status>(
        [&](auto done) { store_->Delete(std::move(r), std::move(done)); }, std::chrono::seconds(5));
  }
  absl::StatusOr<std::vector<cs::BulkGetItem>> BulkGet(std::vector<std::string> keys) {
    std::vector<cs::GetRequest> requests(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) requests[i].key = keys[i];
    return AwaitCall<absl::StatusOr<std::vector<cs::BulkGetItem>>>(
        [&](auto done) { store_->BulkGet(std::move(requests), std::move(done)); },
        std::chrono::seconds(5));
  }
  absl::Status Multi(cs::TransactionRequest request) {
    return AwaitCall<absl::Status>(
        [&](auto done) { store_->AsTransactional()->Multi(std::move(request), std::move(done)); },
        std::chrono::seconds(5));
  }
  // Redis directly, not through the store.
  std::string Redis(const std::vector<std::string>& args) {
    absl::StatusOr<std::string> reply = redis_->Command(args);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.value_or("");
  }
  // HGETALL as a field → value map.
  std::map<std::string, std::string> Hash(const std::string& key) {
    std::vector<std::string> lines = absl::StrSplit(Redis({"HGETALL", key}), '\n');
    std::map<std::string, std::string> out;
    for (size_t i = 0; i + 1 < lines.size(); i += 2) out[lines[i]] = lines[i + 1];
    return out;
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<cs::Store> store_;
};

TEST_F(RedisStoreTest, WritesDaprsHashLayout) {
  ASSERT_TRUE(Set("myapp||order-1", R"({"id":1})").ok());
  EXPECT_EQ(Redis({"TYPE", "myapp||order-1"}), "hash");
  EXPECT_EQ(Hash("myapp||order-1"),
            (std::map<std::string, std::string>{{"data", R"({"id":1})"}, {"version", "1"}}));
  ASSERT_TRUE(Set("myapp||order-1", R"({"id":2})").ok());
  EXPECT_EQ(Redis({"HGET", "myapp||order-1", "version"}), "2");
  EXPECT_EQ(Get("myapp||order-1")->etag, "2") << "the etag is the version's text";

  ASSERT_TRUE(Set("myapp||fw", "v", std::nullopt, cs::Concurrency::kFirstWrite).ok());
  EXPECT_EQ(Hash("myapp||fw"), (std::map<std::string, std::string>{
                                   {"data", "v"}, {"version", "1"}, {"first-write", "0"}}));
  EXPECT_EQ(Redis({"TTL", "myapp||order-1"}), "-1") << "no expiry unless asked";
}

TEST_F(RedisStoreTest, ReadsWhatDaprWrote) {
  // As daprd's state.redis leaves a key: HSET data + HINCRBY version.
  Redis({"HSET", "other||k", "data", "\"DeathStar\"", "version", "7"});
  absl::StatusOr<cs::GetResponse> got = Get("other||k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->data, "\"DeathStar\"");
  EXPECT_EQ(got->etag, "7");
  // Its etag works for the next write, which continues Dapr's version sequence.
  EXPECT_TRUE(cs::IsETagMismatch(Set("other||k", "x", "6", cs::Concurrency::kFirstWrite)));
  ASSERT_TRUE(Set("other||k", "\"Falcon\"", "7", cs::Concurrency::kFirstWrite).ok());
  EXPECT_EQ(Hash("other||k")["version"], "8");
  EXPECT_EQ(Hash("other||k")["data"], "\"Falcon\"");
}

TEST_F(RedisStoreTest, FirstWriteFlagWrittenByDaprIsHonoured) {
  Redis({"HSET", "k", "data", "v", "version", "1", "first-write", "0"});
  // No etag on a key created under first-write: refused (Dapr's rule), and not an etag error.
  absl::Status s = Set("k", "w");
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(cs::IsETagMismatch(s)) << s;
  EXPECT_TRUE(Set("k", "w", "1").ok());
}

TEST_F(RedisStoreTest, PlainStringKeyIsReadWithoutETagAndReplacedOnWrite) {
  Redis({"SET", "legacy", "raw bytes"});
  absl::StatusOr<cs::GetResponse> got = Get("legacy");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->data, "raw bytes");
  EXPECT_FALSE(got->etag.has_value());

  absl::StatusOr<std::vector<cs::BulkGetItem>> items = BulkGet({"legacy", "missing"});
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[0].response.data, "raw bytes");
  EXPECT_FALSE((*items)[1].response.found);

  Redis({"RPUSH", "a-list", "x"});
  ASSERT_TRUE(Set("a-list", "now a hash").ok());
  EXPECT_EQ(Redis({"TYPE", "a-list"}), "hash");
  EXPECT_EQ(Get("a-list")->data, "now a hash");
}

TEST_F(RedisStoreTest, HashWithoutVersionIsAnError) {
  Redis({"HSET", "broken", "data", "v"});
  absl::StatusOr<cs::GetResponse> got = Get("broken");
  EXPECT_FALSE(got.ok());
  EXPECT_THAT(std::string(MessageOf(got.status())), HasSubstr("version"));
  absl::StatusOr<std::vector<cs::BulkGetItem>> items = BulkGet({"broken"});
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_THAT((*items)[0].error, HasSubstr("version"));
}

TEST_F(RedisStoreTest, ScriptsAreReloadedAfterAFlush) {
  ASSERT_TRUE(Set("k", "v1").ok());
  Redis({"SCRIPT", "FLUSH"});
  ASSERT_TRUE(Set("k", "v2").ok());
  EXPECT_EQ(Get("k")->data, "v2");
  Redis({"SCRIPT", "FLUSH"});
  ASSERT_TRUE(Delete("k").ok());
  EXPECT_FALSE(Get("k")->found);
  Redis({"SCRIPT", "FLUSH"});
  cs::TransactionRequest tx;
  tx.operations.resize(1);
  tx.operations[0].set.key = "t";
  tx.operations[0].set.value = "tv";
  ASSERT_TRUE(Multi(std::move(tx)).ok());
  EXPECT_EQ(Get("t")->data, "tv");
  // The digests we send are Redis' own names for the scripts.
  EXPECT_EQ(Redis({"SCRIPT", "LOAD", std::string(rs::SetScript().source)}), rs::SetScript().sha1);
  EXPECT_EQ(Redis({"SCRIPT", "LOAD", std::string(rs::MultiScript().source)}),
            rs::MultiScript().sha1);
}

TEST_F(RedisStoreTest, TTLIsRedisExpiry) {
  ASSERT_TRUE(Set("k", "v", std::nullopt, {}, {{"ttlInSeconds", "100"}}).ok());
  int64_t ttl = std::atoll(Redis({"TTL", "k"}).c_str());
  EXPECT_GT(ttl, 90);
  EXPECT_LE(ttl, 100);
  // Without ttlInSeconds the expiry is left as it is (Dapr sends neither EXPIRE nor PERSIST).
  ASSERT_TRUE(Set("k", "v2").ok());
  EXPECT_GT(std::atoll(Redis({"TTL", "k"}).c_str()), 0);
  EXPECT_EQ(Get("k")->metadata.count("ttlExpireTime"), 1u);
  // <= 0 removes it.
  ASSERT_TRUE(Set("k", "v3", std::nullopt, {}, {{"ttlInSeconds", "-1"}}).ok());
  EXPECT_EQ(Redis({"TTL", "k"}), "-1");
  EXPECT_EQ(Get("k")->metadata.count("ttlExpireTime"), 0u);
}

TEST_F(RedisStoreTest, StoreWideTTL) {
  std::unique_ptr<cs::Store> store = NewStore({{"ttlInSeconds", "50"}});
  ASSERT_TRUE(Set("k", "v", std::nullopt, {}, {}, store.get()).ok());
  int64_t ttl = std::atoll(Redis({"TTL", "k"}).c_str());
  EXPECT_GT(ttl, 40);
  EXPECT_LE(ttl, 50);
  // The request's own value wins.
  ASSERT_TRUE(Set("k", "v", std::nullopt, {}, {{"ttlInSeconds", "0"}}, store.get()).ok());
  EXPECT_EQ(Redis({"TTL", "k"}), "-1");
  absl::StatusOr<cs::GetResponse> got = Get("k", store.get());
  ASSERT_TRUE(got.ok());
  EXPECT_THAT(got->metadata, IsEmpty());
}

TEST_F(RedisStoreTest, TransactionWithTTLAndAMalformedETagSendsNothing) {
  cs::TransactionRequest tx;
  tx.operations.resize(2);
  tx.operations[0].set.key = "a";
  tx.operations[0].set.value = "1";
  tx.operations[0].set.metadata = {{"ttlInSeconds", "100"}};
  tx.operations[1].set.key = "b";
  tx.operations[1].set.value = "2";
  ASSERT_TRUE(Multi(tx).ok());
  EXPECT_GT(std::atoll(Redis({"TTL", "a"}).c_str()), 0);
  EXPECT_EQ(Redis({"TTL", "b"}), "-1");

  tx.operations[1].set.etag = "abc";
  absl::Status s = Multi(tx);
  EXPECT_TRUE(cs::IsETagInvalid(s)) << s;
  EXPECT_EQ(Hash("a")["version"], "1") << "nothing was sent";
}

TEST_F(RedisStoreTest, TransactionChecksLaterOperationsAgainstEarlierOnes) {
  // Two upserts of one key with the same etag: the second sees the version the first wrote, as
  // Dapr's MULTI/EXEC would, so the transaction fails, and here applies nothing.
  ASSERT_TRUE(Set("k", "v1").ok());
  const std::string etag = *Get("k")->etag;
  cs::TransactionRequest tx;
  tx.operations.resize(3);
  tx.operations[0].set.key = "other";
  tx.operations[0].set.value = "x";
  tx.operations[1].set.key = "k";
  tx.operations[1].set.value = "v2";
  tx.operations[1].set.etag = etag;
  tx.operations[2].set.key = "k";
  tx.operations[2].set.value = "v3";
  tx.operations[2].set.etag = etag;
  absl::Status s = Multi(tx);
  EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
  EXPECT_THAT(std::string(MessageOf(s)), HasSubstr("operation 3"));
  EXPECT_EQ(Get("k")->data, "v1");
  EXPECT_FALSE(Get("other")->found);
  // Delete then upsert with the old etag: the upsert meets a missing key, which Redis allows.
  tx.operations.resize(2);
  tx.operations[0].type = cs::Operation::Type::kDelete;
  tx.operations[0].delete_.key = "k";
  tx.operations[1].set.value = "v4";
  s = Multi(tx);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(Get("k")->data, "v4");
  EXPECT_EQ(Get("k")->etag, "1") << "a new key starts its versions again";
}

TEST_F(RedisStoreTest, RedisDownFailsFastAndRecovers) {
  ASSERT_TRUE(Set("k", "v").ok());
  ASSERT_TRUE(store_->Health().ok());
  redis_->Kill();
  // The client notices the dropped connection; requests then fail at once with UNAVAILABLE.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  absl::Status health;
  while (absl::Now() < deadline && (health = store_->Health()).ok()) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(health.code(), absl::StatusCode::kUnavailable) << health;
  const absl::Time start = absl::Now();
  absl::StatusOr<cs::GetResponse> got = Get("k");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
  EXPECT_THAT(std::string(MessageOf(got.status())), HasSubstr(redis_->address()));
  EXPECT_EQ(Set("k", "w").code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500)) << "not fail fast";

  ASSERT_TRUE(redis_->Restart().ok());
  absl::Status s;
  const absl::Time back = absl::Now() + absl::Seconds(10);
  while (absl::Now() < back && !(s = Set("k", "again")).ok()) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Get("k")->data, "again") << "scripts were loaded again into the fresh server";
  EXPECT_TRUE(store_->Health().ok());
}

TEST_F(RedisStoreTest, AStoreCanBeDestroyedWithCallsInFlight) {
  std::atomic<int> completed{0};
  {
    std::unique_ptr<cs::Store> store = NewStore({});
    for (int i = 0; i < 100; ++i) {
      cs::SetRequest r;
      r.key = StrCat("k", i);
      r.value = "v";
      store->Set(std::move(r), [&](absl::Status) { ++completed; });
    }
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (completed.load() < 100 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(completed.load(), 100) << "every callback runs once, even after the store is gone";
}

// ---- configuration ------------------------------------------------------------------------

TEST(RedisConfigTest, ParsesDaprKeys) {
  absl::StatusOr<rs::Config> c = rs::ParseConfig(components::Metadata(
      {{"redisHost", "redis.local:6380"}, {"redisPassword", "pw"}, {"ttlInSeconds", "60"}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->settings.host, "redis.local");
  EXPECT_EQ(c->settings.port, 6380);
  EXPECT_EQ(c->settings.password, "pw");
  EXPECT_EQ(c->ttl_in_seconds, 60);
  EXPECT_EQ(c->settings.max_retries, 3);

  c = rs::ParseConfig(components::Metadata(std::map<std::string, std::string>{{"redisHost", "h"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->ttl_in_seconds.has_value());
}

TEST(RedisConfigTest, RejectsBadValues) {
  absl::StatusOr<rs::Config> c =
      rs::ParseConfig(components::Metadata(std::map<std::string, std::string>{}));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(MessageOf(c.status())), HasSubstr("redisHost"));
  c = rs::ParseConfig(components::Metadata({{"redisHost", "h"}, {"ttlInSeconds", "1h"}}));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(MessageOf(c.status())), HasSubstr("ttlInSeconds"));
  c = rs::ParseConfig(components::Metadata({{"redisHost", "h"}, {"enableTLS", "true"}}));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  components::ComponentContext no_loop;
  no_loop.metadata = components::Metadata(std::map<std::string, std::string>{{"redisHost", "h"}});
  EXPECT_EQ(rs::Create(no_loop).status().code(), absl::StatusCode::kInvalidArgument);
}

// Every name metadata.yaml lists, and only those, is read by ParseConfig (through the metadata's
// usage tracking, which is what reports unknown keys to users).
TEST(RedisConfigTest, MetadataYamlIsInSyncWithParseConfig) {
  absl::StatusOr<testing::MetadataYamlKeys> keys = testing::ReadRedisMetadataKeys(
      "components/state/redis/metadata.yaml",
      [](const components::Metadata& metadata) { return rs::ParseConfig(metadata).status(); });
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->read, keys->documented)
      << "metadata.yaml lists keys ParseConfig ignores, or the reverse";
  // Keys a Dapr YAML may carry that state.redis does not read are reported as unused.
  components::Metadata extra({{"redisHost", "h"}, {"queryIndexes", "[]"}});
  ASSERT_TRUE(rs::ParseConfig(extra).ok());
  EXPECT_THAT(extra.Unused(), UnorderedElementsAre("queryIndexes"));
}

}  // namespace
}  // namespace remora::conformance::state
