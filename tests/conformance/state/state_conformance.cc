#include "tests/conformance/state/state_conformance.h"

#include <atomic>
#include <charconv>
#include <random>
#include <thread>

#include <gmock/gmock.h>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "remora/components/common/strings.h"

namespace remora::conformance::state {
namespace {

using cs::Concurrency;
using cs::Feature;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Unique per process run, so keys never collide with an earlier run against the same backend.
const std::string& RunId() {
  static const std::string id = [] {
    std::random_device rd;
    uint64_t v = (uint64_t{rd()} << 32) ^ rd();
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 12; ++i) out.push_back(kHex[(v >> (4 * i)) & 0xF]);
    return out;
  }();
  return id;
}

// Polls `condition` until it holds or `timeout` passes.
bool Eventually(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return condition();
}

cs::SetRequest SetReq(std::string key, std::string value) {
  cs::SetRequest r;
  r.key = std::move(key);
  r.value = std::move(value);
  return r;
}

cs::Operation Upsert(std::string key, std::string value, std::optional<std::string> etag = {}) {
  cs::Operation op;
  op.type = cs::Operation::Type::kUpsert;
  op.set = SetReq(std::move(key), std::move(value));
  op.set.etag = std::move(etag);
  return op;
}

cs::Operation Remove(std::string key, std::optional<std::string> etag = {}) {
  cs::Operation op;
  op.type = cs::Operation::Type::kDelete;
  op.delete_.key = std::move(key);
  op.delete_.etag = std::move(etag);
  return op;
}

// Escapes LIKE wildcards so a literal key prefix can start a pattern.
std::string LikeEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

bool IsETagError(const absl::Status& s) { return cs::IsETagMismatch(s) || cs::IsETagInvalid(s); }

}  // namespace

WriteOptions WithETag(std::optional<std::string> etag, cs::Concurrency concurrency) {
  WriteOptions options;
  options.etag = std::move(etag);
  options.concurrency = concurrency;
  return options;
}

WriteOptions WithConcurrency(cs::Concurrency concurrency) {
  WriteOptions options;
  options.concurrency = concurrency;
  return options;
}

WriteOptions WithMetadata(cs::RequestMetadata metadata) {
  WriteOptions options;
  options.metadata = std::move(metadata);
  return options;
}

std::shared_ptr<CallLog::Entry> CallLog::Add(std::string what) {
  auto entry = std::make_shared<Entry>();
  entry->what = std::move(what);
  absl::MutexLock lock(&mu_);
  entries_.push_back(entry);
  return entry;
}

std::vector<std::string> CallLog::Problems() const {
  std::vector<std::string> problems;
  absl::MutexLock lock(&mu_);
  for (const auto& entry : entries_) {
    absl::MutexLock entry_lock(&entry->mu);
    if (entry->calls != 1) {
      problems.push_back(StrCat(entry->what, ": callback ran ", entry->calls, " times"));
    }
  }
  return problems;
}

void StateConformanceTest::SetUp() {
  const StateStoreHarness& harness = GetParam();
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string test_name = info->name();
  // "Suite/Name/Param": keep only the test's own name.
  if (size_t slash = test_name.find('/'); slash != std::string::npos) {
    test_name = test_name.substr(0, slash);
  }
  prefix_ = StrCat("conf-", RunId(), "-", harness.name, "-", test_name, "-");

  components::ComponentContext context;
  context.name = "statestore";
  context.type = harness.type;
  context.version = "v1";
  context.app_id = "conformance";
  context.metadata = components::Metadata(harness.metadata);
  if (harness.prepare) {
    absl::Status prepared = harness.prepare(context);
    ASSERT_TRUE(prepared.ok()) << "harness prepare: " << prepared;
  }
  absl::StatusOr<std::unique_ptr<cs::Store>> store = harness.factory(context);
  ASSERT_TRUE(store.ok()) << "factory: " << store.status();
  ASSERT_NE(*store, nullptr);
  store_ = *std::move(store);
}

void StateConformanceTest::TearDown() {
  // Destroying the store first lets an asynchronous store flush callbacks still in flight.
  store_.reset();
  for (const std::string& problem : calls_.Problems()) ADD_FAILURE() << problem;
}

std::string StateConformanceTest::Key(std::string_view name) const { return StrCat(prefix_, name); }

absl::StatusOr<cs::GetResponse> StateConformanceTest::Get(const std::string& key) {
  cs::GetRequest request;
  request.key = key;
  return AwaitCall<absl::StatusOr<cs::GetResponse>>(
      [&](auto done) { store_->Get(std::move(request), std::move(done)); }, GetParam().call_timeout,
      &calls_, StrCat("Get ", key));
}

