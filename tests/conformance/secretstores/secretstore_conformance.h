#pragma once

// The secret store conformance suite: one parameterised GoogleTest suite that every
// `secretstores.*` component passes against its real backend (ARCHITECTURE §4, STYLE 5).
//
// An implementation joins by instantiating the suite with a harness:
//
//   INSTANTIATE_TEST_SUITE_P(LocalFile, SecretStoreConformanceTest,
//                            ::testing::Values(MyHarness()), SecretStoreHarnessName());
//
// The harness creates the store through the component's factory (the same call the runtime
// makes) after `seed` has put exactly the given secrets into a backend of this test's own (a fresh
// file, a fresh env prefix, a fresh Vault KV prefix), so bulk results hold nothing else. A
// single-valued store is seeded with single-valued secrets only ({name: {name: value}}).

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "remora/components/common/context.h"
#include "remora/components/secretstores/secretstore.h"

namespace remora::conformance::secretstores {

namespace ss = ::remora::components::secretstores;

using SecretStoreFactory = std::function<absl::StatusOr<std::unique_ptr<ss::SecretStore>>(
    const components::ComponentContext&)>;

struct SecretStoreHarness {
  std::string name;  // instantiation-unique, letters/digits/underscore
  std::string type;  // spec.type
  SecretStoreFactory factory;
  // Puts exactly `secrets` into a backend unique to the calling test (`test_id` is unique per
  // run and test) and answers the component metadata that points at it. May set
  // context.io_context.
  std::function<absl::StatusOr<std::map<std::string, std::string>>(
      const std::string& test_id, const ss::BulkSecretData& secrets,
      components::ComponentContext& context)>
      seed;
  bool multi_valued = false;            // MULTIPLE_KEY_VALUES_PER_SECRET
  bool missing_is_empty_value = false;  // a missing name is {name: ""} (env), not NOT_FOUND
  std::chrono::milliseconds call_timeout = std::chrono::seconds(5);
};

inline void PrintTo(const SecretStoreHarness& harness, std::ostream* os) { *os << harness.name; }

struct SecretStoreHarnessName {
  std::string operator()(const ::testing::TestParamInfo<SecretStoreHarness>& info) const {
    return info.param.name;
  }
};

// Runs an asynchronous call and blocks until its callback ran or `timeout` passed
// (DEADLINE_EXCEEDED). Counts callback invocations in `*calls` (checked by the suite: exactly
// one per call). Safe when the callback runs inline, on another thread, or after a timeout.
template <typename T>
absl::StatusOr<T> Await(std::function<void(Callback<T>)> start, std::chrono::milliseconds timeout,
                        std::shared_ptr<std::atomic<int>> calls = nullptr) {
  struct Slot {
    absl::Mutex mu;
    bool done = false;
    std::optional<absl::StatusOr<T>> result;
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

class SecretStoreConformanceTest : public ::testing::TestWithParam<SecretStoreHarness> {
 protected:
  void TearDown() override;

  // Seeds `secrets` and creates the store (fails the test on error).
  void CreateStore(const ss::BulkSecretData& secrets);
  absl::StatusOr<ss::SecretData> Get(const std::string& name, ss::RequestMetadata metadata = {});
  absl::StatusOr<ss::BulkSecretData> Bulk();
  // The seed every test starts from, shaped for the store (single- or multi-valued).
  ss::BulkSecretData StandardSecrets() const;

  std::unique_ptr<ss::SecretStore> store_;
  std::vector<std::shared_ptr<std::atomic<int>>> calls_;
};

}  // namespace remora::conformance::secretstores
