// The kind-level helpers in components/state/store.cc: feature names, etag errors, ParseTTL and
// the default bulk operations, driven by a store whose callbacks complete later on other threads.

#include <atomic>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "remora/components/common/strings.h"
#include "remora/components/state/store.h"
#include "tests/conformance/state/state_conformance.h"

namespace remora::components::state {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

TEST(FeatureNameTest, MatchesDaprCapabilityStrings) {
  EXPECT_STREQ(FeatureName(Feature::kETag), "ETAG");
  EXPECT_STREQ(FeatureName(Feature::kTransactional), "TRANSACTIONAL");
  EXPECT_STREQ(FeatureName(Feature::kTTL), "TTL");
  EXPECT_STREQ(FeatureName(Feature::kQueryAPI), "QUERY_API");
  EXPECT_STREQ(FeatureName(Feature::kDeleteWithPrefix), "DELETE_WITH_PREFIX");
  EXPECT_STREQ(FeatureName(Feature::kKeysLike), "KEYS_LIKE");
}

TEST(ETagErrorTest, KindsAreDistinguishable) {
  absl::Status mismatch = ETagMismatchError("etag mismatch for key \"k\"");
  absl::Status invalid = ETagInvalidError();
  EXPECT_EQ(mismatch.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(invalid.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MessageOf(mismatch), "etag mismatch for key \"k\"");
  EXPECT_EQ(MessageOf(invalid), "invalid etag value");
  EXPECT_TRUE(IsETagMismatch(mismatch));
  EXPECT_FALSE(IsETagInvalid(mismatch));
  EXPECT_TRUE(IsETagInvalid(invalid));
  EXPECT_FALSE(IsETagMismatch(invalid));
  // Same codes without the payload are ordinary errors.
  EXPECT_FALSE(IsETagMismatch(absl::AbortedError("possible etag mismatch")));
  EXPECT_FALSE(IsETagInvalid(absl::InvalidArgumentError("invalid etag value")));
  EXPECT_FALSE(IsETagMismatch(absl::OkStatus()));
  EXPECT_FALSE(IsETagInvalid(absl::OkStatus()));
}

TEST(ParseTTLTest, AbsentOrEmptyIsNone) {
  auto ttl = ParseTTL({});
  ASSERT_TRUE(ttl.ok());
  EXPECT_FALSE(ttl->has_value());
  ttl = ParseTTL({{"ttlInSeconds", ""}});
  ASSERT_TRUE(ttl.ok());
  EXPECT_FALSE(ttl->has_value());
  // Request metadata keys are exact, as in Dapr (a Go map lookup).
  ttl = ParseTTL({{"TTLINSECONDS", "5"}});
  ASSERT_TRUE(ttl.ok());
  EXPECT_FALSE(ttl->has_value());
}

TEST(ParseTTLTest, IntegersAreReturnedAsGiven) {
  for (const auto& [text, value] :
       std::vector<std::pair<std::string, int64_t>>{{"10", 10},
                                                    {"0", 0},
                                                    {"-1", -1},
                                                    {"+5", 5},
                                                    {"007", 7},
                                                    {"9223372036854775807", INT64_MAX}}) {
    auto ttl = ParseTTL({{"ttlInSeconds", text}});
    ASSERT_TRUE(ttl.ok()) << text << ": " << ttl.status();
    EXPECT_EQ(*ttl, value) << text;
  }
}

TEST(ParseTTLTest, NonIntegersAreInvalidArgumentNamingTheValue) {
  for (const std::string text :
       {"abc", "1.5", " 1", "1 ", "1s", "+", "-", "++1", "+-1", "0x10", "9223372036854775808"}) {
    auto ttl = ParseTTL({{"ttlInSeconds", text}});
    ASSERT_FALSE(ttl.ok()) << '"' << text << "\" accepted";
    EXPECT_EQ(ttl.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(MessageOf(ttl.status())), HasSubstr(StrCat("\"", text, "\"")));
    EXPECT_THAT(std::string(MessageOf(ttl.status())), HasSubstr("ttlInSeconds"));
  }
}

// A store that answers nothing until the test releases its pending calls, each from a thread of
// the test's choosing. It has no bulk overrides, so the defaults in store.cc run.
class DeferredStore : public Store {
 public:
  std::vector<Feature> Features() const override { return {}; }

  void Get(GetRequest request, Callback<GetResponse> done) override {
    Defer([this, key = request.key, done = std::move(done)]() mutable {
      if (absl::StartsWith(key, "fail")) {
        std::move(done)(absl::UnavailableError(StrCat("backend down for ", key)));
        return;
      }
      GetResponse r;
      {
        absl::MutexLock lock(&mu_);
        auto it = data_.find(key);
        if (it != data_.end()) {
          r.found = true;
          r.data = it->second;
          r.etag = "1";
        }
      }
      std::move(done)(std::move(r));
    });
  }
  void Set(SetRequest request, DoneCallback done) override {
    Defer([this, request = std::move(request), done = std::move(done)]() mutable {
      if (request.etag.has_value()) {
        std::move(done)(ETagMismatchError("stale"));
        return;
      }
      {
        absl::MutexLock lock(&mu_);
        data_[request.key] = request.value;
      }
      std::move(done)(absl::OkStatus());
    });
  }
  void Delete(DeleteRequest request, DoneCallback done) override {
    Defer([this, key = request.key, done = std::move(done)]() mutable {
      if (absl::StartsWith(key, "fail")) {
        std::move(done)(absl::UnavailableError("backend down"));
        return;
      }
      {
        absl::MutexLock lock(&mu_);
        data_.erase(key);
      }
      std::move(done)(absl::OkStatus());
    });
  }

  void Put(std::string key, std::string value) {
    absl::MutexLock lock(&mu_);
    data_[key] = value;
  }
  size_t Pending() {
    absl::MutexLock lock(&mu_);
    return pending_.size();
  }
  // Completes every pending call, last issued first, each from a fresh thread, one at a time.
  void CompleteInReverseFromOtherThreads() {
    std::vector<absl::AnyInvocable<void()&&>> calls = Take();
    for (size_t i = calls.size(); i-- > 0;) {
      std::thread([&calls, i] { std::move(calls[i])(); }).join();
    }
  }
  // Completes every pending call at once, each on its own thread.
  void CompleteConcurrently() {
    std::vector<absl::AnyInvocable<void()&&>> calls = Take();
    std::vector<std::thread> threads;
    for (auto& call : calls) threads.emplace_back([&call] { std::move(call)(); });
    for (auto& t : threads) t.join();
  }

 private:
  void Defer(absl::AnyInvocable<void() &&> call) {
    absl::MutexLock lock(&mu_);
    pending_.push_back(std::move(call));
  }
  std::vector<absl::AnyInvocable<void() &&>> Take() {
    absl::MutexLock lock(&mu_);
    return std::exchange(pending_, {});
  }

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> data_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::AnyInvocable<void() &&>> pending_ ABSL_GUARDED_BY(mu_);
};

std::vector<GetRequest> Gets(std::vector<std::string> keys) {
  std::vector<GetRequest> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) out[i].key = keys[i];
  return out;
}

TEST(DefaultBulkTest, BulkGetKeepsRequestOrderWhenCompletionsArriveReversed) {
  DeferredStore store;
  store.Put("a", "A");
  store.Put("c", "C");
  std::atomic<int> calls{0};
  std::vector<BulkGetItem> items;
  store.BulkGet(Gets({"a", "fail-b", "c", "missing"}),
                [&](absl::StatusOr<std::vector<BulkGetItem>> result) {
                  ++calls;
                  ASSERT_TRUE(result.ok()) << result.status();
                  items = *std::move(result);
                });
  EXPECT_EQ(store.Pending(), 4u) << "every Get is issued before any completes";
  EXPECT_EQ(calls.load(), 0);
  store.CompleteInReverseFromOtherThreads();
  ASSERT_EQ(calls.load(), 1);
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0].key, "a");
  EXPECT_TRUE(items[0].response.found);
  EXPECT_EQ(items[0].response.data, "A");
  EXPECT_EQ(items[0].response.etag, "1");
  EXPECT_THAT(items[0].error, IsEmpty());
  EXPECT_EQ(items[1].key, "fail-b");
  EXPECT_FALSE(items[1].response.found);
  EXPECT_THAT(items[1].error, HasSubstr("backend down for fail-b"));
  EXPECT_EQ(items[2].key, "c");
  EXPECT_EQ(items[2].response.data, "C");
  EXPECT_EQ(items[3].key, "missing");
  EXPECT_FALSE(items[3].response.found);
  EXPECT_THAT(items[3].error, IsEmpty());
}

