#pragma once

// The secret store contract. Every `secretstores.*` component implements SecretStore; the
// runtime's secrets building block (runtime/blocks/secrets) and the start-up resolution of
// `secretKeyRef` in other components' metadata are its only callers. Scopes (which secrets an app
// may read) are the building block's job, not the store's.
//
// Example component YAML (contract §5.9):
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: localsecrets }
//   spec:
//     type: secretstores.local.file
//     version: v1
//     metadata:
//     - { name: secretsFile, value: ./secrets.json }
//     - { name: nestedSeparator, value: ":" }
//
// and a component reading its password from it:
//
//   spec:
//     type: state.redis
//     metadata:
//     - name: redisPassword
//       secretKeyRef: { name: redis, key: password }
//   auth: { secretStore: localsecrets }
//
// A secret is a map of string keys to string values. A single-valued store (no
// MULTIPLE_KEY_VALUES_PER_SECRET feature) answers `{name: value}`.
//
// Errors: a secret that does not exist is SecretNotFoundError() below (status code NOT_FOUND), so
// callers can tell it from a backend failure; the building block still reports both as Dapr's
// ERR_SECRET_GET (contract §2.5) but the start-up resolution names the missing secret. Backend
// failures carry a message that names the store's backend (address, file) and what went wrong.
//
// Threading: every method may be called concurrently from any thread. The callback is invoked
// exactly once, inline (local stores) or later on any thread (Vault answers on its io_context).

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "remora/components/common/callback.h"

namespace remora::components::secretstores {

using RequestMetadata = std::map<std::string, std::string>;
// One secret: its key/value pairs.
using SecretData = std::map<std::string, std::string>;
// Every secret of a store, by secret name.
using BulkSecretData = std::map<std::string, SecretData>;

// The capability strings Dapr reports in the metadata API.
enum class Feature { kMultipleKeyValuesPerSecret };
const char* FeatureName(Feature feature);

class SecretStore {
 public:
  virtual ~SecretStore() = default;

  virtual std::vector<Feature> Features() const = 0;
  bool HasFeature(Feature feature) const;

  // The secret `name`. `metadata` is request metadata (`version_id` for Vault, ...); a store
  // ignores keys it does not know.
  virtual void GetSecret(std::string name, RequestMetadata metadata, Callback<SecretData> done) = 0;
  // Every secret the store holds (secrets that vanish while being listed are left out).
  virtual void BulkGetSecret(RequestMetadata metadata, Callback<BulkSecretData> done) = 0;

  // Reachability of the backend for /v1.0/healthz/outbound. Must not block.
  virtual absl::Status Health() const { return absl::OkStatus(); }
};

// "secret <name> not found" with status code NOT_FOUND; `detail` is appended when non-empty.
absl::Status SecretNotFoundError(std::string_view name, std::string_view detail = "");
bool IsSecretNotFound(const absl::Status& status);

}  // namespace remora::components::secretstores
