#include "tests/conformance/lock/lock_conformance.h"

#include <unistd.h>

#include <random>
#include <thread>

#include "remora/components/common/strings.h"

namespace remora::conformance::lock {

using cl::UnlockStatus;

const std::string& RunId() {
  static const std::string id = [] {
    std::random_device rd;
    return StrCat(getpid(), "-", rd() % 1000000);
  }();
  return id;
}

void LockConformanceTest::SetUp() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  prefix_ = StrCat("lockconf-", RunId(), "-", info->name(), "-");
  store_ = NewStore();
  ASSERT_NE(store_, nullptr);
}

void LockConformanceTest::TearDown() {
  // Give callbacks still on their way (a timed-out call) no chance to be miscounted: only calls
  // that returned are checked, and each of them must have run its callback exactly once.
  for (size_t i = 0; i < calls_.size(); ++i) {
    EXPECT_EQ(calls_[i]->load(), 1)
        << "callback of call #" << i << " ran " << calls_[i]->load() << " times";
  }
  store_.reset();
}

std::unique_ptr<cl::Store> LockConformanceTest::NewStore() {
  const LockStoreHarness& h = GetParam();
  components::ComponentContext context;
  context.name = "lockstore";
  context.type = h.type;
  context.version = "v1";
  if (h.prepare) {
    absl::Status prepared = h.prepare(context);
    EXPECT_TRUE(prepared.ok()) << prepared;
    if (!prepared.ok()) return nullptr;
  }
  absl::StatusOr<std::unique_ptr<cl::Store>> store = h.factory(context);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

std::string LockConformanceTest::Resource(std::string_view name) const {
  return StrCat(prefix_, name);
}

absl::StatusOr<bool> LockConformanceTest::TryLock(std::string resource, std::string owner,
                                                  int32_t expiry_s, cl::Store* store) {
  cl::Store* s = store ? store : store_.get();
  auto calls = std::make_shared<std::atomic<int>>(0);
  calls_.push_back(calls);
  absl::StatusOr<cl::TryLockResponse> r = Await<cl::TryLockResponse>(
      [&](Callback<cl::TryLockResponse> done) {
        s->TryLock({.resource_id = std::move(resource),
                    .lock_owner = std::move(owner),
                    .expiry_in_seconds = expiry_s},
                   std::move(done));
      },
      GetParam().call_timeout, calls);
  if (!r.ok()) return r.status();
  return r->success;
}

absl::StatusOr<UnlockStatus> LockConformanceTest::Unlock(std::string resource, std::string owner,
                                                         cl::Store* store) {
  cl::Store* s = store ? store : store_.get();
  auto calls = std::make_shared<std::atomic<int>>(0);
  calls_.push_back(calls);
  return Await<UnlockStatus>(
      [&](Callback<UnlockStatus> done) {
        s->Unlock({.resource_id = std::move(resource), .lock_owner = std::move(owner)},
                  std::move(done));
      },
      GetParam().call_timeout, calls);
}

namespace {

// Pretty names in failure messages.
std::string Name(const absl::StatusOr<UnlockStatus>& s) {
  if (!s.ok()) return s.status().ToString();
  return std::string(cl::UnlockStatusName(*s));
}

TEST_P(LockConformanceTest, AcquireUnlockAndAcquireAgain) {
  std::string r = Resource("order-1");
  EXPECT_EQ(TryLock(r, "owner-a", 30).value_or(false), true);
  EXPECT_EQ(Name(Unlock(r, "owner-a")), "SUCCESS");
  // Released: anyone may take it now, and it can be released again by its new owner.
  EXPECT_EQ(TryLock(r, "owner-b", 30).value_or(false), true);
  EXPECT_EQ(Name(Unlock(r, "owner-b")), "SUCCESS");
}

TEST_P(LockConformanceTest, HeldLockRefusesOtherOwnersAndItsOwner) {
  std::string r = Resource("contended");
  ASSERT_EQ(TryLock(r, "owner-a", 30).value_or(false), true);
  absl::StatusOr<bool> other = TryLock(r, "owner-b", 30);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(*other) << "a held lock was granted to another owner";
  // Dapr's locks are not re-entrant: the owner's second TryLock fails too.
  absl::StatusOr<bool> again = TryLock(r, "owner-a", 30);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(*again);
}

TEST_P(LockConformanceTest, UnlockByAnotherOwnerLeavesTheLockHeld) {
  std::string r = Resource("not-yours");
  ASSERT_EQ(TryLock(r, "owner-a", 30).value_or(false), true);
  EXPECT_EQ(Name(Unlock(r, "owner-b")), "LOCK_BELONGS_TO_OTHERS");
  // Still owner-a's: owner-b cannot take it, owner-a can release it.
  EXPECT_EQ(TryLock(r, "owner-b", 30).value_or(true), false);
  EXPECT_EQ(Name(Unlock(r, "owner-a")), "SUCCESS");
  EXPECT_EQ(TryLock(r, "owner-b", 30).value_or(false), true);
}

TEST_P(LockConformanceTest, UnlockOfAMissingLock) {
  EXPECT_EQ(Name(Unlock(Resource("never-locked"), "owner-a")), "LOCK_DOES_NOT_EXIST");
  std::string r = Resource("twice");
  ASSERT_EQ(TryLock(r, "owner-a", 30).value_or(false), true);
  EXPECT_EQ(Name(Unlock(r, "owner-a")), "SUCCESS");
  EXPECT_EQ(Name(Unlock(r, "owner-a")), "LOCK_DOES_NOT_EXIST");
}

TEST_P(LockConformanceTest, ResourcesAreIndependent) {
  ASSERT_EQ(TryLock(Resource("r1"), "owner-a", 30).value_or(false), true);
  EXPECT_EQ(TryLock(Resource("r2"), "owner-b", 30).value_or(false), true);
  EXPECT_EQ(Name(Unlock(Resource("r2"), "owner-a")), "LOCK_BELONGS_TO_OTHERS");
}

TEST_P(LockConformanceTest, ExpiryLetsAnotherOwnerIn) {
  std::string r = Resource("expiring");
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(TryLock(r, "owner-a", 1).value_or(false), true);
  bool taken = false;
  auto deadline = start + std::chrono::seconds(5);
  while (!taken && std::chrono::steady_clock::now() < deadline) {
    absl::StatusOr<bool> b = TryLock(r, "owner-b", 30);
    ASSERT_TRUE(b.ok()) << b.status();
    taken = *b;
    if (!taken) {
      // Not before the expiry: a lock that vanished early would not protect anything.
      EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ASSERT_TRUE(taken) << "the 1 s lock was still held after 5 s";
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900))
      << "the lock expired before its expiry";
  // The old owner lost it: its unlock does not release owner-b's lock.
  EXPECT_EQ(Name(Unlock(r, "owner-a")), "LOCK_BELONGS_TO_OTHERS");
  EXPECT_EQ(Name(Unlock(r, "owner-b")), "SUCCESS");
}

// Many owners race for one resource through several stores (as several sidecars would): exactly
// one wins.
TEST_P(LockConformanceTest, ExactlyOneOfManyConcurrentOwnersWins) {
  std::string r = Resource("race");
  std::vector<std::unique_ptr<cl::Store>> stores;
  for (int i = 0; i < 3; ++i) stores.push_back(NewStore());
  constexpr int kOwners = 24;
  struct Shared {
    absl::Mutex mu;
    int answered ABSL_GUARDED_BY(mu) = 0;
    int won ABSL_GUARDED_BY(mu) = 0;
    std::vector<std::string> errors ABSL_GUARDED_BY(mu);
  };
  auto shared = std::make_shared<Shared>();
  for (int i = 0; i < kOwners; ++i) {
    cl::Store* s = i % 4 == 3 ? store_.get() : stores[i % 4].get();
    s->TryLock({.resource_id = r, .lock_owner = StrCat("owner-", i), .expiry_in_seconds = 30},
               [shared](absl::StatusOr<cl::TryLockResponse> res) {
                 absl::MutexLock lock(&shared->mu);
                 ++shared->answered;
                 if (!res.ok()) shared->errors.push_back(res.status().ToString());
                 if (res.ok() && res->success) ++shared->won;
               });
  }
  absl::MutexLock lock(&shared->mu);
  auto all = [&]() ABSL_SHARED_LOCKS_REQUIRED(shared->mu) { return shared->answered == kOwners; };
  ASSERT_TRUE(shared->mu.AwaitWithTimeout(absl::Condition(&all),
                                          absl::FromChrono(GetParam().call_timeout)));
  EXPECT_TRUE(shared->errors.empty()) << shared->errors.front();
  EXPECT_EQ(shared->won, 1);
}

}  // namespace
}  // namespace remora::conformance::lock