TEST(DefaultBulkTest, EmptyBulkCallsCompleteImmediately) {
  DeferredStore store;
  int calls = 0;
  store.BulkGet({}, [&](absl::StatusOr<std::vector<BulkGetItem>> r) {
    ++calls;
    ASSERT_TRUE(r.ok());
    EXPECT_THAT(*r, IsEmpty());
  });
  store.BulkSet({}, [&](absl::Status s) {
    ++calls;
    EXPECT_TRUE(s.ok());
  });
  store.BulkDelete({}, [&](absl::Status s) {
    ++calls;
    EXPECT_TRUE(s.ok());
  });
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(store.Pending(), 0u);
}

TEST(DefaultBulkTest, BulkSetReportsTheFirstFailureInRequestOrderKeepingItsKind) {
  DeferredStore store;
  std::vector<SetRequest> sets(4);
  sets[0].key = "ok1";
  sets[1].key = "stale";
  sets[1].etag = "old";
  sets[2].key = "ok2";
  sets[3].key = "stale2";
  sets[3].etag = "old";
  std::atomic<int> calls{0};
  absl::Status result;
  store.BulkSet(std::move(sets), [&](absl::Status s) {
    ++calls;
    result = s;
  });
  EXPECT_EQ(store.Pending(), 4u);
  store.CompleteInReverseFromOtherThreads();
  ASSERT_EQ(calls.load(), 1);
  EXPECT_TRUE(IsETagMismatch(result)) << result << ": the etag kind survives the bulk call";
  EXPECT_THAT(std::string(MessageOf(result)), HasSubstr("\"stale\""));
  EXPECT_THAT(std::string(MessageOf(result)), Not(HasSubstr("stale2")));
}

