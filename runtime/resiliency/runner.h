#pragma once

// Applies one target's resiliency policies (remora/runtime/resiliency.h: TargetPolicy) to an
// asynchronous operation: a timeout per attempt, retries per the retry policy, and a circuit
// breaker shared by every call to the target. Used by service invocation for app targets.
//
//   AppPolicies policies(io, resources.resiliencies);       // one per runtime
//   std::shared_ptr<PolicyRunner> runner = policies.ForApp("appB");
//   runner->Run<InvokeResponse>(
//       [&](Callback<InvokeResponse> attempt_done) { channel->Invoke(request, attempt_done); },
//       [](const absl::StatusOr<InvokeResponse>& r) {
//         if (!r.ok()) return Outcome::kUnreachable;           // transport failure
//         return r->http_status < 400 ? Outcome::kSuccess : Outcome::kFailure;
//       },
//       std::move(done));
//
// Order per attempt, as Dapr's policy runner: the breaker admits the attempt (open: fail fast with
// UNAVAILABLE "circuit breaker is open", half-open beyond maxRequests: UNAVAILABLE "too many
// requests"; neither is retried), the timeout bounds it (DEADLINE_EXCEEDED "timeout after ..."; the
// late answer is dropped), the classifier judges it, the breaker counts it, and a failure is
// retried after the policy's delay until the policy is exhausted. `done` gets the last attempt's
// own result (an app's 500 stays a response) or the runner's error (timeout, breaker).
//
// Thread-safety: PolicyRunner, CircuitBreaker and AppPolicies are safe to use from any thread.
// The operation's callback may run on any thread; timers and retries run on the io_context given
// at construction, which must outlive every call. `done` runs on the io_context or inline in the
// operation's callback thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "remora/components/common/callback.h"
#include "remora/runtime/resiliency.h"

namespace boost::asio {
class io_context;
}

namespace remora::runtime::resiliency {

// How one attempt went, as the caller's classifier sees it.
enum class Outcome {
  kSuccess,
  kFailure,      // the target answered with an error: counts for the breaker, retried by a policy
  kUnreachable,  // the target could not be reached: also retried by Dapr's built-in retries
  kPermanent,    // counts for the breaker, never retried (e.g. a request the target rejects)
};

// Marks an error as "the target could not be reached" (a callee sidecar that is down, gRPC
// UNAVAILABLE/UNAUTHENTICATED between sidecars), so that a classifier can tell it from other
// errors after it was wrapped into a Dapr error (the mark is a status payload and survives
// errors::Make-style rewrapping only when copied: mark the final status).
void MarkUnreachable(absl::Status& status);
bool IsUnreachable(const absl::Status& status);

// gobreaker's state machine with Dapr's settings (CircuitBreakerPolicy).
//   closed: every request goes through; counts reset every `interval` (0: never); a failure that
//     makes `trip` true opens it.
//   open: every request fails fast until `timeout` has passed, then half-open.
//   half-open: at most `max_requests` requests go through; as many consecutive successes close it,
//     one failure opens it again.
class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };
  struct Counts {
    int64_t requests = 0;
    int64_t total_successes = 0;
    int64_t total_failures = 0;
    int64_t consecutive_successes = 0;
    int64_t consecutive_failures = 0;
  };
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `clock` is for tests; the default is std::chrono::steady_clock::now.
  explicit CircuitBreaker(CircuitBreakerPolicy policy, Clock clock = nullptr);

  // Admits one request. The ticket goes back to Record; a result recorded under an older
  // generation (the state changed meanwhile) is ignored, as gobreaker does.
  // Errors: UNAVAILABLE "circuit breaker is open" / "circuit breaker is half-open: too many
  // requests".
  absl::StatusOr<uint64_t> Allow();
  void Record(uint64_t ticket, bool success);

  State state();
  Counts counts();
  const CircuitBreakerPolicy& policy() const { return policy_; }

 private:
  // Moves open -> half-open and clears expired closed-state intervals. Needs mu_.
  void Refresh(std::chrono::steady_clock::time_point now);
  void SetState(State state, std::chrono::steady_clock::time_point now);
  bool Tripped() const;

  const CircuitBreakerPolicy policy_;
  const Clock clock_;
  std::mutex mu_;
  State state_ = State::kClosed;
  uint64_t generation_ = 0;
  Counts counts_;
  std::chrono::steady_clock::time_point expiry_{};  // open: until; closed: interval end (or none)
};