absl::Status StateConformanceTest::Set(const std::string& key, std::string value,
                                       WriteOptions options) {
  cs::SetRequest request = SetReq(key, std::move(value));
  request.etag = std::move(options.etag);
  request.options.concurrency = options.concurrency;
  request.metadata = std::move(options.metadata);
  return AwaitCall<absl::Status>(
      [&](auto done) { store_->Set(std::move(request), std::move(done)); }, GetParam().call_timeout,
      &calls_, StrCat("Set ", key));
}

absl::Status StateConformanceTest::Delete(const std::string& key, WriteOptions options) {
  cs::DeleteRequest request;
  request.key = key;
  request.etag = std::move(options.etag);
  request.options.concurrency = options.concurrency;
  request.metadata = std::move(options.metadata);
  return AwaitCall<absl::Status>(
      [&](auto done) { store_->Delete(std::move(request), std::move(done)); },
      GetParam().call_timeout, &calls_, StrCat("Delete ", key));
}

absl::StatusOr<std::vector<cs::BulkGetItem>> StateConformanceTest::BulkGet(
    const std::vector<std::string>& keys) {
  std::vector<cs::GetRequest> requests(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) requests[i].key = keys[i];
  return AwaitCall<absl::StatusOr<std::vector<cs::BulkGetItem>>>(
      [&](auto done) { store_->BulkGet(std::move(requests), std::move(done)); },
      GetParam().call_timeout, &calls_, "BulkGet");
}

absl::Status StateConformanceTest::BulkSet(std::vector<cs::SetRequest> requests) {
  return AwaitCall<absl::Status>(
      [&](auto done) { store_->BulkSet(std::move(requests), std::move(done)); },
      GetParam().call_timeout, &calls_, "BulkSet");
}

absl::Status StateConformanceTest::BulkDelete(std::vector<cs::DeleteRequest> requests) {
  return AwaitCall<absl::Status>(
      [&](auto done) { store_->BulkDelete(std::move(requests), std::move(done)); },
      GetParam().call_timeout, &calls_, "BulkDelete");
}

absl::Status StateConformanceTest::Multi(cs::TransactionRequest request) {
  cs::TransactionalStore* tx = store_->AsTransactional();
  if (tx == nullptr) return absl::UnimplementedError("no transactions");
  return AwaitCall<absl::Status>([&](auto done) { tx->Multi(std::move(request), std::move(done)); },
                                 GetParam().call_timeout, &calls_, "Multi");
}

std::string StateConformanceTest::ETagOf(const std::string& key) {
  absl::StatusOr<cs::GetResponse> got = Get(key);
  EXPECT_TRUE(got.ok()) << got.status();
  if (!got.ok()) return "";
  EXPECT_TRUE(got->found) << key;
  EXPECT_TRUE(got->etag.has_value() && !got->etag->empty()) << "no etag for " << key;
  return got->etag.value_or("");
}

void StateConformanceTest::ExpectValue(const std::string& key, std::string_view value) {
  absl::StatusOr<cs::GetResponse> got = Get(key);
  ASSERT_TRUE(got.ok()) << key << ": " << got.status();
  EXPECT_TRUE(got->found) << key;
  EXPECT_EQ(got->data, value) << key;
}

void StateConformanceTest::ExpectMissing(const std::string& key) {
  absl::StatusOr<cs::GetResponse> got = Get(key);
  ASSERT_TRUE(got.ok()) << key << ": " << got.status();
  EXPECT_FALSE(got->found) << key << " still holds \"" << got->data << "\"";
  EXPECT_THAT(got->data, IsEmpty());
}

// ---- Features ---------------------------------------------------------------------------------

TEST_P(StateConformanceTest, FeaturesMatchDeclaredCapabilities) {
  const StateCapabilities& c = caps();
  EXPECT_EQ(store_->HasFeature(Feature::kETag), c.etag);
  EXPECT_EQ(store_->HasFeature(Feature::kTransactional), c.transactions);
  EXPECT_EQ(store_->HasFeature(Feature::kTTL), c.ttl);
  EXPECT_EQ(store_->HasFeature(Feature::kQueryAPI), c.query);
  EXPECT_EQ(store_->HasFeature(Feature::kDeleteWithPrefix), c.delete_with_prefix);
  EXPECT_EQ(store_->HasFeature(Feature::kKeysLike), c.keys_like);
  // The typed accessors agree with the advertised features.
  EXPECT_EQ(store_->AsTransactional() != nullptr, c.transactions);
  EXPECT_EQ(store_->AsDeleteWithPrefix() != nullptr, c.delete_with_prefix);
  EXPECT_EQ(store_->AsKeysLike() != nullptr, c.keys_like);
  EXPECT_TRUE(store_->Health().ok()) << store_->Health();
}

