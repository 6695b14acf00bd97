#include "runtime/resiliency/runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "remora/runtime/asio.h"

namespace remora::runtime::resiliency {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// An io_context running on its own thread for the runner's timers.
class RunnerTest : public ::testing::Test {
 protected:
  RunnerTest() : work_(boost::asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~RunnerTest() override {
    work_.reset();
    io_.stop();
    thread_.join();
  }

  // Runs `op` through a runner for `policy` and waits (at most 10 s) for the result.
  absl::StatusOr<int> RunAndWait(PolicyRunner& runner, PolicyRunner::Operation<int> op,
                                 PolicyRunner::Classifier<int> classify = nullptr) {
    std::promise<absl::StatusOr<int>> promise;
    auto future = promise.get_future();
    runner.Run<int>(std::move(op), std::move(classify),
                    [&promise](absl::StatusOr<int> r) { promise.set_value(std::move(r)); });
    if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      ADD_FAILURE() << "runner did not finish";
      return absl::InternalError("hung");
    }
    return future.get();
  }

  static TargetPolicy ConstantRetries(int max_retries, milliseconds every = milliseconds(5)) {
    TargetPolicy policy;
    policy.retry.kind = RetryPolicy::Kind::kConstant;
    policy.retry.duration = every;
    policy.retry.max_retries = max_retries;
    return policy;
  }

