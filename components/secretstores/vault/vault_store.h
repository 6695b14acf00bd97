#pragma once

// secretstores.hashicorp.vault (contract §5.8): secrets from HashiCorp Vault's KV version 2
// engine, over the project's one HTTP client on the component's io_context.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: vault }
//   spec:
//     type: secretstores.hashicorp.vault
//     version: v1
//     metadata:
//     - { name: vaultAddr, value: "http://127.0.0.1:8200" }  # default https://127.0.0.1:8200
//     - { name: vaultToken, value: "s.xxxx" }      # or vaultTokenMountPath: exactly one of them
//     - { name: vaultKVPrefix, value: dapr }       # default dapr
//     - { name: vaultKVUsePrefix, value: "true" }  # default true; false: no prefix segment
//     - { name: enginePath, value: secret }        # default secret
//     - { name: vaultValueType, value: map }       # map (default) | text
//     # TLS: skipVerify, tlsServerName, caCert (file), caPath (dir), caPem (inline)
//
// Calls (headers X-Vault-Token: <token>, X-Vault-Request: true):
// - GetSecret(name): GET {addr}/v1/{engine}/data/{prefix}/{name}?version={v}, v from request
//   metadata `version_id` (default 0, the latest). `map`: the secret is data.data (non-string
//   values as their JSON text). `text`: {name: data.data as JSON text}.
// - BulkGetSecret: LIST {addr}/v1/{engine}/metadata/{prefix}/ recursively (keys ending in "/"
//   are folders), then a GetSecret per leaf, named by its path below the prefix ("a/b"). Leaves
//   that are gone by then are skipped. At most 8 requests are in flight per bulk call. An empty
//   prefix (LIST answers 404) is an empty result; Dapr reports an error there.
//
// Errors (messages name vaultAddr): 404 → SecretNotFoundError; 403 → PERMISSION_DENIED "permission
// denied: check the vault token"; another non-200 → INTERNAL with the status and Vault's
// `errors`; connection refused/reset → UNAVAILABLE; no answer within 10 s → DEADLINE_EXCEEDED.
//
// https:// addresses use TLS 1.2+ with SNI: the certificate is verified against caPem (inline),
// else every file under caPath, else caCert (a file), else the system CAs, and its name against
// tlsServerName or vaultAddr's host; skipVerify "true" turns verification off. A CA setting
// that cannot be read or parsed fails Create; a handshake failure (an unverifiable certificate)
// is UNAVAILABLE naming vaultAddr. HTTP/2 is not used (Vault serves HTTP/1.1 as well).
//
// Features: MULTIPLE_KEY_VALUES_PER_SECRET in map mode, none in text mode.
// Threading: thread-safe; callbacks run on the io_context's threads.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/common/metadata.h"
#include "remora/components/secretstores/secretstore.h"

namespace remora::components::secretstores::vault {

enum class ValueType { kMap, kText };

struct Config {
  std::string vault_addr = "https://127.0.0.1:8200";  // as configured, for messages
  bool tls = true;
  std::string host = "127.0.0.1";  // IPv6 without brackets
  uint16_t port = 8200;
  std::string base_path;  // a path in vaultAddr ("/vault"), without a trailing slash
  std::string token;
  std::string token_mount_path;    // read (and trimmed) by Create when set
  std::string kv_prefix = "dapr";  // empty when vaultKVUsePrefix is false
  std::string engine_path = "secret";
  ValueType value_type = ValueType::kMap;
  bool skip_verify = false;
  std::string tls_server_name;
  std::string ca_cert;
  std::string ca_path;
  std::string ca_pem;
  std::chrono::milliseconds timeout{10000};
};

// Pure: the metadata keys above. Errors name the key: neither or both of vaultToken and
// vaultTokenMountPath, an unparsable vaultAddr, an unknown vaultValueType.
absl::StatusOr<Config> ParseConfig(const Metadata& metadata);

// Request targets (origin-form), exposed for tests. `name` and `path` are percent-encoded except
// for '/', which separates Vault path segments.
std::string SecretTarget(const Config& config, std::string_view name, std::string_view version);
std::string ListTarget(const Config& config, std::string_view path);

// Reads the token file when configured (trimmed; empty is an error) and the CA settings of an
// https address, then creates the store. Nothing connects until the first request.
absl::StatusOr<std::unique_ptr<SecretStore>> Create(const ComponentContext& context);

}  // namespace remora::components::secretstores::vault