// ---- Basic operations -------------------------------------------------------------------------

TEST_P(StateConformanceTest, SetThenGetReturnsTheValue) {
  ASSERT_TRUE(Set(Key("a"), "hello").ok());
  ExpectValue(Key("a"), "hello");
  // JSON as the HTTP API stores it: the bytes come back verbatim.
  ASSERT_TRUE(Set(Key("json"), R"({"message":"hi","n":[1,2]})").ok());
  ExpectValue(Key("json"), R"({"message":"hi","n":[1,2]})");
}

TEST_P(StateConformanceTest, SetOverwritesTheValue) {
  ASSERT_TRUE(Set(Key("a"), "first").ok());
  ASSERT_TRUE(Set(Key("a"), "second").ok());
  ExpectValue(Key("a"), "second");
}

TEST_P(StateConformanceTest, MissingKeyIsNotFound) {
  absl::StatusOr<cs::GetResponse> got = Get(Key("never-written"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->found);
  EXPECT_THAT(got->data, IsEmpty());
  EXPECT_FALSE(got->etag.has_value());
}

TEST_P(StateConformanceTest, DeleteRemovesTheKey) {
  ASSERT_TRUE(Set(Key("a"), "v").ok());
  ASSERT_TRUE(Set(Key("b"), "w").ok());
  ASSERT_TRUE(Delete(Key("a")).ok());
  ExpectMissing(Key("a"));
  ExpectValue(Key("b"), "w");
}

TEST_P(StateConformanceTest, DeleteOfMissingKeySucceeds) {
  EXPECT_TRUE(Delete(Key("never-written")).ok());
}

TEST_P(StateConformanceTest, BinaryValuesWithNulBytesRoundTrip) {
  std::string value;
  for (int i = 0; i < 256; ++i) value.push_back(static_cast<char>(i));
  value += std::string("\0\0tail\0", 7);
  ASSERT_TRUE(Set(Key("bin"), value).ok());
  absl::StatusOr<cs::GetResponse> got = Get(Key("bin"));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->found);
  EXPECT_EQ(got->data.size(), value.size());
  EXPECT_TRUE(got->data == value) << "binary value changed";
}

TEST_P(StateConformanceTest, LargeValueRoundTrips) {
  std::string value(1 << 20, '\0');
  std::mt19937 gen(42);
  for (char& c : value) c = static_cast<char>(gen());
  ASSERT_TRUE(Set(Key("large"), value).ok());
  absl::StatusOr<cs::GetResponse> got = Get(Key("large"));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->found);
  EXPECT_EQ(got->data.size(), value.size());
  EXPECT_TRUE(got->data == value) << "1 MiB value changed";
}

TEST_P(StateConformanceTest, KeysAreExact) {
  // Keys that differ only in case, a "||" scope or a trailing space are different keys.
  ASSERT_TRUE(Set(Key("app||k"), "scoped").ok());
  ASSERT_TRUE(Set(Key("APP||k"), "upper").ok());
  ASSERT_TRUE(Set(Key("app||k "), "space").ok());
  ExpectValue(Key("app||k"), "scoped");
  ExpectValue(Key("APP||k"), "upper");
  ExpectValue(Key("app||k "), "space");
  ExpectMissing(Key("app||"));
}

// ---- ETags ------------------------------------------------------------------------------------

TEST_P(StateConformanceTest, ETagIsReturnedAndChangesOnEveryWrite) {
  if (!caps().etag) GTEST_SKIP() << "no ETAG";
  std::vector<std::string> etags;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Set(Key("a"), StrCat("v", i)).ok());
    etags.push_back(ETagOf(Key("a")));
  }
  EXPECT_NE(etags[0], etags[1]);
  EXPECT_NE(etags[1], etags[2]);
  EXPECT_NE(etags[0], etags[2]);
  // Reading does not change it.
  EXPECT_EQ(ETagOf(Key("a")), etags[2]);
}

TEST_P(StateConformanceTest, SetWithCurrentETagSucceeds) {
  if (!caps().etag) GTEST_SKIP() << "no ETAG";
  ASSERT_TRUE(Set(Key("a"), "v1").ok());
  const std::string etag = ETagOf(Key("a"));
  absl::Status s = Set(Key("a"), "v2", WithETag(etag));
  ASSERT_TRUE(s.ok()) << s;
  ExpectValue(Key("a"), "v2");
  EXPECT_NE(ETagOf(Key("a")), etag);
}