  static CircuitBreakerPolicy Breaker(std::string_view trip, milliseconds timeout,
                                      int max_requests = 1) {
    CircuitBreakerPolicy policy;
    policy.name = "cb";
    policy.timeout = timeout;
    policy.max_requests = max_requests;
    EXPECT_TRUE(ParseTripCondition(trip, &policy.trip).ok());
    return policy;
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

// An operation that fails its first `failures` calls, then answers `value`; counts calls.
PolicyRunner::Operation<int> FailingOp(std::atomic<int>* calls, int failures, int value = 7) {
  return [calls, failures, value](Callback<int> done) {
    int n = ++*calls;
    if (n <= failures) {
      std::move(done)(absl::UnavailableError("app down"));
    } else {
      std::move(done)(value);
    }
  };
}

TEST_F(RunnerTest, RetriesUpToMaxRetriesThenReturnsTheLastError) {
  PolicyRunner runner(io_, ConstantRetries(3), nullptr);
  std::atomic<int> calls = 0;
  absl::StatusOr<int> result = RunAndWait(runner, FailingOp(&calls, 100));
  EXPECT_EQ(calls.load(), 4);  // the call and 3 retries
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(result.status().message(), "app down");
}

TEST_F(RunnerTest, StopsRetryingOnSuccess) {
  PolicyRunner runner(io_, ConstantRetries(5), nullptr);
  std::atomic<int> calls = 0;
  absl::StatusOr<int> result = RunAndWait(runner, FailingOp(&calls, 2, 42));
  EXPECT_EQ(calls.load(), 3);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, 42);
}

TEST_F(RunnerTest, ConstantRetriesWaitTheirDuration) {
  PolicyRunner runner(io_, ConstantRetries(2, milliseconds(60)), nullptr);
  std::atomic<int> calls = 0;
  auto start = steady_clock::now();
  (void)RunAndWait(runner, FailingOp(&calls, 100));
  EXPECT_EQ(calls.load(), 3);
  EXPECT_GE(steady_clock::now() - start, milliseconds(120));
}

TEST_F(RunnerTest, ExponentialRetriesGrowBetweenAttempts) {
  TargetPolicy policy;
  policy.retry.kind = RetryPolicy::Kind::kExponential;
  policy.retry.initial_interval = milliseconds(40);
  policy.retry.multiplier = 2;
  policy.retry.randomization = 0;
  policy.retry.max_retries = 2;
  PolicyRunner runner(io_, policy, nullptr);
  std::vector<steady_clock::time_point> at;
  std::mutex mu;
  auto result = RunAndWait(runner, [&](Callback<int> done) {
    {
      std::lock_guard lock(mu);
      at.push_back(steady_clock::now());
    }
    std::move(done)(absl::UnavailableError("no"));
  });
  ASSERT_EQ(at.size(), 3u);
  EXPECT_GE(at[1] - at[0], milliseconds(40));
  EXPECT_GE(at[2] - at[1], milliseconds(80));
}

TEST(RetryPolicyTest, ExponentialDelayStaysWithinItsJitterAndCap) {
  RetryPolicy policy;
  policy.kind = RetryPolicy::Kind::kExponential;
  policy.initial_interval = milliseconds(100);
  policy.multiplier = 2;
  policy.randomization = 0.5;
  policy.max_interval = milliseconds(1000);
  // Retry n waits initial * multiplier^n, capped, then ±50 %.
  EXPECT_EQ(policy.Delay(0, 0.0), milliseconds(50));
  EXPECT_EQ(policy.Delay(0, 0.5), milliseconds(100));
  EXPECT_LE(policy.Delay(0, 0.999), milliseconds(150));
  EXPECT_EQ(policy.Delay(2, 0.5), milliseconds(400));
  for (int retry = 0; retry < 40; ++retry) {
    for (double r : {0.0, 0.25, 0.5, 0.75, 0.999}) {
      milliseconds d = policy.Delay(retry, r);
      EXPECT_GE(d, milliseconds(0));
      EXPECT_LE(d, milliseconds(1500)) << "retry " << retry;
    }
  }
  EXPECT_EQ(policy.Delay(30, 0.5), milliseconds(1000));
  RetryPolicy constant;
  constant.duration = milliseconds(250);
  EXPECT_EQ(constant.Delay(7, 0.9), milliseconds(250));
}

TEST_F(RunnerTest, TimeoutFailsAnAttemptThatDoesNotAnswer) {
  TargetPolicy policy = ConstantRetries(0);
  policy.timeout = milliseconds(50);
  PolicyRunner runner(io_, policy, nullptr);
  std::mutex mu;
  std::vector<Callback<int>> held;  // never answered during the call
  auto start = steady_clock::now();
  absl::StatusOr<int> result = RunAndWait(runner, [&](Callback<int> done) {
    std::lock_guard lock(mu);
    held.push_back(std::move(done));
  });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(steady_clock::now() - start, milliseconds(50));
  // A late answer is dropped, not delivered twice.
  std::lock_guard lock(mu);
  for (auto& done : held) std::move(done)(1);
}

TEST_F(RunnerTest, TimedOutAttemptIsRetriedAndItsLateAnswerIgnored) {
  TargetPolicy policy = ConstantRetries(2);
  policy.timeout = milliseconds(40);
  PolicyRunner runner(io_, policy, nullptr);
  std::atomic<int> calls = 0;
  std::mutex mu;
  std::vector<Callback<int>> held;
  absl::StatusOr<int> result = RunAndWait(runner, [&](Callback<int> done) {
    if (++calls == 1) {
      std::lock_guard lock(mu);
      held.push_back(std::move(done));  // the first attempt hangs
      return;
    }
    {
      std::lock_guard lock(mu);
      for (auto& late : held) std::move(late)(-1);  // answers late, during attempt 2
      held.clear();
    }
    std::move(done)(2);
  });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, 2);
  EXPECT_EQ(calls.load(), 2);
}

TEST_F(RunnerTest, ClassifierDecidesWhatIsRetried) {
  PolicyRunner runner(io_, ConstantRetries(3), nullptr);
  std::atomic<int> calls = 0;
  // An answer classified as a failure is retried, and the last answer is returned as it is.
  auto result = RunAndWait(
      runner,
      [&](Callback<int> done) {
        ++calls;
        std::move(done)(500);
      },
      [](const absl::StatusOr<int>& r) {
        return *r >= 400 ? Outcome::kFailure : Outcome::kSuccess;
      });
  EXPECT_EQ(calls.load(), 4);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, 500);

