#pragma once

// The distributed lock contract (Dapr's lock building block, alpha). Every `lock.*` component
// implements Store; the runtime's lock building block (runtime/blocks/lock) is the only caller.
//
// Example component YAML:
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: lockstore }
//   spec:
//     type: lock.redis
//     version: v1
//     metadata:
//     - { name: redisHost, value: "localhost:6379" }
//     - { name: keyPrefix, value: appid }   # read by the runtime, not the component
//
// Semantics (Dapr's): a lock is a named resource held by one owner until it is unlocked by that
// owner or its expiry passes. TryLock never waits for a held lock: it answers success=false at
// once. Unlock answers a status rather than an error for the two expected refusals (no such lock,
// someone else's lock).
//
// Keys: `resource_id` arrives already scoped by the runtime (`lock||<appId>||<resourceId>` by
// default, contract §2.7), so a component locks exactly the id it is given. The runtime has
// already validated the request: a non-empty id and owner, and an expiry > 0.
//
// Threading: every method may be called concurrently from any thread. The callback is invoked
// exactly once, inline or later on any thread.
//
// Errors: a status error means the backend could not answer (unreachable, timeout, an error
// reply); the building block maps it to ERR_TRY_LOCK / ERR_UNLOCK.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "remora/components/common/callback.h"

namespace remora::components::lock {

struct TryLockRequest {
  std::string resource_id;        // already scoped by the runtime
  std::string lock_owner;         // who holds the lock; only the same owner may unlock it
  int32_t expiry_in_seconds = 0;  // > 0: the lock is released by itself after this long
};

struct TryLockResponse {
  bool success = false;  // true: the caller holds the lock now; false: someone else holds it
};

struct UnlockRequest {
  std::string resource_id;  // already scoped by the runtime
  std::string lock_owner;
};

// The values are the wire values of dapr.proto.runtime.v1.UnlockResponse.Status and of the HTTP
// answer's `status` field.
enum class UnlockStatus : int {
  kSuccess = 0,
  kLockDoesNotExist = 1,     // no such lock (never taken, unlocked, or expired)
  kLockBelongsToOthers = 2,  // held by another owner; left as it is
  kInternalError = 3,        // the backend failed; components report this as a status error
};

// "SUCCESS", "LOCK_DOES_NOT_EXIST", ... (the proto enum's names), for logs and test messages.
constexpr std::string_view UnlockStatusName(UnlockStatus status) {
  switch (status) {
    case UnlockStatus::kSuccess:
      return "SUCCESS";
    case UnlockStatus::kLockDoesNotExist:
      return "LOCK_DOES_NOT_EXIST";
    case UnlockStatus::kLockBelongsToOthers:
      return "LOCK_BELONGS_TO_OTHERS";
    case UnlockStatus::kInternalError:
      return "INTERNAL_ERROR";
  }
  return "UNKNOWN";
}

class Store {
 public:
  virtual ~Store() = default;

  // Takes the lock when nobody holds it (success=true) and sets its expiry; answers success=false,
  // changing nothing, when it is held (by anyone, the same owner included, as in Dapr).
  virtual void TryLock(TryLockRequest request, Callback<TryLockResponse> done) = 0;

  // Releases the lock when `lock_owner` holds it, atomically with the ownership check.
  virtual void Unlock(UnlockRequest request, Callback<UnlockStatus> done) = 0;

  // Capability strings for the metadata API; Dapr's lock stores report none.
  virtual std::vector<std::string> Features() const { return {}; }

  // Reachability of the backend for /v1.0/healthz/outbound. Must not block.
  virtual absl::Status Health() const { return absl::OkStatus(); }
};

}  // namespace remora::components::lock
