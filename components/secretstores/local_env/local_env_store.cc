#include "local_env_store.h"

#include <cctype>
#include <cstdlib>
#include <utility>

extern char** environ;

namespace remora::components::secretstores::local_env {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) !=
        std::toupper(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

class LocalEnvStore : public SecretStore {
 public:
  explicit LocalEnvStore(Config config) : config_(std::move(config)) {}

  std::vector<Feature> Features() const override { return {}; }

  void GetSecret(std::string name, RequestMetadata, Callback<SecretData> done) override {
    std::string variable = config_.prefix + name;
    std::string value;
    if (IsAllowed(variable)) {
      if (const char* env = std::getenv(variable.c_str())) value = env;
    }
    std::move(done)(SecretData{{std::move(name), std::move(value)}});
  }

  void BulkGetSecret(RequestMetadata, Callback<BulkSecretData> done) override {
    BulkSecretData out;
    const std::string& prefix = config_.prefix;
    for (char** env = environ; env != nullptr && *env != nullptr; ++env) {
      std::string_view entry(*env);
      size_t eq = entry.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view variable = entry.substr(0, eq);
      if (!prefix.empty() && (variable.size() <= prefix.size() || !variable.starts_with(prefix))) {
        continue;
      }
      if (!IsAllowed(variable)) continue;
      std::string name(variable.substr(prefix.size()));
      out[name] = SecretData{{name, std::string(entry.substr(eq + 1))}};
    }
    std::move(done)(std::move(out));
  }

 private:
  const Config config_;
};

}  // namespace

bool IsAllowed(std::string_view variable) {
  if (EqualsIgnoreCase(variable, "APP_API_TOKEN")) return false;
  return !(variable.size() >= 5 && EqualsIgnoreCase(variable.substr(0, 5), "DAPR_"));
}

absl::StatusOr<Config> ParseConfig(const Metadata& metadata) {
  Config config;
  config.prefix = metadata.GetString("prefix");
  return config;
}

absl::StatusOr<std::unique_ptr<SecretStore>> Create(const ComponentContext& context) {
  auto config = ParseConfig(context.metadata);
  if (!config.ok()) return config.status();
  return std::make_unique<LocalEnvStore>(*std::move(config));
}

}  // namespace remora::components::secretstores::local_env
