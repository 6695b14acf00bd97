#include "tests/sdk/client_suite.h"

#include <unistd.h>

#include <algorithm>
#include <thread>
#include <vector>

#include <gmock/gmock.h>

#include "remora/components/common/strings.h"

namespace remora::sdk_test {
namespace {

constexpr const char* kStore = "statestore";

StateItem Item(std::string key, std::string value) {
  StateItem item;
  item.key = std::move(key);
  item.value = std::move(value);
  return item;
}

DeleteItem Deletion(std::string key) {
  DeleteItem item;
  item.key = std::move(key);
  return item;
}

}  // namespace

void ClientSuite::SetUp() {
  auto client = GetParam().make();
  ASSERT_TRUE(client.ok()) << client.status();
  client_ = *std::move(client);
}

std::string ClientSuite::Key(const std::string& name) const {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  // The run's pid too: a Redis backend outlives the run.
  return StrCat(info->name(), "-", ::getpid(), "-", name);
}

TEST_P(ClientSuite, SavedBytesComeBackVerbatimWithAnEtag) {
  const std::string value("bin\0ary \xff\xfe data", 16);
  ASSERT_TRUE(client_->SaveState(kStore, Key("k"), value).ok());
  auto got = client_->GetState(kStore, Key("k"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->value, value);
  EXPECT_FALSE(got->etag.empty()) << GetParam().store_type << " has etags";
}

TEST_P(ClientSuite, MissingKeyIsNotFoundAndNotAnError) {
  auto got = client_->GetState(kStore, Key("never-written"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->found);
  EXPECT_EQ(got->value, "");
  EXPECT_EQ(got->etag, "");
}

TEST_P(ClientSuite, StaleEtagIsAbortedAndChangesNothing) {
  ASSERT_TRUE(client_->SaveState(kStore, Key("k"), "v1").ok());
  auto first = client_->GetState(kStore, Key("k"));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(client_->SaveState(kStore, Key("k"), "v2", first->etag).ok());

  // first->etag is stale now.
  absl::Status save = client_->SaveState(kStore, Key("k"), "v3", first->etag);
  EXPECT_EQ(save.code(), absl::StatusCode::kAborted) << save;
  absl::Status del = client_->DeleteState(kStore, Key("k"), first->etag);
  EXPECT_EQ(del.code(), absl::StatusCode::kAborted) << del;

  auto now = client_->GetState(kStore, Key("k"));
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->value, "v2");
  EXPECT_NE(now->etag, first->etag);
  EXPECT_TRUE(client_->DeleteState(kStore, Key("k"), now->etag).ok());
  EXPECT_FALSE(client_->GetState(kStore, Key("k"))->found);
}

TEST_P(ClientSuite, FirstWriteWithoutEtagCreatesOnlyOnce) {
  StateItem item = Item(Key("k"), "mine");
  item.options.concurrency = Concurrency::kFirstWrite;
  ASSERT_TRUE(client_->SaveState(kStore, item).ok());
  item.value = "theirs";
  // Refused either way; the code is the store's, as in Dapr: state.in-memory reports an etag
  // mismatch (ABORTED), state.redis a plain write failure (INTERNAL).
  absl::Status again = client_->SaveState(kStore, item);
  EXPECT_THAT(again.code(),
              ::testing::AnyOf(absl::StatusCode::kAborted, absl::StatusCode::kInternal))
      << again;
  EXPECT_EQ(client_->GetState(kStore, Key("k"))->value, "mine");
}

TEST_P(ClientSuite, SaveManyItemsInOneCallAndReadThemInBulk) {
  SaveStateRequest save;
  save.store = kStore;
  for (const char* name : {"a", "b", "c"}) {
    save.items.push_back(Item(Key(name), StrCat("value-", name)));
  }
  ASSERT_TRUE(client_->SaveState(save).ok());

  GetBulkStateRequest bulk;
  bulk.store = kStore;
  bulk.keys = {Key("c"), Key("missing"), Key("a")};
  auto items = client_->GetBulkState(bulk);
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[0].key, Key("c"));
  EXPECT_TRUE((*items)[0].found);
  EXPECT_EQ((*items)[0].value, "value-c");
  EXPECT_FALSE((*items)[0].etag.empty());
  EXPECT_EQ((*items)[1].key, Key("missing"));
  EXPECT_FALSE((*items)[1].found);
  EXPECT_EQ((*items)[1].error, "");
  EXPECT_EQ((*items)[2].value, "value-a");
}

TEST_P(ClientSuite, DeleteBulkRemovesEveryKey) {
  ASSERT_TRUE(client_->SaveState(kStore, Key("a"), "1").ok());
  ASSERT_TRUE(client_->SaveState(kStore, Key("b"), "2").ok());
  DeleteBulkStateRequest request;
  request.store = kStore;
  request.items = {Deletion(Key("a")), Deletion(Key("b"))};
  ASSERT_TRUE(client_->DeleteBulkState(request).ok());
  EXPECT_FALSE(client_->GetState(kStore, Key("a"))->found);
  EXPECT_FALSE(client_->GetState(kStore, Key("b"))->found);
}

TEST_P(ClientSuite, TransactionAppliesAllOrNothing) {
  ASSERT_TRUE(client_->SaveState(kStore, Key("old"), "x").ok());
  TransactionRequest tx;
  tx.store = kStore;
  tx.operations = {TransactionOperation::Upsert(Item(Key("new"), "y")),
                   TransactionOperation::Delete(Key("old"))};
  ASSERT_TRUE(client_->ExecuteStateTransaction(tx).ok());
  EXPECT_EQ(client_->GetState(kStore, Key("new"))->value, "y");
  EXPECT_FALSE(client_->GetState(kStore, Key("old"))->found);

  // One operation with a wrong etag: the other one must not apply either. Dapr answers a failed
  // transaction with INTERNAL (ERR_STATE_TRANSACTION), etag conflicts included.
  TransactionRequest failing;
  failing.store = kStore;
  failing.operations = {TransactionOperation::Upsert(Item(Key("other"), "z")),
                        TransactionOperation::Delete(Key("new"), "not-the-etag")};
  absl::Status s = client_->ExecuteStateTransaction(failing);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_FALSE(client_->GetState(kStore, Key("other"))->found);
  EXPECT_EQ(client_->GetState(kStore, Key("new"))->value, "y");
}

TEST_P(ClientSuite, UnknownStoreIsInvalidArgumentWithDaprReason) {
  auto got = client_->GetState("no-such-store", Key("k"));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find("no-such-store"), absl::string_view::npos) << got.status();
  EXPECT_EQ(ErrorReason(got.status()), "DAPR_STATE_NOT_FOUND");
}

