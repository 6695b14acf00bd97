#pragma once

// secretstores.local.env (contract §5.10): secrets from the sidecar's environment variables.
// Meant for development and for containers whose secrets arrive as env vars.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: envsecrets }
//   spec:
//     type: secretstores.local.env
//     version: v1
//     metadata:
//     - { name: prefix, value: "MYAPP_" }   # optional
//
// - GetSecret(name) reads the variable prefix+name and answers {name: value}. An unset variable
//   gives "" (not an error), as Dapr does.
// - The sidecar's own credentials are never served: APP_API_TOKEN and every variable whose name
//   starts with DAPR_ (case-insensitive) read as "" and are left out of bulk results.
// - BulkGetSecret answers every variable whose name starts with the prefix (case-sensitive, and
//   longer than the prefix) as {name: {name: value}}, with the prefix removed from the name.
// No features.
//
// Threading: reads the environment on the calling thread; callbacks run inline. The runtime does
// not change its environment after start-up.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/common/metadata.h"
#include "remora/components/secretstores/secretstore.h"

namespace remora::components::secretstores::local_env {

struct Config {
  std::string prefix;
};

absl::StatusOr<Config> ParseConfig(const Metadata& metadata);

// False for names the store refuses to serve (APP_API_TOKEN, DAPR_*).
bool IsAllowed(std::string_view variable);

absl::StatusOr<std::unique_ptr<SecretStore>> Create(const ComponentContext& context);

}  // namespace remora::components::secretstores::local_env