TEST_P(StateConformanceTest, SetWithStaleETagIsMismatch) {
  if (!caps().etag) GTEST_SKIP() << "no ETAG";
  ASSERT_TRUE(Set(Key("a"), "v1").ok());
  const std::string stale = ETagOf(Key("a"));
  ASSERT_TRUE(Set(Key("a"), "v2").ok());
  absl::Status s = Set(Key("a"), "v3", WithETag(stale, Concurrency::kFirstWrite));
  EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
  // No concurrency option given: the etag is checked too (only last-write may ignore it).
  s = Set(Key("a"), "v3", WithETag(stale));
  EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
  ExpectValue(Key("a"), "v2");
}

TEST_P(StateConformanceTest, DeleteWithETag) {
  if (!caps().etag) GTEST_SKIP() << "no ETAG";
  ASSERT_TRUE(Set(Key("a"), "v1").ok());
  const std::string stale = ETagOf(Key("a"));
  ASSERT_TRUE(Set(Key("a"), "v2").ok());
  const std::string current = ETagOf(Key("a"));

  absl::Status s = Delete(Key("a"), WithETag(stale, Concurrency::kFirstWrite));
  EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
  ExpectValue(Key("a"), "v2");

  s = Delete(Key("a"), WithETag(current, Concurrency::kFirstWrite));
  EXPECT_TRUE(s.ok()) << s;
  ExpectMissing(Key("a"));
}

TEST_P(StateConformanceTest, ArbitraryStringETagIsRejected) {
  if (!caps().etag) GTEST_SKIP() << "no ETAG";
  ASSERT_TRUE(Set(Key("a"), "v1").ok());
  // Dapr's conformance "fake etag": whatever the store makes of it, it is an etag error.
  absl::Status s = Set(Key("a"), "v2", WithETag("not-an-etag", Concurrency::kFirstWrite));
  EXPECT_TRUE(IsETagError(s)) << s;
  s = Delete(Key("a"), WithETag("not-an-etag", Concurrency::kFirstWrite));
  EXPECT_TRUE(IsETagError(s)) << s;
  ExpectValue(Key("a"), "v1");
}

TEST_P(StateConformanceTest, MalformedETagIsInvalid) {
  if (!caps().invalid_etag.has_value()) GTEST_SKIP() << "every string is a well-formed etag";
  ASSERT_TRUE(Set(Key("a"), "v1").ok());
  absl::Status s = Set(Key("a"), "v2", WithETag(caps().invalid_etag));
  EXPECT_TRUE(cs::IsETagInvalid(s)) << s;
  s = Delete(Key("a"), WithETag(caps().invalid_etag));
  EXPECT_TRUE(IsETagError(s)) << s;
  ExpectValue(Key("a"), "v1");
}

TEST_P(StateConformanceTest, ETagOnMissingKey) {
  if (!caps().etag) GTEST_SKIP() << "no ETAG";
  if (!caps().etag_on_missing_key_fails) GTEST_SKIP() << "the store creates the key";
  // A real etag from a key that has since been deleted.
  ASSERT_TRUE(Set(Key("gone"), "v").ok());
  const std::string etag = ETagOf(Key("gone"));
  ASSERT_TRUE(Delete(Key("gone")).ok());

  absl::Status s = Set(Key("gone"), "v2", WithETag(etag));
  EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
  ExpectMissing(Key("gone"));
  s = Delete(Key("gone"), WithETag(etag));
  EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
}

TEST_P(StateConformanceTest, EmptyETagMeansNone) {
  if (!caps().etag) GTEST_SKIP() << "no ETAG";
  ASSERT_TRUE(Set(Key("a"), "v1").ok());
  absl::Status s = Set(Key("a"), "v2", WithETag(""));
  EXPECT_TRUE(s.ok()) << s;
  ExpectValue(Key("a"), "v2");
  s = Delete(Key("a"), WithETag(""));
  EXPECT_TRUE(s.ok()) << s;
  ExpectMissing(Key("a"));
}

// ---- Concurrency modes ------------------------------------------------------------------------

TEST_P(StateConformanceTest, FirstWriteWithoutETagCreatesOnce) {
  if (!caps().first_write) GTEST_SKIP() << "no first-write";
  WriteOptions first = WithConcurrency(Concurrency::kFirstWrite);
  absl::Status s = Set(Key("a"), "v1", first);
  ASSERT_TRUE(s.ok()) << s;
  s = Set(Key("a"), "v2", first);
  EXPECT_FALSE(s.ok());
  if (caps().first_write_conflict_is_etag_error) {
    EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
  }
  ExpectValue(Key("a"), "v1");
}