TEST_P(ClientSuite, KeyWithSeparatorIsRejected) {
  absl::Status s = client_->SaveState(kStore, "a||b", "v");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(ErrorReason(s), "DAPR_STATE_ILLEGAL_KEY");
}

TEST_P(ClientSuite, JsonHelpersRoundTrip) {
  nlohmann::json order = {{"id", 7}, {"items", {"tea", "cake"}}, {"note", "ünïcode"}};
  ASSERT_TRUE(client_->SaveJson(kStore, Key("order"), order).ok());
  auto got = client_->GetState(kStore, Key("order"));
  ASSERT_TRUE(got.ok());
  auto json = got->Json();
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, order);

  ASSERT_TRUE(client_->SaveState(kStore, Key("text"), "not json {").ok());
  EXPECT_EQ(client_->GetState(kStore, Key("text"))->Json().status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(ClientSuite, RequestMetadataReachesTheStore) {
  StateItem item = Item(Key("k"), "v");
  item.metadata["ttlInSeconds"] = "300";
  ASSERT_TRUE(client_->SaveState(kStore, item).ok());
  auto got = client_->GetState(kStore, Key("k"));
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->metadata.contains("ttlExpireTime"));
}

TEST_P(ClientSuite, MetadataNamesAppAndStoresAndKeepsWhatWasSet) {
  ASSERT_TRUE(client_->SetMetadata("sdk-test-key", "sdk-test-value").ok());
  auto md = client_->GetMetadata();
  ASSERT_TRUE(md.ok()) << md.status();
  EXPECT_EQ(md->app_id, kAppId);
  EXPECT_FALSE(md->runtime_version.empty());
  bool found_store = false;
  for (const ComponentInfo& c : md->components) {
    if (c.name != kStore) continue;
    found_store = true;
    EXPECT_EQ(c.type, GetParam().store_type);
    EXPECT_EQ(c.version, "v1");
    EXPECT_NE(std::find(c.capabilities.begin(), c.capabilities.end(), "ETAG"),
              c.capabilities.end());
  }
  EXPECT_TRUE(found_store);
  EXPECT_EQ(md->extended["sdk-test-key"], "sdk-test-value");
}

TEST_P(ClientSuite, OneClientServesManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 100;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        std::string key = Key(StrCat("t", t));
        std::string value = StrCat(t, ":", i);
        if (!client_->SaveState(kStore, key, value).ok()) ++failures[t];
        auto got = client_->GetState(kStore, key);
        if (!got.ok() || got->value != value) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

}  // namespace remora::sdk_test
