#include "resiliency/runner.h"

#include <atomic>

#include "absl/random/random.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/asio.h"

namespace remora::runtime::resiliency {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

int64_t CountOf(const CircuitBreaker::Counts& counts, TripCondition::Count which) {
  switch (which) {
    case TripCondition::Count::kConsecutiveFailures:
      return counts.consecutive_failures;
    case TripCondition::Count::kConsecutiveSuccesses:
      return counts.consecutive_successes;
    case TripCondition::Count::kRequests:
      return counts.requests;
    case TripCondition::Count::kTotalFailures:
      return counts.total_failures;
    case TripCondition::Count::kTotalSuccesses:
      return counts.total_successes;
  }
  return 0;
}

bool Compare(int64_t left, TripCondition::Op op, int64_t right) {
  switch (op) {
    case TripCondition::Op::kGt:
      return left > right;
    case TripCondition::Op::kGe:
      return left >= right;
    case TripCondition::Op::kLt:
      return left < right;
    case TripCondition::Op::kLe:
      return left <= right;
    case TripCondition::Op::kEq:
      return left == right;
    case TripCondition::Op::kNe:
      return left != right;
  }
  return false;
}

double Random01() {
  thread_local absl::BitGen gen;
  return absl::Uniform<double>(gen, 0.0, 1.0);
}

// One call through RunAttempts. Lives until `done` has run; the timers hold it.
struct Call : std::enable_shared_from_this<Call> {
  Call(boost::asio::io_context& io, std::shared_ptr<const TargetPolicy> policy_ptr,
       std::shared_ptr<CircuitBreaker> breaker, internal::Attempt attempt, DoneCallback done)
      : strand(boost::asio::make_strand(io)),
        keep_policy(std::move(policy_ptr)),
        policy(*keep_policy),
        breaker(std::move(breaker)),
        attempt(std::move(attempt)),
        done(std::move(done)),
        timer(strand) {}

  // The timer is only touched on the strand: answers arrive on any thread, and the io_context may
  // run on several.
  boost::asio::strand<boost::asio::io_context::executor_type> strand;
  std::shared_ptr<const TargetPolicy> keep_policy;
  const TargetPolicy& policy;
  std::shared_ptr<CircuitBreaker> breaker;
  internal::Attempt attempt;
  DoneCallback done;
  boost::asio::steady_timer timer;  // the attempt's timeout, then the retry delay

  std::mutex mu;
  int number = -1;      // the attempt in flight
  bool settled = true;  // the attempt in flight has finished or timed out
  int retries = 0;

  void Start() {
    uint64_t ticket = 0;
    if (breaker) {
      absl::StatusOr<uint64_t> admitted = breaker->Allow();
      if (!admitted.ok()) {
        // Dapr makes the breaker's refusal permanent: retrying into an open breaker is pointless.
        Finish(admitted.status());
        return;
      }
      ticket = *admitted;
    }
    int n;
    {
      std::lock_guard lock(mu);
      n = ++number;
      settled = false;
    }
    if (policy.timeout) {
      boost::asio::post(strand, [self = shared_from_this(), n, ticket] {
        {
          std::lock_guard lock(self->mu);
          if (n != self->number || self->settled) return;  // answered before we got here
        }
        self->timer.expires_after(*self->policy.timeout);
        self->timer.async_wait([self, n, ticket](boost::system::error_code ec) {
          if (ec) return;  // cancelled: the attempt answered in time
          self->Settle(n, ticket, Outcome::kUnreachable, /*timed_out=*/true);
        });
      });
    }
    attempt(n, [self = shared_from_this(), n, ticket](Outcome outcome) {
      self->Settle(n, ticket, outcome, /*timed_out=*/false);
    });
  }

  void Settle(int n, uint64_t ticket, Outcome outcome, bool timed_out) {
    {
      std::lock_guard lock(mu);
      if (n != number || settled) return;  // the other of answer and timeout came first
      settled = true;
    }
    if (!timed_out && policy.timeout) {
      // The cancel must run where the timer lives; the answer may arrive on any thread.
      boost::asio::post(strand, [self = shared_from_this()] { self->timer.cancel(); });
    }
    if (breaker) breaker->Record(ticket, outcome == Outcome::kSuccess);
    if (outcome == Outcome::kSuccess || outcome == Outcome::kPermanent || !Retriable(outcome) ||
        policy.retry.Exhausted(retries)) {
      Finish(timed_out ? Timeout() : absl::OkStatus());
      return;
    }
    milliseconds delay = policy.retry.Delay(retries, Random01());
    ++retries;
    // Retry from the io_context, never inline in the answer's callback.
    boost::asio::post(strand, [self = shared_from_this(), delay] {
      self->timer.expires_after(delay);
      self->timer.async_wait([self](boost::system::error_code) { self->Start(); });
    });
  }

  bool Retriable(Outcome outcome) const {
    if (policy.builtin_retry) return outcome == Outcome::kUnreachable;
    return true;
  }

  absl::Status Timeout() const {
    return MakeStatus(absl::StatusCode::kDeadlineExceeded,
                      StrCat("timeout after ", policy.timeout->count(), "ms"));
  }

  void Finish(absl::Status status) {
    DoneCallback callback = std::move(done);
    if (callback) std::move(callback)(std::move(status));
  }
};

}  // namespace