  calls = 0;
  result = RunAndWait(
      runner,
      [&](Callback<int> done) {
        ++calls;
        std::move(done)(403);
      },
      [](const absl::StatusOr<int>&) { return Outcome::kPermanent; });
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(RunnerTest, BuiltInRetriesOnlyRetryUnreachableTargets) {
  TargetPolicy policy = AppPolicy({}, "someapp");
  ASSERT_TRUE(policy.builtin_retry);
  EXPECT_EQ(policy.retry.max_retries, 3);
  EXPECT_EQ(policy.retry.duration, milliseconds(1000));
  policy.retry.duration = milliseconds(5);  // keep the test fast
  PolicyRunner runner(io_, policy, nullptr);
  std::atomic<int> calls = 0;
  auto classify = [](const absl::StatusOr<int>& r) {
    return !r.ok() ? Outcome::kUnreachable : *r >= 400 ? Outcome::kFailure : Outcome::kSuccess;
  };
  auto answer_500 = [&](Callback<int> done) {
    ++calls;
    std::move(done)(500);
  };
  EXPECT_EQ(*RunAndWait(runner, answer_500, classify), 500);
  EXPECT_EQ(calls.load(), 1);  // the app answered: no built-in retry
  calls = 0;
  EXPECT_FALSE(RunAndWait(runner, FailingOp(&calls, 100), classify).ok());
  EXPECT_EQ(calls.load(), 4);  // unreachable: 3 retries
}

TEST_F(RunnerTest, BreakerOpensAfterConsecutiveFailuresAndFailsFast) {
  auto breaker =
      std::make_shared<CircuitBreaker>(Breaker("consecutiveFailures >= 3", milliseconds(60000)));
  PolicyRunner runner(io_, ConstantRetries(0), breaker);
  std::atomic<int> calls = 0;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(breaker->state(), CircuitBreaker::State::kClosed) << i;
    EXPECT_EQ(RunAndWait(runner, FailingOp(&calls, 100)).status().message(), "app down");
  }
  EXPECT_EQ(breaker->state(), CircuitBreaker::State::kOpen);
  absl::StatusOr<int> result = RunAndWait(runner, FailingOp(&calls, 0));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(result.status().message(), "circuit breaker is open");
  EXPECT_EQ(calls.load(), 3);  // the open breaker did not call the target
}

TEST_F(RunnerTest, SuccessResetsConsecutiveFailures) {
  auto breaker =
      std::make_shared<CircuitBreaker>(Breaker("consecutiveFailures > 2", milliseconds(60000)));
  PolicyRunner runner(io_, ConstantRetries(0), breaker);
  std::atomic<int> calls = 0;
  for (int round = 0; round < 3; ++round) {
    calls = 0;
    (void)RunAndWait(runner, FailingOp(&calls, 100));
    (void)RunAndWait(runner, FailingOp(&calls, 100));
    calls = 0;
    EXPECT_TRUE(RunAndWait(runner, FailingOp(&calls, 0)).ok());
  }
  EXPECT_EQ(breaker->state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(breaker->counts().total_failures, 6);
}

TEST_F(RunnerTest, RetriesStopWhenTheBreakerOpens) {
  auto breaker =
      std::make_shared<CircuitBreaker>(Breaker("consecutiveFailures >= 2", milliseconds(60000)));
  PolicyRunner runner(io_, ConstantRetries(10), breaker);
  std::atomic<int> calls = 0;
  absl::StatusOr<int> result = RunAndWait(runner, FailingOp(&calls, 100));
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(result.status().message(), "circuit breaker is open");
}

TEST_F(RunnerTest, BreakerHalfOpensAfterItsTimeoutThenClosesOnSuccess) {
  auto breaker =
      std::make_shared<CircuitBreaker>(Breaker("consecutiveFailures >= 1", milliseconds(100)));
  PolicyRunner runner(io_, ConstantRetries(0), breaker);
  std::atomic<int> calls = 0;
  (void)RunAndWait(runner, FailingOp(&calls, 100));
  ASSERT_EQ(breaker->state(), CircuitBreaker::State::kOpen);
  auto deadline = steady_clock::now() + std::chrono::seconds(5);
  while (breaker->state() == CircuitBreaker::State::kOpen && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(breaker->state(), CircuitBreaker::State::kHalfOpen);
  calls = 0;
  absl::StatusOr<int> result = RunAndWait(runner, FailingOp(&calls, 0, 9));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, 9);
  EXPECT_EQ(breaker->state(), CircuitBreaker::State::kClosed);
}

TEST_F(RunnerTest, BreakerReopensOnFailureWhileHalfOpen) {
  auto breaker =
      std::make_shared<CircuitBreaker>(Breaker("consecutiveFailures >= 1", milliseconds(100)));
  PolicyRunner runner(io_, ConstantRetries(0), breaker);
  std::atomic<int> calls = 0;
  (void)RunAndWait(runner, FailingOp(&calls, 100));
  auto deadline = steady_clock::now() + std::chrono::seconds(5);
  while (breaker->state() != CircuitBreaker::State::kHalfOpen && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(breaker->state(), CircuitBreaker::State::kHalfOpen);
  EXPECT_FALSE(RunAndWait(runner, FailingOp(&calls, 100)).ok());
  EXPECT_EQ(breaker->state(), CircuitBreaker::State::kOpen);
  int before = calls.load();
  EXPECT_EQ(RunAndWait(runner, FailingOp(&calls, 0)).status().message(), "circuit breaker is open");
  EXPECT_EQ(calls.load(), before);
}

// The state machine on a fake clock: half-open admits maxRequests, needs as many successes.
TEST(CircuitBreakerTest, HalfOpenAdmitsMaxRequestsAndClosesAfterAsManySuccesses) {
  auto now = std::make_shared<steady_clock::time_point>(steady_clock::time_point{} +
                                                        std::chrono::hours(1));
  CircuitBreakerPolicy policy;
  policy.max_requests = 2;
  policy.timeout = milliseconds(1000);
  ASSERT_TRUE(ParseTripCondition("consecutiveFailures > 0", &policy.trip).ok());
  CircuitBreaker breaker(policy, [now] { return *now; });
  auto ticket = breaker.Allow();
  ASSERT_TRUE(ticket.ok());
  breaker.Record(*ticket, false);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kOpen);
  *now += milliseconds(999);
  EXPECT_EQ(breaker.Allow().status().message(), "circuit breaker is open");
  *now += milliseconds(1);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kHalfOpen);
  auto a = breaker.Allow();
  auto b = breaker.Allow();
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(breaker.Allow().status().code(), absl::StatusCode::kUnavailable);
  breaker.Record(*a, true);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kHalfOpen);
  breaker.Record(*b, true);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kClosed);
}

