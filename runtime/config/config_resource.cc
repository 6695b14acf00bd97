#include "remora/runtime/config_resource.h"

#include <yaml-cpp/yaml.h>

#include "yaml_documents.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "remora/components/common/strings.h"
#include "remora/runtime/log.h"

namespace remora::runtime {
namespace {

absl::Status FieldError(const SourceLocation& where, std::string_view field,
                        std::string_view problem) {
  return MakeStatus(absl::StatusCode::kInvalidArgument,
                    StrCat(where.Describe(), ": ", field, " ", problem));
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

absl::Status ReadStringList(const YAML::Node& parent, const char* key, const SourceLocation& where,
                            const std::string& field, std::vector<std::string>* out) {
  YAML::Node node = parent[key];
  if (!node || node.IsNull()) return absl::OkStatus();
  if (!node.IsSequence()) return FieldError(where, field, "must be a list of secret names");
  for (const YAML::Node& item : node) {
    if (!item.IsScalar()) return FieldError(where, field, "must be a list of secret names");
    out->push_back(item.Scalar());
  }
  return absl::OkStatus();
}

absl::Status ParseSecretScopes(const YAML::Node& spec, const SourceLocation& where,
                               ConfigurationSpec* out) {
  YAML::Node secrets = spec["secrets"];
  if (!secrets || secrets.IsNull()) return absl::OkStatus();
  if (!secrets.IsMap()) return FieldError(where, "spec.secrets", "must be a mapping");
  YAML::Node scopes = secrets["scopes"];
  if (!scopes || scopes.IsNull()) return absl::OkStatus();
  if (!scopes.IsSequence()) return FieldError(where, "spec.secrets.scopes", "must be a list");
  for (size_t i = 0; i < scopes.size(); ++i) {
    const YAML::Node& item = scopes[i];
    std::string field = StrCat("spec.secrets.scopes[", static_cast<int64_t>(i), "]");
    if (!item.IsMap()) return FieldError(where, field, "must be a mapping");
    SecretsScope scope;
    YAML::Node store = item["storeName"];
    if (!store || !store.IsScalar() || store.Scalar().empty()) {
      return FieldError(where, field + ".storeName", "is required");
    }
    scope.store_name = store.Scalar();
    if (YAML::Node access = item["defaultAccess"]; access && !access.IsNull()) {
      if (!access.IsScalar())
        return FieldError(where, field + ".defaultAccess", "must be a string");
      // Dapr reads anything but "deny" as allow; a typo would then open the store, so only the
      // two words are accepted.
      if (EqualsIgnoreCase(access.Scalar(), "deny")) {
        scope.default_allow = false;
      } else if (access.Scalar().empty() || EqualsIgnoreCase(access.Scalar(), "allow")) {
        scope.default_allow = true;
      } else {
        return FieldError(where, field + ".defaultAccess",
                          StrCat("must be allow or deny, not \"", access.Scalar(), "\""));
      }
    }
    if (absl::Status s = ReadStringList(item, "allowedSecrets", where, field + ".allowedSecrets",
                                        &scope.allowed_secrets);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = ReadStringList(item, "deniedSecrets", where, field + ".deniedSecrets",
                                        &scope.denied_secrets);
        !s.ok()) {
      return s;
    }
    auto same = [&](const SecretsScope& other) { return other.store_name == scope.store_name; };
    out->secret_scopes.erase(
        std::remove_if(out->secret_scopes.begin(), out->secret_scopes.end(), same),
        out->secret_scopes.end());
    out->secret_scopes.push_back(std::move(scope));
  }
  return absl::OkStatus();
}

absl::Status ParseNameResolution(const YAML::Node& spec, const SourceLocation& where,
                                 ConfigurationSpec* out) {
  YAML::Node nr = spec["nameResolution"];
  if (!nr || nr.IsNull()) return absl::OkStatus();
  if (!nr.IsMap()) return FieldError(where, "spec.nameResolution", "must be a mapping");
  ConfigurationSpec::NameResolution parsed;
  for (const char* key : {"component", "version"}) {
    YAML::Node v = nr[key];
    if (!v || v.IsNull()) continue;
    if (!v.IsScalar())
      return FieldError(where, StrCat("spec.nameResolution.", key), "must be a string");
    (key[0] == 'c' ? parsed.component : parsed.version) = v.Scalar();
  }
  if (YAML::Node conf = nr["configuration"]; conf && !conf.IsNull()) {
    if (!conf.IsMap()) {
      return FieldError(where, "spec.nameResolution.configuration", "must be a mapping");
    }
    for (const auto& item : conf) {
      std::string key = item.first.Scalar();
      if (item.second.IsNull()) continue;
      if (!item.second.IsScalar()) {
        return FieldError(where, StrCat("spec.nameResolution.configuration.", key),
                          "must be a string (nested values are not supported)");
      }
      parsed.configuration[key] = item.second.Scalar();
    }
  }
  out->name_resolution = std::move(parsed);
  return absl::OkStatus();
}

}  // namespace

bool SecretsScope::IsSecretAllowed(std::string_view key) const {
  auto contains = [key](const std::vector<std::string>& list) {
    return std::find(list.begin(), list.end(), key) != list.end();
  };
  if (!allowed_secrets.empty()) return contains(allowed_secrets);
  if (contains(denied_secrets)) return false;
  return default_allow;
}

absl::Status ParseConfiguration(const std::string& yaml_text, const std::string& origin,
                                ConfigurationSpec* out) {
  auto loaded = LoadYamlDocuments(yaml_text, origin);
  if (!loaded.ok()) return loaded.status();
  const std::vector<YAML::Node>& docs = *loaded;
  for (size_t i = 0; i < docs.size(); ++i) {
    const YAML::Node& doc = docs[i];
    SourceLocation where{origin, static_cast<int>(i + 1)};
    if (!doc || doc.IsNull()) continue;
    if (!doc.IsMap()) {
      return MakeStatus(absl::StatusCode::kInvalidArgument,
                        StrCat(where.Describe(), ": a Configuration must be a mapping"));
    }
    try {
      std::string kind = doc["kind"] && doc["kind"].IsScalar() ? doc["kind"].Scalar() : "";
      if (kind != "Configuration") {
        log::Warn(where.Describe(), ": kind \"", kind, "\" in a --config file is skipped");
        continue;
      }
      if (YAML::Node meta = doc["metadata"];
          meta && meta.IsMap() && meta["name"] && meta["name"].IsScalar()) {
        out->names.push_back(meta["name"].Scalar());
      }
      YAML::Node spec = doc["spec"];
      if (!spec || spec.IsNull()) continue;
      if (!spec.IsMap()) return FieldError(where, "spec", "must be a mapping");
      if (absl::Status s = ParseSecretScopes(spec, where, out); !s.ok()) return s;
      if (absl::Status s = ParseNameResolution(spec, where, out); !s.ok()) return s;
    } catch (const YAML::Exception& e) {
      return MakeStatus(absl::StatusCode::kInvalidArgument,
                        StrCat(where.Describe(), ": ", e.what()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ConfigurationSpec> LoadConfiguration(const std::vector<std::string>& files) {
  ConfigurationSpec spec;
  for (const std::string& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    if (in) text << in.rdbuf();
    if (!in || in.bad()) {
      return MakeStatus(absl::StatusCode::kFailedPrecondition,
                        StrCat("--config ", path, ": cannot read: ", std::strerror(errno)));
    }
    if (absl::Status s = ParseConfiguration(text.str(), path, &spec); !s.ok()) return s;
  }
  return spec;
}

}  // namespace remora::runtime