namespace internal {
// The type-erased core of PolicyRunner::Run. `attempt(n, finish)` starts attempt n (0-based) and
// calls `finish(outcome)` once. `done` gets OK when the last attempt's own result stands, else the
// runner's error.
using FinishAttempt = absl::AnyInvocable<void(Outcome) &&>;
using Attempt = absl::AnyInvocable<void(int, FinishAttempt)>;
void RunAttempts(boost::asio::io_context& io, std::shared_ptr<const TargetPolicy> policy,
                 std::shared_ptr<CircuitBreaker> breaker, Attempt attempt, DoneCallback done);
}  // namespace internal

class PolicyRunner {
 public:
  template <typename T>
  using Operation = absl::AnyInvocable<void(Callback<T>)>;
  // Must be safe to call from any thread (a timed-out attempt's answer may race the next one).
  template <typename T>
  using Classifier = std::function<Outcome(const absl::StatusOr<T>&)>;

  // `breaker` is null when the target has no circuit breaker.
  PolicyRunner(boost::asio::io_context& io, TargetPolicy policy,
               std::shared_ptr<CircuitBreaker> breaker);

  // Runs `op` under the policies. `classify` defaults to: OK -> kSuccess, error -> kUnreachable.
  template <typename T>
  void Run(Operation<T> op, Classifier<T> classify, Callback<T> done);
  template <typename T>
  void Run(Operation<T> op, Callback<T> done) {
    Run<T>(std::move(op), nullptr, std::move(done));
  }

  const TargetPolicy& policy() const { return *policy_; }
  CircuitBreaker* breaker() const { return breaker_.get(); }

 private:
  boost::asio::io_context& io_;
  const std::shared_ptr<const TargetPolicy> policy_;  // shared with calls in flight
  const std::shared_ptr<CircuitBreaker> breaker_;
};

// The runners for app targets of one runtime: one PolicyRunner (and so one circuit breaker) per
// app id, created on first use from AppPolicy(specs, app_id). At most `max_cached` app ids are
// kept, so callers naming endless app ids cannot grow memory; past that an app id gets a fresh
// runner per call (its timeout and retries apply, a circuit breaker cannot trip).
class AppPolicies {
 public:
  static constexpr size_t kDefaultMaxCached = 4096;
  AppPolicies(boost::asio::io_context& io, std::vector<ResiliencySpec> specs,
              size_t max_cached = kDefaultMaxCached);
  std::shared_ptr<PolicyRunner> ForApp(std::string_view app_id);

 private:
  boost::asio::io_context& io_;
  const std::vector<ResiliencySpec> specs_;
  const size_t max_cached_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<PolicyRunner>, std::less<>> runners_;
};

template <typename T>
void PolicyRunner::Run(Operation<T> op, Classifier<T> classify, Callback<T> done) {
  // Holds the operation and the current attempt's result; an answer of a timed-out attempt finds
  // `current` moved on and is dropped.
  struct Shared {
    std::mutex mu;
    int current = -1;
    std::optional<absl::StatusOr<T>> last;
    Operation<T> op;
    Classifier<T> classify;
  };
  auto shared = std::make_shared<Shared>();
  shared->op = std::move(op);
  shared->classify = std::move(classify);
  internal::RunAttempts(
      io_, policy_, breaker_,
      [shared](int attempt, internal::FinishAttempt finish) {
        {
          std::lock_guard lock(shared->mu);
          shared->current = attempt;
          shared->last.reset();
        }
        shared->op([shared, attempt, finish = std::move(finish)](absl::StatusOr<T> result) mutable {
          Outcome outcome = shared->classify
                                ? shared->classify(result)
                                : (result.ok() ? Outcome::kSuccess : Outcome::kUnreachable);
          {
            std::lock_guard lock(shared->mu);
            if (shared->current == attempt) shared->last = std::move(result);
          }
          std::move(finish)(outcome);
        });
      },
      [shared, done = std::move(done)](absl::Status status) mutable {
        std::optional<absl::StatusOr<T>> last;
        {
          std::lock_guard lock(shared->mu);
          last = std::move(shared->last);
          shared->current = -2;
        }
        if (!status.ok() || !last.has_value()) {
          if (status.ok()) status = absl::InternalError("resiliency runner: no result");
          std::move(done)(std::move(status));
          return;
        }
        std::move(done)(std::move(*last));
      });
}

}  // namespace remora::runtime::resiliency