constexpr char kUnreachablePayload[] = "type.remora.dev/resiliency.unreachable";

void MarkUnreachable(absl::Status& status) {
  if (!status.ok()) status.SetPayload(kUnreachablePayload, absl::Cord("1"));
}

bool IsUnreachable(const absl::Status& status) {
  return status.GetPayload(kUnreachablePayload).has_value();
}

// --- CircuitBreaker ---

CircuitBreaker::CircuitBreaker(CircuitBreakerPolicy policy, Clock clock)
    : policy_(std::move(policy)), clock_(clock ? std::move(clock) : Clock(steady_clock::now)) {
  std::lock_guard lock(mu_);
  SetState(State::kClosed, clock_());
}

void CircuitBreaker::SetState(State state, steady_clock::time_point now) {
  state_ = state;
  ++generation_;
  counts_ = Counts{};
  switch (state) {
    case State::kClosed:
      expiry_ = policy_.interval.count() > 0 ? now + policy_.interval : steady_clock::time_point{};
      break;
    case State::kOpen:
      expiry_ = now + policy_.timeout;
      break;
    case State::kHalfOpen:
      expiry_ = steady_clock::time_point{};
      break;
  }
}

void CircuitBreaker::Refresh(steady_clock::time_point now) {
  if (state_ == State::kOpen && now >= expiry_) {
    SetState(State::kHalfOpen, now);
  } else if (state_ == State::kClosed && expiry_ != steady_clock::time_point{} && now >= expiry_) {
    // A new interval: gobreaker starts a new generation with cleared counts.
    SetState(State::kClosed, now);
  }
}

bool CircuitBreaker::Tripped() const {
  const TripCondition& trip = policy_.trip;
  bool any = false;
  bool all = true;
  for (const TripCondition::Comparison& c : trip.comparisons) {
    bool hit = Compare(CountOf(counts_, c.count), c.op, c.value);
    any = any || hit;
    all = all && hit;
  }
  return trip.any ? any : (all && !trip.comparisons.empty());
}

absl::StatusOr<uint64_t> CircuitBreaker::Allow() {
  std::lock_guard lock(mu_);
  Refresh(clock_());
  if (state_ == State::kOpen) {
    return MakeStatus(absl::StatusCode::kUnavailable, "circuit breaker is open");
  }
  if (state_ == State::kHalfOpen && counts_.requests >= policy_.max_requests) {
    return MakeStatus(absl::StatusCode::kUnavailable,
                      "circuit breaker is half-open: too many requests");
  }
  ++counts_.requests;
  return generation_;
}

void CircuitBreaker::Record(uint64_t ticket, bool success) {
  std::lock_guard lock(mu_);
  steady_clock::time_point now = clock_();
  Refresh(now);
  if (ticket != generation_) return;
  if (success) {
    ++counts_.total_successes;
    ++counts_.consecutive_successes;
    counts_.consecutive_failures = 0;
    if (state_ == State::kHalfOpen &&
        counts_.consecutive_successes >= std::max(1, policy_.max_requests)) {
      SetState(State::kClosed, now);
    }
    return;
  }
  ++counts_.total_failures;
  ++counts_.consecutive_failures;
  counts_.consecutive_successes = 0;
  if (state_ == State::kHalfOpen || (state_ == State::kClosed && Tripped())) {
    SetState(State::kOpen, now);
  }
}

CircuitBreaker::State CircuitBreaker::state() {
  std::lock_guard lock(mu_);
  Refresh(clock_());
  return state_;
}

CircuitBreaker::Counts CircuitBreaker::counts() {
  std::lock_guard lock(mu_);
  Refresh(clock_());
  return counts_;
}

// --- PolicyRunner ---

namespace internal {
void RunAttempts(boost::asio::io_context& io, std::shared_ptr<const TargetPolicy> policy,
                 std::shared_ptr<CircuitBreaker> breaker, Attempt attempt, DoneCallback done) {
  auto call =
      std::make_shared<Call>(io, policy, std::move(breaker), std::move(attempt), std::move(done));
  call->Start();
}
}  // namespace internal

PolicyRunner::PolicyRunner(boost::asio::io_context& io, TargetPolicy policy,
                           std::shared_ptr<CircuitBreaker> breaker)
    : io_(io),
      policy_(std::make_shared<const TargetPolicy>(std::move(policy))),
      breaker_(std::move(breaker)) {}

// --- AppPolicies ---

AppPolicies::AppPolicies(boost::asio::io_context& io, std::vector<ResiliencySpec> specs,
                         size_t max_cached)
    : io_(io), specs_(std::move(specs)), max_cached_(max_cached) {}

std::shared_ptr<PolicyRunner> AppPolicies::ForApp(std::string_view app_id) {
  std::lock_guard lock(mu_);
  auto it = runners_.find(app_id);
  if (it != runners_.end()) return it->second;
  TargetPolicy policy = AppPolicy(specs_, app_id);
  std::shared_ptr<CircuitBreaker> breaker;
  if (policy.circuit_breaker) breaker = std::make_shared<CircuitBreaker>(*policy.circuit_breaker);
  auto runner = std::make_shared<PolicyRunner>(io_, std::move(policy), std::move(breaker));
  if (runners_.size() < max_cached_) runners_.emplace(std::string(app_id), runner);
  return runner;
}

}  // namespace remora::runtime::resiliency
