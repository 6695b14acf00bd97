#pragma once

// The Configuration resource (contract §4.4: `dapr.io/v1alpha1`, `kind: Configuration`, passed
// with `--config <file>`, repeatable). Only the parts remorad acts on are parsed; the rest of
// `spec` is accepted and ignored, so Dapr configuration files load unchanged.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Configuration
//   metadata: { name: appconfig }
//   spec:
//     secrets:
//       scopes:
//       - storeName: localsecrets
//         defaultAccess: deny            # allow (default) | deny
//         allowedSecrets: ["db-password"]
//         deniedSecrets: []
//
// Parsed so far: spec.secrets.scopes, spec.nameResolution.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "remora/runtime/resources.h"

namespace remora::runtime {

// One entry of spec.secrets.scopes: which secrets of one store the app may read.
struct SecretsScope {
  std::string store_name;
  bool default_allow = true;  // defaultAccess: allow (default) | deny, case-insensitive
  std::vector<std::string> allowed_secrets;
  std::vector<std::string> denied_secrets;

  // Dapr's rule: a non-empty allowedSecrets list is the only thing that counts (a key is
  // allowed iff listed); otherwise a key in deniedSecrets is denied; otherwise defaultAccess.
  // Keys match exactly (case-sensitive).
  bool IsSecretAllowed(std::string_view key) const;
};

struct ConfigurationSpec {
  std::vector<std::string> names;  // metadata.name of every Configuration read, for logs
  // At most one entry per store: a later file's entry replaces an earlier one's.
  std::vector<SecretsScope> secret_scopes;
  // spec.nameResolution {component, version, configuration}; a later file's replaces an earlier
  // one's. `configuration` keeps scalar values (as strings); nested values are an error.
  struct NameResolution {
    std::string component;
    std::string version;
    std::map<std::string, std::string> configuration;
  };
  std::optional<NameResolution> name_resolution;
};

// Reads every `--config` file in order. A file that cannot be read or parsed, or that has a
// malformed field that remorad acts on, is an error naming the file, the document and the field.
// Documents of other kinds are skipped with a warning.
absl::StatusOr<ConfigurationSpec> LoadConfiguration(const std::vector<std::string>& files);

// The same for YAML text already in memory; `origin` names it in errors. Adds to `out`.
absl::Status ParseConfiguration(const std::string& yaml_text, const std::string& origin,
                                ConfigurationSpec* out);

}  // namespace remora::runtime