TEST(CircuitBreakerTest, IntervalClearsClosedCountsAndStaleResultsAreIgnored) {
  auto now = std::make_shared<steady_clock::time_point>(steady_clock::time_point{} +
                                                        std::chrono::hours(1));
  CircuitBreakerPolicy policy;
  policy.interval = milliseconds(100);
  ASSERT_TRUE(ParseTripCondition("totalFailures >= 2", &policy.trip).ok());
  CircuitBreaker breaker(policy, [now] { return *now; });
  auto first = breaker.Allow();
  breaker.Record(*first, false);
  *now += milliseconds(150);  // a new interval: the first failure no longer counts
  auto other = breaker.Allow();
  auto second = breaker.Allow();
  breaker.Record(*second, false);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kClosed);
  breaker.Record(*other, false);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kOpen);
  // Opened: a result admitted before is from an older generation and changes nothing.
  auto counts = breaker.counts();
  breaker.Record(*first, true);
  EXPECT_EQ(breaker.counts().total_successes, counts.total_successes);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kOpen);
}

TEST(UnreachableMarkTest, SurvivesCopiesAndIsAbsentOtherwise) {
  absl::Status status = absl::InternalError("failed to invoke, id: b, err: connection refused");
  EXPECT_FALSE(IsUnreachable(status));
  MarkUnreachable(status);
  absl::Status copy = status;
  EXPECT_TRUE(IsUnreachable(copy));
  EXPECT_EQ(copy.message(), status.message());
  absl::Status ok = absl::OkStatus();
  MarkUnreachable(ok);
  EXPECT_TRUE(ok.ok());
}

TEST_F(RunnerTest, AppPoliciesShareOneBreakerPerApp) {
  AppPolicies policies(io_, {});
  EXPECT_EQ(policies.ForApp("a"), policies.ForApp("a"));
  EXPECT_NE(policies.ForApp("a"), policies.ForApp("b"));
  EXPECT_EQ(policies.ForApp("a")->breaker(), nullptr);  // no circuit breaker by default

  // Bounded: past the cache size an app id gets a runner of its own per call.
  AppPolicies bounded(io_, {}, /*max_cached=*/2);
  auto a = bounded.ForApp("a");
  auto b = bounded.ForApp("b");
  EXPECT_EQ(bounded.ForApp("a"), a);
  EXPECT_EQ(bounded.ForApp("b"), b);
  EXPECT_NE(bounded.ForApp("c"), bounded.ForApp("c"));
  EXPECT_TRUE(bounded.ForApp("c")->policy().builtin_retry);
}

}  // namespace
}  // namespace remora::runtime::resiliency
