#include "remora/runtime/resources.h"

#include <yaml-cpp/yaml.h>

#include "yaml_documents.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>

#include "nlohmann/json.hpp"
#include "remora/components/common/metadata.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/log.h"

namespace remora::runtime {
namespace {

constexpr std::string_view kComponentApiVersion = "dapr.io/v1alpha1";

// Kinds Dapr defines that this loader does not turn into specs yet: skipped with a warning so
// nobody believes they took effect.
constexpr std::string_view kKnownKinds[] = {"Configuration", "HTTPEndpoint"};

// An error about one field of one document: "<file> (document N): <field> <problem>".
absl::Status FieldError(const SourceLocation& where, std::string_view field,
                        std::string_view problem) {
  return MakeStatus(absl::StatusCode::kInvalidArgument,
                    StrCat(where.Describe(), ": ", field, " ", problem));
}

// A plain scalar the way YAML (and so Dapr's YAML→JSON step) types it; quoted scalars are
// strings. Used only inside structured values, whose JSON keeps numbers and booleans typed.
nlohmann::json ScalarToJson(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return nullptr;
  }
  int64_t integer;
  if (YAML::convert<int64_t>::decode(node, integer)) return integer;
  double real;
  if (YAML::convert<double>::decode(node, real)) return real;
  return text;
}

nlohmann::json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return ScalarToJson(node);
    case YAML::NodeType::Sequence: {
      nlohmann::json array = nlohmann::json::array();
      for (const YAML::Node& item : node) array.push_back(ToJson(item));
      return array;
    }
    case YAML::NodeType::Map: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& entry : node) object[entry.first.Scalar()] = ToJson(entry.second);
      return object;
    }
    default:
      return nullptr;
  }
}

// Reads an optional string field. Absent or null: "" (and true). A structure: false.
bool ReadString(const YAML::Node& parent, const char* key, std::string* out) {
  YAML::Node node = parent[key];
  if (!node || node.IsNull()) {
    out->clear();
    return true;
  }
  if (!node.IsScalar()) return false;
  *out = node.Scalar();
  return true;
}

absl::Status ParseMetadataItem(const YAML::Node& node, const SourceLocation& where,
                               const std::string& field, MetadataItem* item) {
  if (!node.IsMap()) return FieldError(where, field, "must be a mapping with name and value");
  if (!ReadString(node, "name", &item->name)) {
    return FieldError(where, field + ".name", "must be a string");
  }
  if (item->name.empty()) return FieldError(where, field + ".name", "is required");

  // Dapr keeps `value` as raw JSON and hands components its string form: a scalar as written, a
  // structure as compact JSON.
  if (YAML::Node value = node["value"]; value && !value.IsNull()) {
    item->value = value.IsScalar() ? value.Scalar() : ToJson(value).dump();
  }
  if (YAML::Node ref = node["secretKeyRef"]; ref && !ref.IsNull()) {
    if (!ref.IsMap()) return FieldError(where, field + ".secretKeyRef", "must be a mapping");
    SecretKeyRef secret;
    if (!ReadString(ref, "name", &secret.name)) {
      return FieldError(where, field + ".secretKeyRef.name", "must be a string");
    }
    if (secret.name.empty()) return FieldError(where, field + ".secretKeyRef.name", "is required");
    if (!ReadString(ref, "key", &secret.key)) {
      return FieldError(where, field + ".secretKeyRef.key", "must be a string");
    }
    item->secret_key_ref = std::move(secret);
  }
  if (YAML::Node env = node["envRef"]; env && !env.IsNull()) {
    if (!env.IsScalar()) return FieldError(where, field + ".envRef", "must be a string");
    item->env_ref = env.Scalar();
  }
  return absl::OkStatus();
}

