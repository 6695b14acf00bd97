#include "local_file_store.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"

namespace remora::components::secretstores::local_file {
namespace {

using nlohmann::json;

std::string LeafText(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  return value.dump();  // numbers and booleans as JSON writes them
}

// Flattens `value` under `path` into `out`. Dapr silently stops at a duplicate name (its error is
// dropped); here it is an error so that a file that cannot mean one thing is refused.
absl::Status Flatten(const json& value, const std::string& path, std::string_view separator,
                     SecretData* out) {
  auto child = [&](std::string_view part) {
    return path.empty() ? std::string(part) : StrCat(path, separator, part);
  };
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      if (absl::Status s = Flatten(item, child(key), separator, out); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      if (absl::Status s = Flatten(value[i], child(std::to_string(i)), separator, out); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  if (!out->emplace(path, LeafText(value)).second) {
    return MakeStatus(
        absl::StatusCode::kInvalidArgument,
        StrCat("duplicate secret name \"", path, "\" after flattening with \"", separator, "\""));
  }
  return absl::OkStatus();
}

class LocalFileStore : public SecretStore {
 public:
  LocalFileStore(BulkSecretData secrets, bool multi_valued)
      : secrets_(std::move(secrets)), multi_valued_(multi_valued) {}

  std::vector<Feature> Features() const override {
    if (multi_valued_) return {Feature::kMultipleKeyValuesPerSecret};
    return {};
  }

  void GetSecret(std::string name, RequestMetadata, Callback<SecretData> done) override {
    auto it = secrets_.find(name);
    if (it == secrets_.end()) return std::move(done)(SecretNotFoundError(name));
    std::move(done)(it->second);
  }

  void BulkGetSecret(RequestMetadata, Callback<BulkSecretData> done) override {
    std::move(done)(secrets_);
  }

 private:
  const BulkSecretData secrets_;
  const bool multi_valued_;
};

}  // namespace

absl::StatusOr<Config> ParseConfig(const Metadata& metadata) {
  Config config;
  config.secrets_file = metadata.GetString("secretsFile");
  if (config.secrets_file.empty()) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      "metadata secretsFile is required (path to a JSON file)");
  }
  std::string separator = metadata.GetString("nestedSeparator");
  if (!separator.empty()) config.nested_separator = std::move(separator);
  auto multi = metadata.GetBool("multiValued", false);
  if (!multi.ok()) return multi.status();
  config.multi_valued = *multi;
  return config;
}

absl::StatusOr<BulkSecretData> ParseSecrets(std::string_view json_text, const Config& config) {
  json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return MakeStatus(absl::StatusCode::kInvalidArgument, "not valid JSON");
  }
  if (!root.is_object()) {
    return MakeStatus(absl::StatusCode::kInvalidArgument, "the top level must be a JSON object");
  }
  BulkSecretData secrets;
  const std::string& separator = config.nested_separator;
  if (!config.multi_valued) {
    SecretData flat;
    if (absl::Status s = Flatten(root, "", separator, &flat); !s.ok()) return s;
    for (auto& [name, value] : flat) secrets[name] = SecretData{{name, std::move(value)}};
    return secrets;
  }
  for (const auto& [name, value] : root.items()) {
    if (value.is_string()) {
      secrets[name] = SecretData{{name, value.get<std::string>()}};
    } else if (value.is_object()) {
      SecretData fields;
      if (absl::Status s = Flatten(value, "", separator, &fields); !s.ok()) {
        return MakeStatus(s.code(), StrCat("secret \"", name, "\": ", MessageOf(s)));
      }
      secrets[name] = std::move(fields);
    }
  }
  return secrets;
}

absl::StatusOr<std::unique_ptr<SecretStore>> Create(const ComponentContext& context) {
  auto config = ParseConfig(context.metadata);
  if (!config.ok()) return config.status();
  std::ifstream in(config->secrets_file, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    return MakeStatus(
        absl::StatusCode::kFailedPrecondition,
        StrCat("secretsFile ", config->secrets_file, ": cannot read: ", std::strerror(errno)));
  }
  auto secrets = ParseSecrets(text.str(), *config);
  if (!secrets.ok()) {
    return MakeStatus(secrets.status().code(), StrCat("secretsFile ", config->secrets_file, ": ",
                                                      MessageOf(secrets.status())));
  }
  return std::make_unique<LocalFileStore>(*std::move(secrets), config->multi_valued);
}

}  // namespace remora::components::secretstores::local_file
