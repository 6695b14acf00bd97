#pragma once

// The state building block: protocol-free. HTTP and gRPC parse their requests into these calls and
// render the results; store lookup, key scoping (contract §2.2), validation and the mapping of
// component errors to Dapr's codes all happen here, once.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "remora/components/state/store.h"

namespace remora::runtime {

namespace state = components::state;

// How keys are scoped for one store (component metadata `keyPrefix`).
struct KeyPrefix {
  enum class Mode { kAppId, kName, kNamespace, kNone, kCustom };
  Mode mode = Mode::kAppId;
  std::string custom;
  // Parses the `keyPrefix` value (case-insensitive); empty means appid.
  static KeyPrefix Parse(std::string_view value);
};

class StateBlock {
 public:
  struct StoreInfo {
    std::string name;
    std::string type;
    std::string version;
    std::vector<std::string> capabilities;
  };

  StateBlock(std::string app_id, std::string namespace_)
      : app_id_(std::move(app_id)), namespace_(std::move(namespace_)) {}

  void AddStore(std::string name, std::string type, std::string version, KeyPrefix prefix,
                std::unique_ptr<state::Store> store);

  // `found=false` in the response when the key is missing.
  void Get(std::string_view store, state::GetRequest request, Callback<state::GetResponse> done);
  // Saves every item; an empty list is a no-op.
  void Save(std::string_view store, std::vector<state::SetRequest> items, DoneCallback done);
  void Delete(std::string_view store, state::DeleteRequest request, DoneCallback done);
  void BulkGet(std::string_view store, std::vector<std::string> keys,
               state::RequestMetadata metadata, Callback<std::vector<state::BulkGetItem>> done);
  void BulkDelete(std::string_view store, std::vector<state::DeleteRequest> items,
                  DoneCallback done);
  void Transaction(std::string_view store, state::TransactionRequest request, DoneCallback done);

  std::vector<StoreInfo> Stores() const;
  // First unhealthy store's status, for /v1.0/healthz/outbound.
  absl::Status Health() const;

 private:
  struct Entry {
    StoreInfo info;
    KeyPrefix prefix;
    std::unique_ptr<state::Store> store;
  };
  // Store lookup with Dapr's errors (not configured / not found).
  absl::StatusOr<Entry*> Find(std::string_view store);
  // `key` scoped for `entry`, or ERR_MALFORMED_REQUEST when it contains "||".
  absl::StatusOr<std::string> ScopeKey(const Entry& entry, std::string_view key) const;
  static std::string_view UnscopeKey(std::string_view key);

  std::string app_id_;
  std::string namespace_;
  std::map<std::string, Entry, std::less<>> stores_;
};

}  // namespace remora::runtime
