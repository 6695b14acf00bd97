#pragma once

// The distributed lock building block (contract §2.7): protocol-free. HTTP and gRPC call
// TryLock/Unlock; validation, store lookup, key scoping and the mapping of component errors to
// Dapr's codes happen here, once, in Dapr's order:
//   no lock stores             ERR_LOCK_STORE_NOT_CONFIGURED  500 / FAILED_PRECONDITION
//   empty resourceId/lockOwner ERR_MALFORMED_REQUEST          400 / INVALID_ARGUMENT
//   (TryLock) expiry <= 0      ERR_MALFORMED_REQUEST          400 / INVALID_ARGUMENT
//   unknown store              ERR_LOCK_STORE_NOT_FOUND       400 / INVALID_ARGUMENT
//   id containing "||"         ERR_TRY_LOCK / ERR_UNLOCK      500 / INTERNAL
//   component failure          ERR_TRY_LOCK / ERR_UNLOCK      500 / INTERNAL
// A held lock (TryLock success=false) and the unlock refusals (LOCK_DOES_NOT_EXIST,
// LOCK_BELONGS_TO_OTHERS) are answers, not errors.
//
// Keys: the resource id reaches the component as `lock||<prefix>||<resourceId>`, the prefix chosen
// by the component's `keyPrefix` metadata as daprd chooses it: `appid` (the default; no prefix part
// when the app id is empty), `name` (the component's name), `none` (`lock||<resourceId>`), or any
// other string used as it is. A `keyPrefix` containing "||" is refused when the store is added.
//
// Threading: stores are added before the APIs serve; afterwards every method is thread-safe.
// Callbacks run exactly once, inline (validation) or on the component's thread.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "remora/components/lock/store.h"

namespace remora::runtime {

namespace lock = components::lock;

class LockBlock {
 public:
  struct StoreInfo {
    std::string name;
    std::string type;
    std::string version;
    std::vector<std::string> capabilities;
  };

  explicit LockBlock(std::string app_id) : app_id_(std::move(app_id)) {}

  // `key_prefix` is the component's keyPrefix metadata ("" for the default). INVALID_ARGUMENT
  // when it contains "||".
  absl::Status AddStore(std::string name, std::string type, std::string version,
                        std::string_view key_prefix, std::unique_ptr<lock::Store> store);

  void TryLock(std::string_view store, lock::TryLockRequest request,
               Callback<lock::TryLockResponse> done);
  void Unlock(std::string_view store, lock::UnlockRequest request,
              Callback<lock::UnlockStatus> done);

  std::vector<StoreInfo> Stores() const;
  // First unhealthy store's status (naming it), for /v1.0/healthz/outbound.
  absl::Status Health() const;

 private:
  struct Entry {
    StoreInfo info;
    std::string prefix;  // lower-cased keyword or the custom prefix as given
    std::unique_ptr<lock::Store> store;
  };
  absl::StatusOr<const Entry*> Find(std::string_view store) const;
  // `lock||<prefix>||<id>`; the caller has checked the id for "||".
  std::string ScopedKey(const Entry& entry, std::string_view resource_id) const;

  std::string app_id_;
  std::map<std::string, Entry, std::less<>> stores_;
};

}  // namespace remora::runtime