TEST_P(StateConformanceTest, FirstWriteWithETag) {
  if (!caps().first_write || !caps().etag) GTEST_SKIP() << "no first-write with etags";
  WriteOptions first = WithConcurrency(Concurrency::kFirstWrite);
  ASSERT_TRUE(Set(Key("a"), "v1", first).ok());
  const std::string etag = ETagOf(Key("a"));
  absl::Status s = Set(Key("a"), "v2", WithETag(etag, Concurrency::kFirstWrite));
  ASSERT_TRUE(s.ok()) << s;
  // The etag was used up by that write: a second writer holding it loses.
  s = Set(Key("a"), "v3", WithETag(etag, Concurrency::kFirstWrite));
  EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
  ExpectValue(Key("a"), "v2");
}

TEST_P(StateConformanceTest, LastWriteWithoutETagOverwrites) {
  WriteOptions last = WithConcurrency(Concurrency::kLastWrite);
  ASSERT_TRUE(Set(Key("a"), "v1", last).ok());
  absl::Status s = Set(Key("a"), "v2", last);
  ASSERT_TRUE(s.ok()) << s;
  ExpectValue(Key("a"), "v2");
  s = Delete(Key("a"), last);
  ASSERT_TRUE(s.ok()) << s;
  ExpectMissing(Key("a"));
}

TEST_P(StateConformanceTest, LastWriteWithStaleETag) {
  if (!caps().etag) GTEST_SKIP() << "no ETAG";
  ASSERT_TRUE(Set(Key("a"), "v1").ok());
  const std::string stale = ETagOf(Key("a"));
  ASSERT_TRUE(Set(Key("a"), "v2").ok());
  absl::Status s = Set(Key("a"), "v3", WithETag(stale, Concurrency::kLastWrite));
  if (caps().last_write_checks_etag) {
    EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
    ExpectValue(Key("a"), "v2");
    s = Delete(Key("a"), WithETag(stale, Concurrency::kLastWrite));
    EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
    ExpectValue(Key("a"), "v2");
  } else {
    EXPECT_TRUE(s.ok()) << s;
    ExpectValue(Key("a"), "v3");
  }
}

// ---- Bulk -------------------------------------------------------------------------------------

TEST_P(StateConformanceTest, BulkGetKeepsRequestOrderAndReportsMissingKeys) {
  ASSERT_TRUE(Set(Key("one"), "1").ok());
  ASSERT_TRUE(Set(Key("three"), "3").ok());
  absl::StatusOr<std::vector<cs::BulkGetItem>> items =
      BulkGet({Key("three"), Key("missing"), Key("one"), Key("three")});
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 4u);
  const std::vector<std::pair<std::string, std::optional<std::string>>> expected = {
      {Key("three"), "3"}, {Key("missing"), std::nullopt}, {Key("one"), "1"}, {Key("three"), "3"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    const cs::BulkGetItem& item = (*items)[i];
    EXPECT_EQ(item.key, expected[i].first) << i;
    EXPECT_THAT(item.error, IsEmpty()) << i;
    EXPECT_EQ(item.response.found, expected[i].second.has_value()) << i;
    EXPECT_EQ(item.response.data, expected[i].second.value_or("")) << i;
    if (caps().etag && expected[i].second.has_value()) {
      EXPECT_TRUE(item.response.etag.has_value()) << i;
    }
  }
  if (caps().etag) {
    EXPECT_EQ((*items)[0].response.etag, ETagOf(Key("three")));
  }
}

TEST_P(StateConformanceTest, BulkGetOfNothingIsEmpty) {
  absl::StatusOr<std::vector<cs::BulkGetItem>> items = BulkGet({});
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_THAT(*items, IsEmpty());
}

TEST_P(StateConformanceTest, BulkSetAndBulkDelete) {
  std::vector<cs::SetRequest> sets;
  for (int i = 0; i < 5; ++i) sets.push_back(SetReq(Key(StrCat("k", i)), StrCat("value-", i)));
  absl::Status s = BulkSet(std::move(sets));
  ASSERT_TRUE(s.ok()) << s;
  for (int i = 0; i < 5; ++i) ExpectValue(Key(StrCat("k", i)), StrCat("value-", i));

  std::vector<cs::DeleteRequest> deletes(3);
  deletes[0].key = Key("k0");
  deletes[1].key = Key("k3");
  deletes[2].key = Key("never-written");
  s = BulkDelete(std::move(deletes));
  ASSERT_TRUE(s.ok()) << s;
  ExpectMissing(Key("k0"));
  ExpectMissing(Key("k3"));
  ExpectValue(Key("k1"), "value-1");
  ExpectValue(Key("k4"), "value-4");

  EXPECT_TRUE(BulkSet({}).ok());
  EXPECT_TRUE(BulkDelete({}).ok());
}

