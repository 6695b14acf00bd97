#pragma once

// The lock conformance suite: what every `lock.*` component must do (components/include/remora/
// components/lock/store.h), parameterised over implementations, each against its real backend.
// An implementation's test file instantiates LockConformanceTest with a harness:
//
//   INSTANTIATE_TEST_SUITE_P(Redis, LockConformanceTest, ::testing::Values(RedisHarness()),
//                            LockHarnessName());
//
// Resource ids carry a prefix unique to the run and the test, so a shared backend needs no cleanup
// between tests. Waits (expiry) poll against a deadline; nothing sleeps blindly. Every callback
// handed to a store must run exactly once; the fixture checks that in TearDown.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "remora/components/common/context.h"
#include "remora/components/lock/store.h"

namespace remora::conformance::lock {

namespace cl = ::remora::components::lock;

using LockFactory =
    std::function<absl::StatusOr<std::unique_ptr<cl::Store>>(const components::ComponentContext&)>;

struct LockStoreHarness {
  std::string name;  // instantiation-unique, letters/digits/underscore (used in test names)
  std::string type;  // spec.type, e.g. "lock.redis"
  LockFactory factory;
  // Called before each store is created, e.g. to start a server once and point the metadata at
  // it, and to hand over an io_context. An error fails the test.
  std::function<absl::Status(components::ComponentContext&)> prepare;
  std::chrono::milliseconds call_timeout = std::chrono::seconds(5);
};

inline void PrintTo(const LockStoreHarness& harness, std::ostream* os) { *os << harness.name; }

struct LockHarnessName {
  std::string operator()(const ::testing::TestParamInfo<LockStoreHarness>& info) const {
    return info.param.name;
  }
};

// Starts an asynchronous call and blocks until its callback ran or `timeout` passed
// (DEADLINE_EXCEEDED). The callback may run inline or on any thread, even after a timeout.
// `calls` (if given) counts how often the callback ran.
template <typename T>
absl::StatusOr<T> Await(absl::AnyInvocable<void(Callback<T>)> start,
                        std::chrono::milliseconds timeout,
                        std::shared_ptr<std::atomic<int>> calls = nullptr) {
  struct Slot {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    std::optional<absl::StatusOr<T>> result ABSL_GUARDED_BY(mu);
  };
  auto slot = std::make_shared<Slot>();
  start([slot, calls](absl::StatusOr<T> result) {
    if (calls) calls->fetch_add(1);
    absl::MutexLock lock(&slot->mu);
    if (slot->done) return;
    slot->result.emplace(std::move(result));
    slot->done = true;
  });
  absl::MutexLock lock(&slot->mu);
  if (!slot->mu.AwaitWithTimeout(absl::Condition(&slot->done), absl::FromChrono(timeout))) {
    return absl::DeadlineExceededError("the store did not complete the call in time");
  }
  return std::move(*slot->result);
}

// A process-wide id, so resource ids of concurrent runs against one backend never collide.
const std::string& RunId();

class LockConformanceTest : public ::testing::TestWithParam<LockStoreHarness> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // A fresh store from the harness (several may share the backend).
  std::unique_ptr<cl::Store> NewStore();
  // A resource id unique to this run and test.
  std::string Resource(std::string_view name) const;

  absl::StatusOr<bool> TryLock(std::string resource, std::string owner, int32_t expiry_s,
                               cl::Store* store = nullptr);
  absl::StatusOr<cl::UnlockStatus> Unlock(std::string resource, std::string owner,
                                          cl::Store* store = nullptr);

  std::unique_ptr<cl::Store> store_;
  std::string prefix_;
  // Every callback handed to a store; each must have run exactly once by TearDown.
  std::vector<std::shared_ptr<std::atomic<int>>> calls_;
};

}  // namespace remora::conformance::lock
