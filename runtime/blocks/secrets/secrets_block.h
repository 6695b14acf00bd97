#pragma once

// The secrets building block: protocol-free. HTTP and gRPC call Get/BulkGet; store lookup, secret
// scopes (Configuration spec.secrets.scopes) and the mapping of component errors to Dapr's codes
// (contract §2.5) happen here, once:
//   no secret stores     ERR_SECRET_STORES_NOT_CONFIGURED  500 / FAILED_PRECONDITION
//   unknown store        ERR_SECRET_STORE_NOT_FOUND        401 / INVALID_ARGUMENT (Dapr's quirk)
//   denied by a scope    ERR_PERMISSION_DENIED             403 / PERMISSION_DENIED
//   component failure    ERR_SECRET_GET                    500 / INTERNAL (a missing secret too)
//
// The runtime also resolves `secretKeyRef`s of other components through Find() at start-up;
// scopes do not apply there (they limit the app, not the sidecar's own configuration).
//
// Threading: stores are added before the APIs serve; afterwards every method is thread-safe.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "remora/components/secretstores/secretstore.h"
#include "remora/runtime/config_resource.h"

namespace remora::runtime {

namespace secrets = components::secretstores;

class SecretsBlock {
 public:
  struct StoreInfo {
    std::string name;
    std::string type;
    std::string version;
    std::vector<std::string> capabilities;
  };

  explicit SecretsBlock(std::vector<SecretsScope> scopes = {});

  void AddStore(std::string name, std::string type, std::string version,
                std::unique_ptr<secrets::SecretStore> store);

  // The secret `key` of `store`, scopes applied.
  void Get(std::string_view store, std::string key, secrets::RequestMetadata metadata,
           Callback<secrets::SecretData> done);
  // Every secret of `store` the scopes allow (denied names are left out, not an error).
  void BulkGet(std::string_view store, secrets::RequestMetadata metadata,
               Callback<secrets::BulkSecretData> done);

  // The store itself, without scopes; null when there is none by that name.
  secrets::SecretStore* Find(std::string_view store) const;
  std::vector<StoreInfo> Stores() const;
  // First unhealthy store's status, for /v1.0/healthz/outbound.
  absl::Status Health() const;

 private:
  struct Entry {
    StoreInfo info;
    std::unique_ptr<secrets::SecretStore> store;
  };
  absl::StatusOr<const Entry*> Lookup(std::string_view store) const;
  bool Allowed(std::string_view store, std::string_view key) const;

  std::map<std::string, SecretsScope, std::less<>> scopes_;
  std::map<std::string, Entry, std::less<>> stores_;
};

}  // namespace remora::runtime