TEST_P(StateConformanceTest, BulkSetReportsAnETagFailure) {
  if (!caps().etag) GTEST_SKIP() << "no ETAG";
  ASSERT_TRUE(Set(Key("guarded"), "v1").ok());
  const std::string stale = ETagOf(Key("guarded"));
  ASSERT_TRUE(Set(Key("guarded"), "v2").ok());
  std::vector<cs::SetRequest> sets;
  sets.push_back(SetReq(Key("free"), "f"));
  sets.push_back(SetReq(Key("guarded"), "v3"));
  sets.back().etag = stale;
  sets.back().options.concurrency = Concurrency::kFirstWrite;
  absl::Status s = BulkSet(std::move(sets));
  EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
  ExpectValue(Key("guarded"), "v2");
}

// ---- Transactions -----------------------------------------------------------------------------

TEST_P(StateConformanceTest, TransactionAppliesEveryOperation) {
  if (!caps().transactions) GTEST_SKIP() << "no TRANSACTIONAL";
  ASSERT_TRUE(Set(Key("doomed"), "x").ok());
  ASSERT_TRUE(Set(Key("kept"), "old").ok());
  cs::TransactionRequest tx;
  tx.operations.push_back(Upsert(Key("a"), "A"));
  tx.operations.push_back(Upsert(Key("b"), std::string("B\0b", 3)));
  tx.operations.push_back(Remove(Key("doomed")));
  tx.operations.push_back(Upsert(Key("kept"), "new"));
  absl::Status s = Multi(std::move(tx));
  ASSERT_TRUE(s.ok()) << s;
  ExpectValue(Key("a"), "A");
  ExpectValue(Key("b"), std::string("B\0b", 3));
  ExpectMissing(Key("doomed"));
  ExpectValue(Key("kept"), "new");

  EXPECT_TRUE(Multi({}).ok()) << "an empty transaction is a no-op";
}

TEST_P(StateConformanceTest, TransactionWithCurrentETagsSucceeds) {
  if (!caps().transactions || !caps().etag) GTEST_SKIP() << "no transactions with etags";
  ASSERT_TRUE(Set(Key("a"), "1").ok());
  ASSERT_TRUE(Set(Key("b"), "2").ok());
  cs::TransactionRequest tx;
  tx.operations.push_back(Upsert(Key("a"), "10", ETagOf(Key("a"))));
  tx.operations.push_back(Remove(Key("b"), ETagOf(Key("b"))));
  absl::Status s = Multi(std::move(tx));
  ASSERT_TRUE(s.ok()) << s;
  ExpectValue(Key("a"), "10");
  ExpectMissing(Key("b"));
}

TEST_P(StateConformanceTest, TransactionIsAllOrNothing) {
  if (!caps().atomic_transactions) GTEST_SKIP() << "transactions are not atomic";
  ASSERT_TRUE(Set(Key("guarded"), "v1").ok());
  const std::string stale = ETagOf(Key("guarded"));
  ASSERT_TRUE(Set(Key("guarded"), "v2").ok());
  ASSERT_TRUE(Set(Key("victim"), "still here").ok());
  ASSERT_TRUE(Set(Key("changed"), "before").ok());

  // The failing operation comes last, after operations that would otherwise have applied.
  cs::TransactionRequest tx;
  tx.operations.push_back(Upsert(Key("new"), "should not exist"));
  tx.operations.push_back(Remove(Key("victim")));
  tx.operations.push_back(Upsert(Key("changed"), "after"));
  tx.operations.push_back(Upsert(Key("guarded"), "v3", stale));
  absl::Status s = Multi(std::move(tx));
  EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
  ExpectMissing(Key("new"));
  ExpectValue(Key("victim"), "still here");
  ExpectValue(Key("changed"), "before");
  ExpectValue(Key("guarded"), "v2");

  // Same with a failing delete.
  cs::TransactionRequest tx2;
  tx2.operations.push_back(Upsert(Key("new"), "should not exist"));
  tx2.operations.push_back(Remove(Key("guarded"), stale));
  s = Multi(std::move(tx2));
  EXPECT_TRUE(cs::IsETagMismatch(s)) << s;
  ExpectMissing(Key("new"));
  ExpectValue(Key("guarded"), "v2");
}

