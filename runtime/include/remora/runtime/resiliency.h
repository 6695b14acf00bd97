#pragma once

// The Resiliency resource (contract §4.3: `dapr.io/v1alpha1`, `kind: Resiliency`): timeout, retry
// and circuit-breaker policies, and the app and component targets that name them. Inbound
// component retries drive pub/sub redelivery to the app (blocks/pubsub); app targets drive service
// invocation through runtime/resiliency/runner.h.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Resiliency
//   metadata: { name: myresiliency }
//   spec:
//     policies:
//       timeouts: { general: 5s }
//       circuitBreakers:
//         simpleCB: { maxRequests: 1, timeout: 30s, trip: consecutiveFailures >= 5 }
//       retries:
//         important: { policy: constant, duration: 5s, maxRetries: 30 }
//         patient: { policy: exponential, maxInterval: 15s, maxRetries: -1 }
//     targets:
//       apps:
//         appB: { timeout: general, retry: important, circuitBreaker: simpleCB }
//       components:
//         pubsub: { inbound: { retry: important } }
//   scopes: [checkout]
//
// Actor targets, component timeouts/circuit breakers, retry `matching` (the caller classifies)
// and `circuitBreakerCacheSize` are accepted and ignored, so Dapr resiliency files load unchanged.
// A target naming a policy that no loaded Resiliency defines, or a circuit breaker `trip` outside
// the supported form (see TripCondition), is a load error naming the file.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace YAML {
class Node;
}

namespace remora::runtime {

// One retry policy. Defaults are Dapr's: constant every 5 s, no limit; exponential from 500 ms,
// ×1.5 per retry, ±50 % jitter, at most 60 s apart.
struct RetryPolicy {
  enum class Kind { kConstant, kExponential };
  std::string name;
  Kind kind = Kind::kConstant;
  std::chrono::milliseconds duration{5000};  // constant
  std::chrono::milliseconds initial_interval{500};
  std::chrono::milliseconds max_interval{60000};
  double multiplier = 1.5;
  double randomization = 0.5;
  int max_retries = -1;  // -1: retry forever

  // The wait before retry number `retry` (0 for the first retry). `random01` in [0, 1) draws the
  // jitter of exponential policies.
  std::chrono::milliseconds Delay(int retry, double random01) const;
  // True when `retries_done` retries have used the policy up.
  bool Exhausted(int retries_done) const { return max_retries >= 0 && retries_done >= max_retries; }
};

// A circuit breaker's `trip` expression. Dapr evaluates CEL over gobreaker's counts; we support
// the form every Dapr example uses: one or more comparisons `<count> <op> <integer>` joined all by
// `&&` or all by `||`, where count is consecutiveFailures, consecutiveSuccesses, requests,
// totalFailures or totalSuccesses and op is one of > >= < <= == !=.
struct TripCondition {
  enum class Count {
    kConsecutiveFailures,
    kConsecutiveSuccesses,
    kRequests,
    kTotalFailures,
    kTotalSuccesses
  };
  enum class Op { kGt, kGe, kLt, kLe, kEq, kNe };
  struct Comparison {
    Count count = Count::kConsecutiveFailures;
    Op op = Op::kGt;
    int64_t value = 5;
  };
  std::vector<Comparison> comparisons{Comparison{}};  // default: consecutiveFailures > 5
  bool any = false;                                   // true: joined by ||, false: by &&
  std::string text = "consecutiveFailures > 5";
};

// Parses a trip expression; INVALID_ARGUMENT naming what is unsupported.
absl::Status ParseTripCondition(std::string_view text, TripCondition* out);

// One circuit-breaker policy. Defaults are Dapr's.
struct CircuitBreakerPolicy {
  std::string name;
  int max_requests = 1;                      // requests let through while half-open
  std::chrono::milliseconds interval{0};     // closed state: counts reset every interval; 0 = never
  std::chrono::milliseconds timeout{60000};  // open -> half-open after this long
  TripCondition trip;
};

struct ResiliencySpec {
  struct ComponentTarget {
    std::string inbound_retry;   // policy name, "" when unset
    std::string outbound_retry;  // policy name, "" when unset
  };
  // `targets.apps.<appId>`: policy names, "" when unset.
  struct AppTarget {
    std::string timeout;
    std::string retry;
    std::string circuit_breaker;
  };
  std::string name;
  std::string namespace_;
  std::vector<std::string> scopes;  // empty: every app
  std::map<std::string, RetryPolicy> retries;
  std::map<std::string, std::chrono::milliseconds> timeouts;
  std::map<std::string, CircuitBreakerPolicy> circuit_breakers;
  std::map<std::string, ComponentTarget> components;
  std::map<std::string, AppTarget> apps;
  std::string source;  // "file (document N)", for errors
};

// Parses one Resiliency document. `where` names it in errors ("file (document N): field ...").
absl::Status ParseResiliencyDocument(const YAML::Node& doc, std::string_view where,
                                     ResiliencySpec* out);

// Checks that every target names a policy some spec defines; the error names the file.
absl::Status ValidateResiliencies(const std::vector<ResiliencySpec>& specs);

// The inbound retry policy for component `name` of kind `kind` ("pubsub", "bindings"): the
// component target's inbound retry, else the first defined of Default<Kind>ComponentInbound-
// RetryPolicy, DefaultComponentInboundRetryPolicy, DefaultComponentRetryPolicy,
// DefaultRetryPolicy (Dapr's lookup order). nullopt when none applies.
std::optional<RetryPolicy> InboundRetryPolicy(const std::vector<ResiliencySpec>& specs,
                                              std::string_view name, std::string_view kind);

// The policies for service invocation of app `app_id` (contract §4.3, §2.1), looked up the way
// Dapr does: each of timeout, retry and circuit breaker from `targets.apps.<app_id>`, else the
// first defined of DefaultApp{Timeout,Retry,CircuitBreaker}Policy, Default{...}Policy.
//
// When no retry policy applies, Dapr's built-in service retries stand: constant 1 s, 3 retries,
// and only for failures to reach the callee (gRPC UNAVAILABLE/UNAUTHENTICATED between sidecars),
// never for an answer of the app (`builtin_retry` true). A retry policy named
// DaprBuiltInServiceRetries replaces those numbers. No timeout and no circuit breaker apply by
// default.
struct TargetPolicy {
  std::optional<std::chrono::milliseconds> timeout;  // per attempt
  RetryPolicy retry;
  bool builtin_retry = false;  // retry only failures to reach the target (see above)
  std::optional<CircuitBreakerPolicy> circuit_breaker;
  std::string breaker_key;  // the breaker's identity: "app:<appId>/<policy name>"
};
TargetPolicy AppPolicy(const std::vector<ResiliencySpec>& specs, std::string_view app_id);

}  // namespace remora::runtime
