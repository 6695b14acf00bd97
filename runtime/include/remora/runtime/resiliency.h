#pragma once

// The Resiliency resource (contract §4.3: `dapr.io/v1alpha1`, `kind: Resiliency`), the part the
// runtime acts on so far: retry policies and the component targets that name them. Inbound
// retries drive pub/sub redelivery to the app (blocks/pubsub).
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Resiliency
//   metadata: { name: myresiliency }
//   spec:
//     policies:
//       retries:
//         important: { policy: constant, duration: 5s, maxRetries: 30 }
//         patient: { policy: exponential, maxInterval: 15s, maxRetries: -1 }
//     targets:
//       components:
//         pubsub: { inbound: { retry: important } }
//   scopes: [checkout]
//
// Timeouts, circuit breakers, app and actor targets, and `matching` are accepted and ignored, so
// Dapr resiliency files load unchanged. A target naming a retry policy that no loaded Resiliency
// defines is a load error naming the file.

#include <chrono>
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

struct ResiliencySpec {
  struct ComponentTarget {
    std::string inbound_retry;   // policy name, "" when unset
    std::string outbound_retry;  // policy name, "" when unset
  };
  std::string name;
  std::string namespace_;
  std::vector<std::string> scopes;  // empty: every app
  std::map<std::string, RetryPolicy> retries;
  std::map<std::string, ComponentTarget> components;
  std::string source;  // "file (document N)", for errors
};

// Parses one Resiliency document. `where` names it in errors ("file (document N): field ...").
absl::Status ParseResiliencyDocument(const YAML::Node& doc, std::string_view where,
                                     ResiliencySpec* out);

// Checks that every target names a retry policy some spec defines; the error names the file.
absl::Status ValidateResiliencies(const std::vector<ResiliencySpec>& specs);

// The inbound retry policy for component `name` of kind `kind` ("pubsub", "bindings"): the
// component target's inbound retry, else the first defined of Default<Kind>ComponentInbound-
// RetryPolicy, DefaultComponentInboundRetryPolicy, DefaultComponentRetryPolicy,
// DefaultRetryPolicy (Dapr's lookup order). nullopt when none applies.
std::optional<RetryPolicy> InboundRetryPolicy(const std::vector<ResiliencySpec>& specs,
                                              std::string_view name, std::string_view kind);

}  // namespace remora::runtime
