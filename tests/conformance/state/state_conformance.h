#pragma once

// The state store conformance suite: one parameterised GoogleTest suite that every `state.*`
// component passes against its real backend (ARCHITECTURE §4, STYLE conventions 5).
//
// An implementation joins by instantiating the suite with a harness:
//
//   INSTANTIATE_TEST_SUITE_P(InMemory, StateConformanceTest,
//                            ::testing::Values(MyHarness()), StateHarnessName());
//
// The harness names the implementation, creates a fresh store per test through the component's
// factory (the same call the runtime makes), and declares the optional capabilities it supports.
// Declared capabilities must pass; an undeclared one must not appear in Features(). Where Dapr's
// own stores differ on a detail (Redis ignores an etag under last-write, the in-memory store
// checks it), the harness says which behaviour the store has and the suite checks that one.
//
// Stores may complete callbacks inline or on another thread (Redis completes on its io_context
// thread); every call goes through AwaitCall, which blocks with a timeout and records that the
// callback ran exactly once. Keys carry a prefix unique to the run and the test, so a shared
// backend needs no cleanup between tests. Waits poll against a deadline; nothing sleeps blindly.

#include <chrono>
#include <functional>
#include <map>
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
#include "remora/components/state/store.h"

namespace remora::conformance::state {

namespace cs = ::remora::components::state;

// Optional behaviour beyond get/set/delete/bulk, which every store must have.
struct StateCapabilities {
  bool etag = false;          // ETAG: Get returns an etag that changes on every write; Set and
                              // Delete check a given etag (a stale one is ETagMismatchError)
  bool first_write = false;   // first-write concurrency: creating twice without an etag fails
  bool ttl = false;           // TTL: ttlInSeconds expires keys; Get reports ttlExpireTime
  bool transactions = false;  // TRANSACTIONAL: AsTransactional() and Multi
  bool atomic_transactions = false;  // one failing etag in Multi leaves nothing applied
  bool delete_with_prefix = false;   // DELETE_WITH_PREFIX: AsDeleteWithPrefix()
  bool keys_like = false;            // KEYS_LIKE: AsKeysLike()
  bool query = false;                // QUERY_API (no query tests yet: only the Features() check)

  // Per-store etag details, each as Dapr's component behaves.
  bool etag_on_missing_key_fails = false;  // an etag for a missing key is ETagMismatch (in-memory);
                                           // Redis creates the key
  bool last_write_checks_etag = false;     // last-write still checks a given etag (in-memory);
                                           // Redis ignores it
  bool first_write_conflict_is_etag_error = false;  // the first-write conflict is ETagMismatch
                                                    // (in-memory); Redis reports a plain error
  // An etag the store rejects as malformed with ETagInvalidError on Set (Redis: a non-number).
  // Unset when every string is a well-formed etag (in-memory). On Delete either etag error is
  // accepted: Dapr's Redis reports every failed delete as a mismatch.
  std::optional<std::string> invalid_etag;
};

using StateFactory =
    std::function<absl::StatusOr<std::unique_ptr<cs::Store>>(const components::ComponentContext&)>;

struct StateStoreHarness {
  std::string name;  // instantiation-unique, letters/digits/underscore (used in test names)
  std::string type;  // spec.type, e.g. "state.in-memory"
  StateFactory factory;
  std::map<std::string, std::string> metadata;  // spec.metadata for every store
  // Called before each store is created, e.g. to start a server once and point the metadata at
  // it, or to hand over an io_context the harness runs. An error fails the test.
  std::function<absl::Status(components::ComponentContext&)> prepare;
  StateCapabilities capabilities;
  std::chrono::milliseconds call_timeout = std::chrono::seconds(5);
};

// gtest prints a parameter of a failed test with this, instead of a byte dump.
inline void PrintTo(const StateStoreHarness& harness, std::ostream* os) { *os << harness.name; }

// For INSTANTIATE_TEST_SUITE_P's name generator.
struct StateHarnessName {
  std::string operator()(const ::testing::TestParamInfo<StateStoreHarness>& info) const {
    return info.param.name;
  }
};

// How many times each callback handed to a store ran; checked in TearDown (exactly once each).
class CallLog {
 public:
  struct Entry {
    absl::Mutex mu;
    int calls ABSL_GUARDED_BY(mu) = 0;
    std::string what;
  };
  std::shared_ptr<Entry> Add(std::string what);
  // Failures for every callback not invoked exactly once.
  std::vector<std::string> Problems() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

// Starts an asynchronous call and blocks until its callback ran or `timeout` passed
// (DeadlineExceeded). `R` is absl::Status or absl::StatusOr<T>; `start` receives the one-shot
// callback to hand to the store. The callback may run inline or on any thread, and may run after
// a timeout without touching freed memory.
template <typename R>
R AwaitCall(absl::AnyInvocable<void(absl::AnyInvocable<void(R) &&>)> start,
            std::chrono::milliseconds timeout, CallLog* log = nullptr, std::string what = "call") {
  struct Slot {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    std::optional<R> result ABSL_GUARDED_BY(mu);
  };
  auto slot = std::make_shared<Slot>();
  std::shared_ptr<CallLog::Entry> entry = log ? log->Add(std::move(what)) : nullptr;
  start([slot, entry](R result) {
    if (entry) {
      absl::MutexLock lock(&entry->mu);
      ++entry->calls;
    }
    absl::MutexLock lock(&slot->mu);
    if (slot->done) return;
    slot->result.emplace(std::move(result));
    slot->done = true;
  });
  absl::MutexLock lock(&slot->mu);
  if (!slot->mu.AwaitWithTimeout(absl::Condition(&slot->done), absl::FromChrono(timeout))) {
    return R(absl::DeadlineExceededError("the store did not complete the call in time"));
  }
  return std::move(*slot->result);
}

// Options of one Set or Delete in the suite.
struct WriteOptions {
  std::optional<std::string> etag;
  cs::Concurrency concurrency = cs::Concurrency::kUnspecified;
  cs::RequestMetadata metadata;
};
WriteOptions WithETag(std::optional<std::string> etag,
                      cs::Concurrency concurrency = cs::Concurrency::kUnspecified);
WriteOptions WithConcurrency(cs::Concurrency concurrency);
WriteOptions WithMetadata(cs::RequestMetadata metadata);

class StateConformanceTest : public ::testing::TestWithParam<StateStoreHarness> {
 protected:
  void SetUp() override;
  void TearDown() override;

  const StateCapabilities& caps() const { return GetParam().capabilities; }
  // `name` under this run's and this test's unique prefix.
  std::string Key(std::string_view name) const;

  absl::StatusOr<cs::GetResponse> Get(const std::string& key);
  absl::Status Set(const std::string& key, std::string value, WriteOptions options = {});
  absl::Status Delete(const std::string& key, WriteOptions options = {});
  absl::StatusOr<std::vector<cs::BulkGetItem>> BulkGet(const std::vector<std::string>& keys);
  absl::Status BulkSet(std::vector<cs::SetRequest> requests);
  absl::Status BulkDelete(std::vector<cs::DeleteRequest> requests);
  absl::Status Multi(cs::TransactionRequest request);
  // The current etag of an existing key (fails the test when there is none).
  std::string ETagOf(const std::string& key);
  // Asserts that `key` holds `value` / does not exist.
  void ExpectValue(const std::string& key, std::string_view value);
  void ExpectMissing(const std::string& key);

  std::unique_ptr<cs::Store> store_;
  CallLog calls_;
  std::string prefix_;
};

}  // namespace remora::conformance::state