absl::Status ParseComponent(const YAML::Node& doc, const SourceLocation& where,
                            ComponentSpec* spec) {
  spec->source = where;
  YAML::Node meta = doc["metadata"];
  if (!meta || meta.IsNull()) return FieldError(where, "metadata.name", "is required");
  if (!meta.IsMap()) return FieldError(where, "metadata", "must be a mapping");
  if (!ReadString(meta, "name", &spec->name)) {
    return FieldError(where, "metadata.name", "must be a string");
  }
  if (spec->name.empty()) return FieldError(where, "metadata.name", "is required");
  if (!ReadString(meta, "namespace", &spec->namespace_)) {
    return FieldError(where, "metadata.namespace", "must be a string");
  }

  YAML::Node body = doc["spec"];
  if (!body || body.IsNull()) return FieldError(where, "spec.type", "is required");
  if (!body.IsMap()) return FieldError(where, "spec", "must be a mapping");
  if (!ReadString(body, "type", &spec->type)) {
    return FieldError(where, "spec.type", "must be a string");
  }
  if (spec->type.empty()) return FieldError(where, "spec.type", "is required");
  if (!ReadString(body, "version", &spec->version)) {
    return FieldError(where, "spec.version", "must be a string");
  }
  if (spec->version.empty()) spec->version = "v1";

  std::string init_timeout;
  if (!ReadString(body, "initTimeout", &init_timeout)) {
    return FieldError(where, "spec.initTimeout", "must be a duration");
  }
  if (!init_timeout.empty()) {
    if (!components::ParseGoDuration(init_timeout).ok()) {
      return FieldError(where, "spec.initTimeout",
                        StrCat("\"", init_timeout, "\" is not a duration (e.g. 5s, 1m30s)"));
    }
    spec->init_timeout = init_timeout;
  }
  if (YAML::Node ignore = body["ignoreErrors"]; ignore && !ignore.IsNull()) {
    if (!ignore.IsScalar() || !YAML::convert<bool>::decode(ignore, spec->ignore_errors)) {
      return FieldError(where, "spec.ignoreErrors", "must be true or false");
    }
  }

  if (YAML::Node items = body["metadata"]; items && !items.IsNull()) {
    if (!items.IsSequence()) {
      return FieldError(where, "spec.metadata", "must be a list of {name, value} items");
    }
    for (size_t i = 0; i < items.size(); ++i) {
      MetadataItem item;
      std::string field = StrCat("spec.metadata[", static_cast<int64_t>(i), "]");
      if (absl::Status status = ParseMetadataItem(items[i], where, field, &item); !status.ok()) {
        return status;
      }
      spec->metadata.push_back(std::move(item));
    }
  }

  if (YAML::Node scopes = doc["scopes"]; scopes && !scopes.IsNull()) {
    if (!scopes.IsSequence()) return FieldError(where, "scopes", "must be a list of app ids");
    for (const YAML::Node& scope : scopes) {
      if (!scope.IsScalar()) return FieldError(where, "scopes", "must be a list of app ids");
      spec->scopes.push_back(scope.Scalar());
    }
  }
  if (YAML::Node auth = doc["auth"]; auth && !auth.IsNull()) {
    if (!auth.IsMap()) return FieldError(where, "auth", "must be a mapping");
    if (!ReadString(auth, "secretStore", &spec->auth_secret_store)) {
      return FieldError(where, "auth.secretStore", "must be a string");
    }
  }
  return absl::OkStatus();
}

// Dapr's self-hosted rules: a resource without a namespace is everyone's; with NAMESPACE set, a
// resource in another namespace is not ours. A non-empty scopes list names the only apps that
// see the resource.
bool Visible(std::string_view what, std::string_view name, std::string_view resource_namespace,
             const std::vector<std::string>& scopes, std::string_view where,
             const std::string& app_id, const std::string& namespace_) {
  if (!namespace_.empty() && !resource_namespace.empty() && resource_namespace != namespace_) {
    log::Debug(where, ": ", what, " ", name, " is in namespace ", resource_namespace, ", not ",
               namespace_, "; skipped");
    return false;
  }
  if (!scopes.empty() && std::find(scopes.begin(), scopes.end(), app_id) == scopes.end()) {
    log::Debug(where, ": ", what, " ", name, " is not scoped to app \"", app_id, "\"; skipped");
    return false;
  }
  return true;
}

bool Visible(const ComponentSpec& spec, const std::string& app_id, const std::string& namespace_) {
  return Visible("component", spec.name, spec.namespace_, spec.scopes, spec.source.Describe(),
                 app_id, namespace_);
}

absl::Status ReadScopes(const YAML::Node& doc, const SourceLocation& where,
                        std::vector<std::string>* out) {
  YAML::Node scopes = doc["scopes"];
  if (!scopes || scopes.IsNull()) return absl::OkStatus();
  if (!scopes.IsSequence()) return FieldError(where, "scopes", "must be a list of app ids");
  for (const YAML::Node& scope : scopes) {
    if (!scope.IsScalar()) return FieldError(where, "scopes", "must be a list of app ids");
    out->push_back(scope.Scalar());
  }
  return absl::OkStatus();
}

