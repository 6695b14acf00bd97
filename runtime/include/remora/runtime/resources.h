#pragma once

// Dapr resource files (contract §4): Component, Subscription (v2alpha1 and v1alpha1) and
// Resiliency (resiliency.h); Configuration and HTTPEndpoint parsers join as their building blocks
// land.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "remora/runtime/resiliency.h"

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
  std::string type;  // e.g. "state.redis"
  std::string version = "v1";
  std::string init_timeout = "5s";
  bool ignore_errors = false;
  std::vector<MetadataItem> metadata;
  std::vector<std::string> scopes;  // empty: every app
  std::string auth_secret_store;    // auth.secretStore
  SourceLocation source;
};

// A declarative Subscription (contract §4.2). v1alpha1's `spec.route` becomes the default rule.
// Routing expressions are kept as text here; the pub/sub block parses them at load time and fails
// start-up naming `source` when one is outside the supported subset.
struct SubscriptionResource {
  struct Rule {
    std::string match;  // empty: the default route
    std::string path;
  };
  std::string name;
  std::string namespace_;
  std::string pubsub_name;
  std::string topic;
  std::vector<Rule> rules;  // in order; the default route (if any) last
  std::map<std::string, std::string> metadata;
  std::string dead_letter_topic;
  bool bulk_enabled = false;
  int bulk_max_messages_count = 100;
  int bulk_max_await_duration_ms = 1000;
  std::vector<std::string> scopes;  // empty: every app
  SourceLocation source;
};

struct Resources {
  std::vector<ComponentSpec> components;
  std::vector<SubscriptionResource> subscriptions;
  std::vector<ResiliencySpec> resiliencies;
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
