// The state building block above a recording fake store: key scoping, validation and the mapping
// of component errors to Dapr's codes. The real stores are covered by the conformance suite.

#include "blocks/state/state_block.h"

#include "gtest/gtest.h"
#include "remora/runtime/errors.h"

namespace remora::runtime {
namespace {

using errors::Code;

class RecordingStore : public state::Store, public state::TransactionalStore {
 public:
  std::vector<std::string> seen_keys;
  absl::Status next_error;
  bool transactional = true;
  int max_ops = 0;

  std::vector<state::Feature> Features() const override { return {state::Feature::kETag}; }
  void Get(state::GetRequest r, Callback<state::GetResponse> done) override {
    seen_keys.push_back(r.key);
    if (!next_error.ok()) return std::move(done)(next_error);
    state::GetResponse resp;
    resp.found = true;
    resp.data = "v";
    std::move(done)(resp);
  }
  void Set(state::SetRequest r, DoneCallback done) override {
    seen_keys.push_back(r.key);
    std::move(done)(next_error);
  }
  void Delete(state::DeleteRequest r, DoneCallback done) override {
    seen_keys.push_back(r.key);
    std::move(done)(next_error);
  }
  void BulkGet(std::vector<state::GetRequest> rs,
               Callback<std::vector<state::BulkGetItem>> done) override {
    std::vector<state::BulkGetItem> items;
    for (auto& r : rs) {
      seen_keys.push_back(r.key);
      items.push_back({r.key, {}, ""});
    }
    std::move(done)(std::move(items));
  }
  TransactionalStore* AsTransactional() override { return transactional ? this : nullptr; }
  void Multi(state::TransactionRequest r, DoneCallback done) override {
    for (auto& op : r.operations) {
      seen_keys.push_back(op.type == state::Operation::Type::kUpsert ? op.set.key : op.delete_.key);
    }
    std::move(done)(next_error);
  }
  int MaxOperations() const override { return max_ops; }
};

struct Harness {
  StateBlock block{"myapp", "prod"};
  RecordingStore* store = nullptr;
  explicit Harness(std::string_view key_prefix = "") {
    auto s = std::make_unique<RecordingStore>();
    store = s.get();
    block.AddStore("statestore", "state.fake", "v1", KeyPrefix::Parse(key_prefix), std::move(s));
  }
  absl::StatusOr<state::GetResponse> Get(std::string key) {
    absl::StatusOr<state::GetResponse> out;
    block.Get("statestore", {std::move(key), {}, {}}, [&](auto r) { out = std::move(r); });
    return out;
  }
  absl::Status Save(std::string key) {
    absl::Status out;
    std::vector<state::SetRequest> items(1);
    items[0].key = std::move(key);
    block.Save("statestore", std::move(items), [&](absl::Status s) { out = s; });
    return out;
  }
};

Code CodeOf(const absl::Status& s) {
  Code c = Code::kInternal;
  EXPECT_TRUE(errors::CodeOf(s, &c)) << s;
  return c;
}

TEST(StateBlock, ScopesKeysByKeyPrefixMode) {
  struct Case {
    std::string prefix, expected;
  } cases[] = {{"", "myapp||k"},          {"appid", "myapp||k"}, {"AppID", "myapp||k"},
               {"name", "statestore||k"}, {"none", "k"},         {"namespace", "prod.myapp||k"},
               {"shared", "shared||k"}};
  for (const auto& c : cases) {
    Harness h(c.prefix);
    ASSERT_TRUE(h.Save("k").ok());
    ASSERT_TRUE(h.Get("k").ok());
    EXPECT_EQ(h.store->seen_keys, (std::vector<std::string>{c.expected, c.expected})) << c.prefix;
  }
}

TEST(StateBlock, NoAppIdMeansBareKeys) {
  StateBlock block("", "");
  auto store = std::make_unique<RecordingStore>();
  RecordingStore* raw = store.get();
  block.AddStore("s", "state.fake", "v1", KeyPrefix::Parse(""), std::move(store));
  block.Get("s", {"k", {}, {}}, [](auto) {});
  EXPECT_EQ(raw->seen_keys, std::vector<std::string>{"k"});
}

TEST(StateBlock, RejectsKeysWithSeparator) {
  Harness h;
  auto r = h.Get("a||b");
  EXPECT_EQ(CodeOf(r.status()), Code::kStateIllegalKey);
  EXPECT_EQ(errors::ToHttp(r.status()).status, 400);
  EXPECT_TRUE(h.store->seen_keys.empty());
}

TEST(StateBlock, UnknownAndMissingStores) {
  Harness h;
  absl::StatusOr<state::GetResponse> out;
  h.block.Get("other", {"k", {}, {}}, [&](auto r) { out = std::move(r); });
  EXPECT_EQ(CodeOf(out.status()), Code::kStateStoreNotFound);

  StateBlock empty("a", "");
  empty.Get("any", {"k", {}, {}}, [&](auto r) { out = std::move(r); });
  EXPECT_EQ(CodeOf(out.status()), Code::kStateStoreNotConfigured);
  EXPECT_EQ(errors::ToHttp(out.status()).status, 500);
}

TEST(StateBlock, MapsComponentErrorsToOperationCodes) {
  Harness h;
  h.store->next_error = state::ETagMismatchError();
  EXPECT_EQ(CodeOf(h.Save("k")), Code::kStateSaveETagMismatch);
  h.store->next_error = state::ETagInvalidError();
  EXPECT_EQ(CodeOf(h.Save("k")), Code::kStateSaveETagInvalid);
  h.store->next_error = absl::UnavailableError("redis down");
  absl::Status plain = h.Save("k");
  EXPECT_EQ(CodeOf(plain), Code::kStateSave);
  EXPECT_NE(plain.message().find("redis down"), absl::string_view::npos);
  EXPECT_EQ(CodeOf(h.Get("k").status()), Code::kStateGet);

  absl::Status del;
  h.store->next_error = state::ETagMismatchError();
  h.block.Delete("statestore", {"k", "1", {}, {}}, [&](absl::Status s) { del = s; });
  EXPECT_EQ(CodeOf(del), Code::kStateDeleteETagMismatch);
  EXPECT_EQ(errors::ToHttp(del).status, 409);
}

TEST(StateBlock, TransactionsNeedTheCapabilityAndRespectMaxOps) {
  Harness h;
  state::TransactionRequest tx;
  tx.operations.resize(3);
  for (int i = 0; i < 3; ++i) tx.operations[i].set.key = "k" + std::to_string(i);
  absl::Status out;
  h.store->max_ops = 2;
  h.block.Transaction("statestore", tx, [&](absl::Status s) { out = s; });
  EXPECT_EQ(CodeOf(out), Code::kStateTooManyTransactions);

  h.store->max_ops = 0;
  h.block.Transaction("statestore", tx, [&](absl::Status s) { out = s; });
  EXPECT_TRUE(out.ok());
  EXPECT_EQ(h.store->seen_keys, (std::vector<std::string>{"myapp||k0", "myapp||k1", "myapp||k2"}));

  h.store->transactional = false;
  h.block.Transaction("statestore", tx, [&](absl::Status s) { out = s; });
  EXPECT_EQ(CodeOf(out), Code::kStateTransactionsNotSupported);
  EXPECT_EQ(errors::ToHttp(out).status, 500);
}

TEST(StateBlock, BulkGetReturnsUnscopedKeys) {
  Harness h;
  std::vector<state::BulkGetItem> items;
  h.block.BulkGet("statestore", {"a", "b"}, {}, [&](auto r) { items = *std::move(r); });
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].key, "a");
  EXPECT_EQ(items[1].key, "b");
  EXPECT_EQ(h.store->seen_keys, (std::vector<std::string>{"myapp||a", "myapp||b"}));
}

}  // namespace
}  // namespace remora::runtime
