#pragma once

// Dapr resource files (contract §4): Component now; Subscription, Resiliency, Configuration and
// HTTPEndpoint parsers join this file as their building blocks land.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace remora::runtime {

struct SecretKeyRef {
  std::string name;
  std::string key;  // empty: the secret's value under `name`
};

struct MetadataItem {
  std::string name;
  std::string value;  // `value` turned into a string (any YAML/JSON scalar or structure)
  std::optional<SecretKeyRef> secret_key_ref;
  std::optional<std::string> env_ref;
};

// Where a resource came from, for error messages: "file.yaml (document 2)".
struct SourceLocation {
  std::string file;
  int document = 1;  // 1-based index within a multi-document file
  std::string Describe() const;
};

struct ComponentSpec {
  std::string name;
  std::string namespace_;
  std::string type;               // e.g. "state.redis"
  std::string version = "v1";
  std::string init_timeout = "5s";
  bool ignore_errors = false;
  std::vector<MetadataItem> metadata;
  std::vector<std::string> scopes;  // empty: every app
  std::string auth_secret_store;    // auth.secretStore
  SourceLocation source;
};

struct Resources {
  std::vector<ComponentSpec> components;
};

// Reads every *.yaml / *.yml file in each directory (non-recursive, sorted by name), every
// document in each file. Resources scoped away from `app_id` or in another namespace are left
// out. Documents of kinds not handled yet are skipped. A malformed document is an error naming
// the file, the document and the field; two components with one name are an error naming both.
absl::StatusOr<Resources> LoadResources(const std::vector<std::string>& directories,
                                        const std::string& app_id, const std::string& namespace_);

// The same for YAML text already in memory (tests, embedded mode); `origin` names it in errors.
absl::Status ParseResourceDocuments(const std::string& yaml_text, const std::string& origin,
                                    const std::string& app_id, const std::string& namespace_,
                                    Resources* out);

}  // namespace remora::runtime
