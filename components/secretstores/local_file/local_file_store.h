#pragma once

// secretstores.local.file (contract §5.9): secrets from a JSON file, read once when the component
// is created. Meant for development; the file is not watched.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: localsecrets }
//   spec:
//     type: secretstores.local.file
//     version: v1
//     metadata:
//     - { name: secretsFile, value: ./secrets.json }   # required; relative to the working dir
//     - { name: nestedSeparator, value: ":" }          # default ":"
//     - { name: multiValued, value: "false" }          # default false
//
// With secrets.json `{"redis": {"password": "pw", "hosts": ["a", "b"]}, "token": "t"}`:
// - multiValued=false: the JSON is flattened, nested keys joined with the separator and array
//   indexes used as path parts: secrets `redis:password` = {"redis:password": "pw"},
//   `redis:hosts:0`, `redis:hosts:1`, `token` = {"token": "t"}. No features.
// - multiValued=true: each top-level key is a secret. A string gives {key: value}
//   (`token` = {"token": "t"}); an object gives its flattened fields
//   (`redis` = {"password": "pw", "hosts:0": "a", "hosts:1": "b"}). Top-level values of other
//   types are left out, as Dapr does. Feature MULTIPLE_KEY_VALUES_PER_SECRET.
// Leaf values: strings as they are, numbers and booleans as their JSON text, null as "".
//
// Errors: a missing name is SecretNotFoundError ("secret X not found"). Create fails when the file
// cannot be read or is not a JSON object, and when two paths flatten to the same name.
//
// Threading: immutable after Create; callbacks run inline.

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/common/metadata.h"
#include "remora/components/secretstores/secretstore.h"

namespace remora::components::secretstores::local_file {

struct Config {
  std::string secrets_file;
  std::string nested_separator = ":";
  bool multi_valued = false;
};

// Pure: reads the metadata keys above. A missing secretsFile is InvalidArgument.
absl::StatusOr<Config> ParseConfig(const Metadata& metadata);

// Pure: the secrets a file with `json_text` holds under `config`, by secret name.
absl::StatusOr<BulkSecretData> ParseSecrets(std::string_view json_text, const Config& config);

// Reads and parses the file, then serves it from memory.
absl::StatusOr<std::unique_ptr<SecretStore>> Create(const ComponentContext& context);

}  // namespace remora::components::secretstores::local_file
