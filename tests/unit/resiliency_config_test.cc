// Resiliency timeouts, circuit breakers and app targets as the resource loader reads them, and the
// policy lookup for service invocation (AppPolicy).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "remora/components/common/strings.h"
#include "remora/runtime/resiliency.h"
#include "remora/runtime/resources.h"

namespace remora::runtime {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr char kHead[] = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\n";

absl::StatusOr<Resources> Parse(const std::string& yaml) {
  Resources r;
  absl::Status status = ParseResourceDocuments(yaml, "res/resiliency.yaml", "appA", "", &r);
  if (!status.ok()) return status;
  if (status = ValidateResiliencies(r.resiliencies); !status.ok()) return status;
  return r;
}

std::string ErrorOf(const std::string& yaml) {
  auto r = Parse(yaml);
  EXPECT_FALSE(r.ok()) << yaml;
  return r.ok() ? "" : std::string(MessageOf(r.status()));
}

TEST(ResiliencyConfigTest, AppTargetsWithTimeoutRetryAndCircuitBreaker) {
  auto r = Parse(std::string(kHead) + R"(spec:
  policies:
    timeouts: { general: 5s, fast: 250ms }
    retries:
      important: { policy: constant, duration: 2s, maxRetries: 30 }
    circuitBreakers:
      simpleCB: { maxRequests: 2, interval: 8s, timeout: 30s, trip: consecutiveFailures >= 5 }
  targets:
    apps:
      appB: { timeout: general, retry: important, circuitBreaker: simpleCB, circuitBreakerCacheSize: 100 }
      appC: { timeout: fast }
)");
  ASSERT_TRUE(r.ok()) << r.status();
  const ResiliencySpec& spec = r->resiliencies.at(0);
  EXPECT_EQ(spec.timeouts.at("fast"), milliseconds(250));
  const CircuitBreakerPolicy& cb = spec.circuit_breakers.at("simpleCB");
  EXPECT_EQ(cb.max_requests, 2);
  EXPECT_EQ(cb.interval, milliseconds(8000));
  EXPECT_EQ(cb.timeout, milliseconds(30000));
  ASSERT_EQ(cb.trip.comparisons.size(), 1u);
  EXPECT_EQ(cb.trip.comparisons[0].count, TripCondition::Count::kConsecutiveFailures);
  EXPECT_EQ(cb.trip.comparisons[0].op, TripCondition::Op::kGe);
  EXPECT_EQ(cb.trip.comparisons[0].value, 5);

  TargetPolicy b = AppPolicy(r->resiliencies, "appB");
  EXPECT_EQ(b.timeout, milliseconds(5000));
  EXPECT_FALSE(b.builtin_retry);
  EXPECT_EQ(b.retry.name, "important");
  EXPECT_EQ(b.retry.max_retries, 30);
  ASSERT_TRUE(b.circuit_breaker.has_value());
  EXPECT_EQ(b.circuit_breaker->name, "simpleCB");

  // appC names only a timeout: Dapr's built-in retries, no breaker.
  TargetPolicy c = AppPolicy(r->resiliencies, "appC");
  EXPECT_EQ(c.timeout, milliseconds(250));
  EXPECT_TRUE(c.builtin_retry);
  EXPECT_FALSE(c.circuit_breaker.has_value());

  // An app no target names gets no timeout, no breaker and the built-in retries.
  TargetPolicy other = AppPolicy(r->resiliencies, "appZ");
  EXPECT_FALSE(other.timeout.has_value());
  EXPECT_TRUE(other.builtin_retry);
  EXPECT_EQ(other.retry.max_retries, 3);
  EXPECT_EQ(other.retry.duration, milliseconds(1000));
}

TEST(ResiliencyConfigTest, AppDefaultsWinOverGeneralDefaultsAndBuiltInOverride) {
  auto r = Parse(std::string(kHead) + R"(spec:
  policies:
    timeouts: { DefaultTimeoutPolicy: 9s, DefaultAppTimeoutPolicy: 3s }
    retries:
      DefaultRetryPolicy: { maxRetries: 1 }
      DaprBuiltInServiceRetries: { policy: constant, duration: 5s, maxRetries: 10 }
    circuitBreakers:
      DefaultCircuitBreakerPolicy: { trip: requests > 100 && totalFailures > 10 }
)");
  ASSERT_TRUE(r.ok()) << r.status();
  TargetPolicy p = AppPolicy(r->resiliencies, "anyapp");
  EXPECT_EQ(p.timeout, milliseconds(3000));
  EXPECT_FALSE(p.builtin_retry);
  EXPECT_EQ(p.retry.max_retries, 1);
  ASSERT_TRUE(p.circuit_breaker.has_value());
  EXPECT_EQ(p.circuit_breaker->trip.comparisons.size(), 2u);
  EXPECT_FALSE(p.circuit_breaker->trip.any);

  auto builtin = Parse(std::string(kHead) + R"(spec:
  policies:
    retries:
      DaprBuiltInServiceRetries: { policy: constant, duration: 5s, maxRetries: 10 }
)");
  ASSERT_TRUE(builtin.ok());
  TargetPolicy q = AppPolicy(builtin->resiliencies, "anyapp");
  EXPECT_TRUE(q.builtin_retry);
  EXPECT_EQ(q.retry.max_retries, 10);
  EXPECT_EQ(q.retry.duration, milliseconds(5000));
}

TEST(ResiliencyConfigTest, TripExpressions) {
  TripCondition trip;
  ASSERT_TRUE(ParseTripCondition("consecutiveFailures > 5", &trip).ok());
  EXPECT_EQ(trip.comparisons[0].op, TripCondition::Op::kGt);
  ASSERT_TRUE(ParseTripCondition("(requests>=10) || totalFailures == 3", &trip).ok());
  EXPECT_TRUE(trip.any);
  ASSERT_EQ(trip.comparisons.size(), 2u);
  EXPECT_EQ(trip.comparisons[0].count, TripCondition::Count::kRequests);
  EXPECT_EQ(trip.comparisons[1].op, TripCondition::Op::kEq);
  for (const char* bad : {"", "consecutiveFailures", "failures > 5", "consecutiveFailures > x",
                          "consecutiveFailures > 5 && requests > 1 || totalFailures > 2",
                          "consecutiveFailures > -1", "consecutiveFailures > 5 &&"}) {
    EXPECT_FALSE(ParseTripCondition(bad, &trip).ok()) << bad;
  }
}

TEST(ResiliencyConfigTest, LoadErrorsNameTheFileAndField) {
  const std::string head = kHead;
  std::string error =
      ErrorOf(head +
              "spec: { policies: { circuitBreakers: { cb: { trip: 'consecutiveFailures > 5 || "
              "size(x) > 1' } } } }\n");
  EXPECT_THAT(error, HasSubstr("res/resiliency.yaml (document 1)"));
  EXPECT_THAT(error, HasSubstr("spec.policies.circuitBreakers.cb.trip"));
  EXPECT_THAT(error, HasSubstr("not a supported trip expression"));
  EXPECT_THAT(ErrorOf(head + "spec: { policies: { timeouts: { t: soon } } }\n"),
              HasSubstr("spec.policies.timeouts.t"));
  EXPECT_THAT(ErrorOf(head + "spec: { policies: { circuitBreakers: { cb: { timeout: x } } } }\n"),
              HasSubstr("spec.policies.circuitBreakers.cb.timeout"));
  EXPECT_THAT(ErrorOf(head + "spec: { targets: { apps: { b: { timeout: nope } } } }\n"),
              HasSubstr("spec.targets.apps.b.timeout names timeout policy \"nope\""));
  EXPECT_THAT(ErrorOf(head + "spec: { targets: { apps: { b: { retry: nope } } } }\n"),
              HasSubstr("spec.targets.apps.b.retry names retry policy \"nope\""));
  EXPECT_THAT(ErrorOf(head + "spec: { targets: { apps: { b: { circuitBreaker: nope } } } }\n"),
              HasSubstr("spec.targets.apps.b.circuitBreaker names circuit breaker policy"));
}

}  // namespace
}  // namespace remora::runtime