// ---- TTL --------------------------------------------------------------------------------------

TEST_P(StateConformanceTest, TTLExpiresTheKeyAndReportsExpireTime) {
  if (!caps().ttl) GTEST_SKIP() << "no TTL";
  const absl::Time before = absl::Now();
  absl::Status s = Set(Key("short"), "v", WithMetadata({{"ttlInSeconds", "1"}}));
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(Set(Key("long"), "w", WithMetadata({{"ttlInSeconds", "3600"}})).ok());
  ASSERT_TRUE(Set(Key("forever"), "x").ok());
  const absl::Time after = absl::Now();

  absl::StatusOr<cs::GetResponse> got = Get(Key("long"));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->found);
  auto it = got->metadata.find("ttlExpireTime");
  ASSERT_NE(it, got->metadata.end()) << "no ttlExpireTime";
  absl::Time expire;
  std::string error;
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, it->second, &expire, &error))
      << it->second << ": " << error;
  EXPECT_TRUE(absl::EndsWith(it->second, "Z")) << it->second << " is not UTC";
  EXPECT_GE(expire, before + absl::Hours(1) - absl::Seconds(2)) << it->second;
  EXPECT_LE(expire, after + absl::Hours(1) + absl::Seconds(2)) << it->second;

  got = Get(Key("forever"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->metadata.count("ttlExpireTime"), 0u) << "a key without TTL reports an expiry";

  EXPECT_TRUE(Eventually(
      [&] {
        absl::StatusOr<cs::GetResponse> r = Get(Key("short"));
        return r.ok() && !r->found;
      },
      absl::Seconds(10)))
      << "a key with ttlInSeconds=1 was still there after 10 s";
  ExpectValue(Key("long"), "w");
  ExpectValue(Key("forever"), "x");
  // An expired key is gone for writes too: first-write may create it again.
  if (caps().first_write) {
    s = Set(Key("short"), "again", WithConcurrency(Concurrency::kFirstWrite));
    EXPECT_TRUE(s.ok()) << s;
  }
}

TEST_P(StateConformanceTest, NonIntegerTTLIsRejected) {
  if (!caps().ttl) GTEST_SKIP() << "no TTL";
  absl::Status s = Set(Key("a"), "v", WithMetadata({{"ttlInSeconds", "soon"}}));
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(MessageOf(s)), HasSubstr("soon"));
  EXPECT_FALSE(IsETagError(s)) << s;
  ExpectMissing(Key("a"));
}

// ---- Optional capabilities: delete with prefix, keys like -------------------------------------

TEST_P(StateConformanceTest, DeleteWithPrefixDeletesOnlyDirectChildren) {
  if (!caps().delete_with_prefix) GTEST_SKIP() << "no DELETE_WITH_PREFIX";
  cs::DeleteWithPrefixStore* d = store_->AsDeleteWithPrefix();
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(Set(Key("actor||a"), "1").ok());
  ASSERT_TRUE(Set(Key("actor||b"), "2").ok());
  ASSERT_TRUE(Set(Key("actor||nested||c"), "3").ok());
  ASSERT_TRUE(Set(Key("actorx||a"), "4").ok());
  ASSERT_TRUE(Set(Key("other||a"), "5").ok());
  auto deleted = AwaitCall<absl::StatusOr<int64_t>>(
      [&](auto done) { d->DeleteWithPrefix(Key("actor"), std::move(done)); },
      GetParam().call_timeout, &calls_, "DeleteWithPrefix");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 2);
  ExpectMissing(Key("actor||a"));
  ExpectMissing(Key("actor||b"));
  ExpectValue(Key("actor||nested||c"), "3");
  ExpectValue(Key("actorx||a"), "4");
  ExpectValue(Key("other||a"), "5");

  // A prefix given with its "||" behaves the same.
  deleted = AwaitCall<absl::StatusOr<int64_t>>(
      [&](auto done) { d->DeleteWithPrefix(Key("actor||nested||"), std::move(done)); },
      GetParam().call_timeout, &calls_, "DeleteWithPrefix");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 1);
  ExpectMissing(Key("actor||nested||c"));

  for (std::string empty : {"", "||"}) {
    deleted = AwaitCall<absl::StatusOr<int64_t>>(
        [&](auto done) { d->DeleteWithPrefix(empty, std::move(done)); }, GetParam().call_timeout,
        &calls_, "DeleteWithPrefix");
    EXPECT_EQ(deleted.status().code(), absl::StatusCode::kInvalidArgument) << '"' << empty << '"';
  }
  ExpectValue(Key("other||a"), "5");
}

