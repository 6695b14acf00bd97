// state.in-memory: the state conformance suite, plus the details of Dapr's in-memory store that
// the suite leaves to each implementation.

#include <regex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "components/state/memory/memory_store.h"
#include "remora/components/common/strings.h"
#include "tests/conformance/state/state_conformance.h"

namespace remora::conformance::state {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

StateStoreHarness MemoryHarness() {
  StateStoreHarness h;
  h.name = "InMemory";
  h.type = "state.in-memory";
  h.factory = components::state::memory::Create;
  StateCapabilities& c = h.capabilities;
  c.etag = true;
  c.first_write = true;
  c.ttl = true;
  c.transactions = true;
  c.atomic_transactions = true;
  c.delete_with_prefix = true;
  c.keys_like = true;
  c.etag_on_missing_key_fails = true;
  c.last_write_checks_etag = true;
  c.first_write_conflict_is_etag_error = true;
  return h;
}

INSTANTIATE_TEST_SUITE_P(InMemory, StateConformanceTest, ::testing::Values(MemoryHarness()),
                         StateHarnessName());

// The in-memory store completes inline, so these tests call it directly.
class MemoryStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    components::ComponentContext context;
    context.type = "state.in-memory";
    auto store = components::state::memory::Create(context);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  absl::Status Set(std::string key, std::string value, cs::RequestMetadata metadata = {},
                   std::optional<std::string> etag = {}) {
    cs::SetRequest r;
    r.key = std::move(key);
    r.value = std::move(value);
    r.metadata = std::move(metadata);
    r.etag = std::move(etag);
    absl::Status out = absl::UnknownError("callback not run");
    store_->Set(std::move(r), [&](absl::Status s) { out = std::move(s); });
    return out;
  }
  cs::GetResponse Get(std::string key) {
    cs::GetRequest r;
    r.key = std::move(key);
    cs::GetResponse out;
    bool ran = false;
    store_->Get(std::move(r), [&](absl::StatusOr<cs::GetResponse> s) {
      EXPECT_TRUE(s.ok()) << s.status();
      if (s.ok()) out = *std::move(s);
      ran = true;
    });
    EXPECT_TRUE(ran) << "the in-memory store completes inline";
    return out;
  }
  absl::Status Multi(cs::TransactionRequest request) {
    absl::Status out = absl::UnknownError("callback not run");
    store_->AsTransactional()->Multi(std::move(request), [&](absl::Status s) { out = s; });
    return out;
  }
  std::vector<std::string> KeysLike(std::string pattern) {
    cs::KeysLikeRequest r;
    r.pattern = std::move(pattern);
    std::vector<std::string> keys;
    store_->AsKeysLike()->KeysLike(std::move(r), [&](absl::StatusOr<cs::KeysLikeResponse> s) {
      ASSERT_TRUE(s.ok()) << s.status();
      keys = s->keys;
    });
    return keys;
  }

  std::unique_ptr<cs::Store> store_;
};

TEST_F(MemoryStoreTest, ETagIsARandomUuidV4) {
  const std::regex uuid4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  ASSERT_TRUE(Set("k", "v").ok());
  std::string first = Get("k").etag.value_or("");
  EXPECT_TRUE(std::regex_match(first, uuid4)) << first;
  ASSERT_TRUE(Set("k", "v").ok());
  std::string second = Get("k").etag.value_or("");
  EXPECT_TRUE(std::regex_match(second, uuid4)) << second;
  EXPECT_NE(first, second) << "same value, new write, new etag";
}

TEST_F(MemoryStoreTest, RewriteWithoutTTLDropsTheExpiry) {
  ASSERT_TRUE(Set("k", "v", {{"ttlInSeconds", "100"}}).ok());
  EXPECT_EQ(Get("k").metadata.count("ttlExpireTime"), 1u);
  ASSERT_TRUE(Set("k", "v2").ok());
  EXPECT_EQ(Get("k").metadata.count("ttlExpireTime"), 0u);
}

TEST_F(MemoryStoreTest, NonPositiveTTLMeansNoExpiry) {
  for (const char* ttl : {"0", "-1"}) {
    ASSERT_TRUE(Set("k", "v", {{"ttlInSeconds", ttl}}).ok()) << ttl;
    cs::GetResponse got = Get("k");
    EXPECT_TRUE(got.found) << ttl;
    EXPECT_THAT(got.metadata, IsEmpty()) << ttl;
  }
}