// A Subscription (contract §4.2): v2alpha1 with spec.routes, or v1alpha1 with spec.route.
absl::Status ParseSubscription(const YAML::Node& doc, const SourceLocation& where, bool v2,
                               SubscriptionResource* sub) {
  sub->source = where;
  YAML::Node meta = doc["metadata"];
  if (meta && !meta.IsNull()) {
    if (!meta.IsMap()) return FieldError(where, "metadata", "must be a mapping");
    if (!ReadString(meta, "name", &sub->name)) {
      return FieldError(where, "metadata.name", "must be a string");
    }
    if (!ReadString(meta, "namespace", &sub->namespace_)) {
      return FieldError(where, "metadata.namespace", "must be a string");
    }
  }
  YAML::Node body = doc["spec"];
  if (!body || body.IsNull()) return FieldError(where, "spec.pubsubname", "is required");
  if (!body.IsMap()) return FieldError(where, "spec", "must be a mapping");
  for (auto [key, out] :
       {std::pair{"pubsubname", &sub->pubsub_name}, std::pair{"topic", &sub->topic}}) {
    if (!ReadString(body, key, out))
      return FieldError(where, StrCat("spec.", key), "must be a string");
    if (out->empty()) return FieldError(where, StrCat("spec.", key), "is required");
  }
  if (!ReadString(body, "deadLetterTopic", &sub->dead_letter_topic)) {
    return FieldError(where, "spec.deadLetterTopic", "must be a string");
  }
  if (v2) {
    YAML::Node routes = body["routes"];
    if (!routes || routes.IsNull()) return FieldError(where, "spec.routes", "is required");
    if (!routes.IsMap()) return FieldError(where, "spec.routes", "must be a mapping");
    if (YAML::Node rules = routes["rules"]; rules && !rules.IsNull()) {
      if (!rules.IsSequence()) {
        return FieldError(where, "spec.routes.rules", "must be a list of {match, path}");
      }
      for (size_t i = 0; i < rules.size(); ++i) {
        std::string field = StrCat("spec.routes.rules[", static_cast<int64_t>(i), "]");
        if (!rules[i].IsMap())
          return FieldError(where, field, "must be a mapping with match and path");
        SubscriptionResource::Rule rule;
        if (!ReadString(rules[i], "match", &rule.match)) {
          return FieldError(where, field + ".match", "must be a string");
        }
        if (!ReadString(rules[i], "path", &rule.path)) {
          return FieldError(where, field + ".path", "must be a string");
        }
        if (rule.path.empty()) return FieldError(where, field + ".path", "is required");
        sub->rules.push_back(std::move(rule));
      }
    }
    std::string fallback;
    if (!ReadString(routes, "default", &fallback)) {
      return FieldError(where, "spec.routes.default", "must be a string");
    }
    if (!fallback.empty()) sub->rules.push_back({"", fallback});
    if (sub->rules.empty()) {
      return FieldError(where, "spec.routes", "needs at least one rule or a default path");
    }
  } else {
    std::string route;
    if (!ReadString(body, "route", &route))
      return FieldError(where, "spec.route", "must be a string");
    if (route.empty()) return FieldError(where, "spec.route", "is required");
    sub->rules.push_back({"", route});
  }
  if (YAML::Node metadata = body["metadata"]; metadata && !metadata.IsNull()) {
    if (!metadata.IsMap()) return FieldError(where, "spec.metadata", "must be a mapping");
    for (const auto& entry : metadata) {
      const YAML::Node& value = entry.second;
      sub->metadata[entry.first.Scalar()] =
          value.IsScalar() ? value.Scalar() : (value.IsNull() ? "" : ToJson(value).dump());
    }
  }
  if (YAML::Node bulk = body["bulkSubscribe"]; bulk && !bulk.IsNull()) {
    if (!bulk.IsMap()) return FieldError(where, "spec.bulkSubscribe", "must be a mapping");
    if (YAML::Node enabled = bulk["enabled"]; enabled && !enabled.IsNull()) {
      if (!enabled.IsScalar() || !YAML::convert<bool>::decode(enabled, sub->bulk_enabled)) {
        return FieldError(where, "spec.bulkSubscribe.enabled", "must be true or false");
      }
    }
    for (auto [key, out] : {std::pair{"maxMessagesCount", &sub->bulk_max_messages_count},
                            std::pair{"maxAwaitDurationMs", &sub->bulk_max_await_duration_ms}}) {
      YAML::Node value = bulk[key];
      if (!value || value.IsNull()) continue;
      if (!value.IsScalar() || !YAML::convert<int>::decode(value, *out) || *out < 0) {
        return FieldError(where, StrCat("spec.bulkSubscribe.", key), "must be a positive integer");
      }
    }
  }
  return ReadScopes(doc, where, &sub->scopes);
}

}  // namespace

std::string SourceLocation::Describe() const { return StrCat(file, " (document ", document, ")"); }