TEST_P(StateConformanceTest, KeysLikeMatchesAndPaginates) {
  if (!caps().keys_like) GTEST_SKIP() << "no KEYS_LIKE";
  cs::KeysLikeStore* k = store_->AsKeysLike();
  ASSERT_NE(k, nullptr);
  for (const char* name : {"a1", "b1", "a2", "a10", "a_x"}) ASSERT_TRUE(Set(Key(name), "v").ok());
  auto list = [&](std::string pattern, std::optional<uint32_t> page = std::nullopt,
                  std::optional<std::string> token = std::nullopt) {
    cs::KeysLikeRequest request;
    request.pattern = std::move(pattern);
    request.page_size = page;
    request.continuation_token = std::move(token);
    return AwaitCall<absl::StatusOr<cs::KeysLikeResponse>>(
        [&](auto done) { k->KeysLike(std::move(request), std::move(done)); },
        GetParam().call_timeout, &calls_, "KeysLike");
  };
  const std::string p = LikeEscape(prefix_);

  auto all_a = list(p + "a%");
  ASSERT_TRUE(all_a.ok()) << all_a.status();
  EXPECT_EQ(all_a->keys, (std::vector<std::string>{Key("a1"), Key("a2"), Key("a10"), Key("a_x")}))
      << "matching keys in write order";
  EXPECT_FALSE(all_a->continuation_token.has_value());

  auto one_char = list(p + "_1");
  ASSERT_TRUE(one_char.ok()) << one_char.status();
  EXPECT_EQ(one_char->keys, (std::vector<std::string>{Key("a1"), Key("b1")}));

  auto escaped = list(p + "a\\_%");
  ASSERT_TRUE(escaped.ok()) << escaped.status();
  EXPECT_EQ(escaped->keys, (std::vector<std::string>{Key("a_x")}));

  // Pages of two, following the continuation token.
  std::vector<std::string> paged;
  std::optional<std::string> token;
  int pages = 0;
  do {
    auto page = list(p + "a%", 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->keys.size(), 2u);
    paged.insert(paged.end(), page->keys.begin(), page->keys.end());
    token = page->continuation_token;
  } while (token.has_value() && ++pages < 10);
  EXPECT_EQ(paged, all_a->keys);

  EXPECT_EQ(list("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(list(p + "%", 1, "not-a-token").ok());
}

// ---- Concurrency ------------------------------------------------------------------------------

TEST_P(StateConformanceTest, ConcurrentWritersFromSeveralThreads) {
  constexpr int kThreads = 4;
  constexpr int kWritesPerThread = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWritesPerThread; ++i) {
        if (!Set(Key(StrCat("t", t, "-", i)), StrCat("value-", t, "-", i)).ok()) ++failures;
        if (!Set(Key("shared"), StrCat("from-", t, "-", i)).ok()) ++failures;
        absl::StatusOr<cs::GetResponse> got = Get(Key(StrCat("t", t, "-", i)));
        if (!got.ok() || got->data != StrCat("value-", t, "-", i)) ++failures;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kWritesPerThread; ++i) {
      ExpectValue(Key(StrCat("t", t, "-", i)), StrCat("value-", t, "-", i));
    }
  }
  absl::StatusOr<cs::GetResponse> shared = Get(Key("shared"));
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_THAT(shared->data, HasSubstr(StrCat("-", kWritesPerThread - 1)))
      << "the shared key holds some thread's last write";
}

TEST_P(StateConformanceTest, ConcurrentETagIncrementsLoseNothing) {
  if (!caps().etag) GTEST_SKIP() << "no ETAG";
  // Optimistic read-modify-write from several threads: with working etags no increment is lost.
  constexpr int kThreads = 4;
  constexpr int kIncrements = 25;
  ASSERT_TRUE(Set(Key("counter"), "0").ok());
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        for (int attempt = 0;; ++attempt) {
          absl::StatusOr<cs::GetResponse> got = Get(Key("counter"));
          if (!got.ok() || !got->etag.has_value() || attempt > 10000) {
            ++errors;
            return;
          }
          int value = 0;
          std::from_chars(got->data.data(), got->data.data() + got->data.size(), value);
          absl::Status s =
              Set(Key("counter"), StrCat(value + 1), WithETag(got->etag, Concurrency::kFirstWrite));
          if (s.ok()) break;
          if (!cs::IsETagMismatch(s)) {
            ++errors;
            return;
          }
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  ExpectValue(Key("counter"), StrCat(kThreads * kIncrements));
}

}  // namespace remora::conformance::state