TEST(DefaultBulkTest, BulkDeleteSucceedsWhenEveryDeleteDoes) {
  DeferredStore store;
  store.Put("a", "A");
  store.Put("b", "B");
  std::vector<DeleteRequest> deletes(2);
  deletes[0].key = "a";
  deletes[1].key = "b";
  std::atomic<int> calls{0};
  absl::Status result = absl::UnknownError("not run");
  store.BulkDelete(std::move(deletes), [&](absl::Status s) {
    ++calls;
    result = s;
  });
  store.CompleteInReverseFromOtherThreads();
  ASSERT_EQ(calls.load(), 1);
  EXPECT_TRUE(result.ok()) << result;

  std::vector<BulkGetItem> items;
  store.BulkGet(Gets({"a", "b"}),
                [&](absl::StatusOr<std::vector<BulkGetItem>> r) { items = *std::move(r); });
  store.CompleteConcurrently();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_FALSE(items[0].response.found);
  EXPECT_FALSE(items[1].response.found);

  std::vector<DeleteRequest> failing(2);
  failing[0].key = "x";
  failing[1].key = "fail-y";
  store.BulkDelete(std::move(failing), [&](absl::Status s) { result = s; });
  store.CompleteConcurrently();
  EXPECT_EQ(result.code(), absl::StatusCode::kUnavailable) << result;
  EXPECT_THAT(std::string(MessageOf(result)), HasSubstr("fail-y"));
}

TEST(DefaultBulkTest, ConcurrentCompletionsInvokeTheCallbackExactlyOnce) {
  // Every completion races the others to be last; repeated so that a lost or double callback
  // shows up.
  for (int round = 0; round < 200; ++round) {
    DeferredStore store;
    std::vector<std::string> keys;
    for (int i = 0; i < 8; ++i) {
      keys.push_back(StrCat("k", i));
      store.Put(keys.back(), StrCat("v", i));
    }
    std::atomic<int> calls{0};
    std::vector<BulkGetItem> items;
    store.BulkGet(Gets(keys), [&](absl::StatusOr<std::vector<BulkGetItem>> r) {
      ++calls;
      items = *std::move(r);
    });
    store.CompleteConcurrently();
    ASSERT_EQ(calls.load(), 1) << "round " << round;
    ASSERT_EQ(items.size(), 8u);
    for (int i = 0; i < 8; ++i) {
      ASSERT_EQ(items[i].key, StrCat("k", i));
      ASSERT_EQ(items[i].response.data, StrCat("v", i)) << "round " << round;
    }
  }
}

TEST(AwaitCallTest, TimesOutWhenTheStoreNeverAnswers) {
  DeferredStore store;
  conformance::state::CallLog log;
  absl::Status s = conformance::state::AwaitCall<absl::Status>(
      [&](auto done) {
        SetRequest r;
        r.key = "k";
        store.Set(std::move(r), std::move(done));
      },
      std::chrono::milliseconds(50), &log, "Set k");
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(log.Problems(), ElementsAre("Set k: callback ran 0 times"));
  // A late answer lands safely and is counted.
  store.CompleteConcurrently();
  EXPECT_THAT(log.Problems(), IsEmpty());
}

}  // namespace
}  // namespace remora::components::state