absl::Status ParseResourceDocuments(const std::string& yaml_text, const std::string& origin,
                                    const std::string& app_id, const std::string& namespace_,
                                    Resources* out) {
  auto loaded = LoadYamlDocuments(yaml_text, origin);
  if (!loaded.ok()) return loaded.status();
  const std::vector<YAML::Node>& docs = *loaded;

  for (size_t i = 0; i < docs.size(); ++i) {
    const YAML::Node& doc = docs[i];
    SourceLocation where{origin, static_cast<int>(i + 1)};
    if (!doc || doc.IsNull()) continue;  // empty document between separators
    if (!doc.IsMap()) {
      return MakeStatus(absl::StatusCode::kInvalidArgument,
                        StrCat(where.Describe(), ": a resource must be a mapping"));
    }
    std::string kind;
    std::string api_version;
    if (!ReadString(doc, "kind", &kind)) return FieldError(where, "kind", "must be a string");
    if (!ReadString(doc, "apiVersion", &api_version)) {
      return FieldError(where, "apiVersion", "must be a string");
    }
    try {
      if (kind == "Component") {
        if (api_version != kComponentApiVersion) {
          return FieldError(where, "apiVersion",
                            StrCat("must be ", kComponentApiVersion, " for a Component, not \"",
                                   api_version, "\""));
        }
        ComponentSpec spec;
        if (absl::Status status = ParseComponent(doc, where, &spec); !status.ok()) return status;
        if (!Visible(spec, app_id, namespace_)) continue;
        for (const ComponentSpec& other : out->components) {
          if (other.name == spec.name) {
            return MakeStatus(absl::StatusCode::kInvalidArgument,
                              StrCat("component name \"", spec.name, "\" is defined twice: ",
                                     other.source.Describe(), " and ", where.Describe()));
          }
        }
        out->components.push_back(std::move(spec));
      } else if (kind == "Subscription") {
        const bool v2 = api_version == "dapr.io/v2alpha1";
        if (!v2 && api_version != "dapr.io/v1alpha1") {
          return FieldError(where, "apiVersion",
                            StrCat("must be dapr.io/v2alpha1 or dapr.io/v1alpha1 for a "
                                   "Subscription, not \"",
                                   api_version, "\""));
        }
        SubscriptionResource sub;
        if (absl::Status status = ParseSubscription(doc, where, v2, &sub); !status.ok()) {
          return status;
        }
        if (!Visible("subscription", sub.name, sub.namespace_, sub.scopes, where.Describe(), app_id,
                     namespace_)) {
          continue;
        }
        out->subscriptions.push_back(std::move(sub));
      } else if (kind == "Resiliency") {
        if (api_version != kComponentApiVersion) {
          return FieldError(where, "apiVersion",
                            StrCat("must be ", kComponentApiVersion, " for a Resiliency, not \"",
                                   api_version, "\""));
        }
        ResiliencySpec spec;
        if (absl::Status status = ParseResiliencyDocument(doc, where.Describe(), &spec);
            !status.ok()) {
          return status;
        }
        if (!Visible("resiliency", spec.name, spec.namespace_, spec.scopes, where.Describe(),
                     app_id, namespace_)) {
          continue;
        }
        out->resiliencies.push_back(std::move(spec));
      } else if (std::find(std::begin(kKnownKinds), std::end(kKnownKinds), kind) !=
                 std::end(kKnownKinds)) {
        log::Warn(where.Describe(), ": ", kind, " resources are not supported yet; skipped");
      } else {
        // Not a Dapr resource (or a kind Dapr added later): Dapr's loader passes over these too.
        log::Debug(where.Describe(), ": kind \"", kind, "\" is not a Dapr resource; skipped");
      }
    } catch (const YAML::Exception& e) {
      return MakeStatus(absl::StatusCode::kInvalidArgument,
                        StrCat(where.Describe(), ": ", e.what()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Resources> LoadResources(const std::vector<std::string>& directories,
                                        const std::string& app_id, const std::string& namespace_) {
  namespace fs = std::filesystem;
  Resources resources;
  for (const std::string& directory : directories) {
    std::error_code ec;
    if (!fs::is_directory(directory, ec)) {
      return MakeStatus(absl::StatusCode::kNotFound,
                        StrCat("resources path \"", directory, "\" is not a directory",
                               ec ? StrCat(": ", ec.message()) : std::string()));
    }
    std::vector<std::string> names;
    for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      std::string ext = it->path().extension().string();
      if ((ext == ".yaml" || ext == ".yml") && it->is_regular_file()) names.push_back(name);
    }
    if (ec) {
      return MakeStatus(absl::StatusCode::kFailedPrecondition,
                        StrCat("resources path \"", directory, "\": ", ec.message()));
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      std::string path = (fs::path(directory) / name).string();
      std::ifstream in(path, std::ios::binary);
      std::ostringstream text;
      if (in) text << in.rdbuf();
      if (!in || in.bad()) {
        return MakeStatus(absl::StatusCode::kFailedPrecondition,
                          StrCat(path, ": cannot read: ", std::strerror(errno)));
      }
      if (absl::Status status =
              ParseResourceDocuments(text.str(), path, app_id, namespace_, &resources);
          !status.ok()) {
        return status;
      }
    }
  }
  // Targets may name policies defined in another file: checked once everything is read.
  if (absl::Status status = ValidateResiliencies(resources.resiliencies); !status.ok()) {
    return status;
  }
  return resources;
}

}  // namespace remora::runtime