TEST_F(MemoryStoreTest, TransactionChecksETagsAgainstTheStateBeforeIt) {
  // Dapr validates every operation first, then applies: an etag read before the transaction is
  // still good for a later operation on a key an earlier operation deleted.
  ASSERT_TRUE(Set("k", "v1").ok());
  const std::string etag = *Get("k").etag;
  cs::TransactionRequest tx;
  tx.operations.resize(2);
  tx.operations[0].type = cs::Operation::Type::kDelete;
  tx.operations[0].delete_.key = "k";
  tx.operations[1].type = cs::Operation::Type::kUpsert;
  tx.operations[1].set.key = "k";
  tx.operations[1].set.value = "v2";
  tx.operations[1].set.etag = etag;
  ASSERT_TRUE(Multi(std::move(tx)).ok());
  EXPECT_EQ(Get("k").data, "v2");
}

TEST_F(MemoryStoreTest, TransactionWithBadTTLAppliesNothing) {
  cs::TransactionRequest tx;
  tx.operations.resize(2);
  tx.operations[0].set.key = "a";
  tx.operations[0].set.value = "1";
  tx.operations[1].set.key = "b";
  tx.operations[1].set.value = "2";
  tx.operations[1].set.metadata = {{"ttlInSeconds", "1.5"}};
  absl::Status s = Multi(std::move(tx));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_FALSE(Get("a").found);
  EXPECT_FALSE(Get("b").found);
}

TEST_F(MemoryStoreTest, KeysLikeFollowsGoRegexpSemantics) {
  ASSERT_TRUE(Set("a\nb", "v").ok());
  ASSERT_TRUE(Set("a\xC3\xA9"
                  "b",
                  "v")
                  .ok());  // "aéb": é is one character
  ASSERT_TRUE(Set("a.b", "v").ok());
  ASSERT_TRUE(Set("a%b", "v").ok());
  ASSERT_TRUE(Set("end\\", "v").ok());
  EXPECT_THAT(KeysLike("a_b"), ElementsAre("a\xC3\xA9"
                                           "b",
                                           "a.b", "a%b"))
      << "_ is one character but not a newline";
  EXPECT_THAT(KeysLike("a%b"), ElementsAre("a\xC3\xA9"
                                           "b",
                                           "a.b", "a%b"));
  EXPECT_THAT(KeysLike("a\nb"), ElementsAre("a\nb"));
  EXPECT_THAT(KeysLike("a\\%b"), ElementsAre("a%b")) << "escaped % is literal";
  EXPECT_THAT(KeysLike("a.b"), ElementsAre("a.b")) << ". is not a wildcard";
  EXPECT_THAT(KeysLike("end\\"), ElementsAre("end\\")) << "a trailing backslash is literal";
  EXPECT_THAT(KeysLike("%"), ::testing::SizeIs(4)) << "% does not span the newline in \"a\\nb\"";
  EXPECT_THAT(KeysLike("zzz%"), IsEmpty());
}

TEST_F(MemoryStoreTest, KeysLikeOrdersByLastWrite) {
  ASSERT_TRUE(Set("k1", "v").ok());
  ASSERT_TRUE(Set("k2", "v").ok());
  ASSERT_TRUE(Set("k1", "v again").ok());
  EXPECT_THAT(KeysLike("k%"), ElementsAre("k2", "k1"));
}

TEST_F(MemoryStoreTest, CallbacksMayReenterTheStore) {
  // Callbacks run after the store's locks are released, so a callback may call the store.
  bool inner_ran = false;
  cs::SetRequest r;
  r.key = "k";
  r.value = "v";
  store_->Set(std::move(r), [&](absl::Status s) {
    ASSERT_TRUE(s.ok());
    cs::GetRequest g;
    g.key = "k";
    store_->Get(std::move(g), [&](absl::StatusOr<cs::GetResponse> got) {
      inner_ran = got.ok() && got->data == "v";
    });
  });
  EXPECT_TRUE(inner_ran);
}

}  // namespace
}  // namespace remora::conformance::state
