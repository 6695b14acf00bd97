#include "blocks/secrets/secrets_block.h"

#include <optional>
#include <utility>

#include "remora/components/common/strings.h"
#include "remora/runtime/errors.h"

namespace remora::runtime {

using errors::Code;

SecretsBlock::SecretsBlock(std::vector<SecretsScope> scopes) {
  for (SecretsScope& scope : scopes) {
    std::string name = scope.store_name;
    scopes_.insert_or_assign(std::move(name), std::move(scope));
  }
}

void SecretsBlock::AddStore(std::string name, std::string type, std::string version,
                            std::unique_ptr<secrets::SecretStore> store) {
  Entry entry;
  entry.info.name = name;
  entry.info.type = std::move(type);
  entry.info.version = std::move(version);
  for (secrets::Feature f : store->Features()) {
    entry.info.capabilities.push_back(secrets::FeatureName(f));
  }
  entry.store = std::move(store);
  stores_.insert_or_assign(std::move(name), std::move(entry));
}

absl::StatusOr<const SecretsBlock::Entry*> SecretsBlock::Lookup(std::string_view store) const {
  if (stores_.empty()) {
    return errors::Make(Code::kSecretStoresNotConfigured, "secret store is not configured");
  }
  auto it = stores_.find(store);
  if (it == stores_.end()) {
    return errors::Make(Code::kSecretStoreNotFound,
                        StrCat("failed finding secret store with key ", store));
  }
  return &it->second;
}

bool SecretsBlock::Allowed(std::string_view store, std::string_view key) const {
  auto it = scopes_.find(store);
  return it == scopes_.end() || it->second.IsSecretAllowed(key);
}

void SecretsBlock::Get(std::string_view store, std::string key, secrets::RequestMetadata metadata,
                       Callback<secrets::SecretData> done) {
  auto entry = Lookup(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  if (!Allowed(store, key)) {
    return std::move(done)(
        errors::Make(Code::kSecretPermissionDenied,
                     StrCat("access denied by policy to get \"", key, "\" from \"", store, "\"")));
  }
  (*entry)->store->GetSecret(key, std::move(metadata),
                             [key, name = std::string(store), done = std::move(done)](
                                 absl::StatusOr<secrets::SecretData> result) mutable {
                               if (!result.ok()) {
                                 return std::move(done)(errors::Make(
                                     Code::kSecretGet, StrCat("failed getting secret with key ",
                                                              key, " from secret store ", name,
                                                              ": ", MessageOf(result.status()))));
                               }
                               std::move(done)(std::move(result));
                             });
}

void SecretsBlock::BulkGet(std::string_view store, secrets::RequestMetadata metadata,
                           Callback<secrets::BulkSecretData> done) {
  auto entry = Lookup(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  // A copy: the answer may arrive on another thread while the runtime shuts down.
  std::optional<SecretsScope> filter;
  if (auto scope = scopes_.find(store); scope != scopes_.end()) filter = scope->second;
  (*entry)->store->BulkGetSecret(
      std::move(metadata),
      [filter = std::move(filter), name = std::string(store),
       done = std::move(done)](absl::StatusOr<secrets::BulkSecretData> result) mutable {
        if (!result.ok()) {
          return std::move(done)(
              errors::Make(Code::kSecretGet, StrCat("failed getting secrets from secret store ",
                                                    name, ": ", MessageOf(result.status()))));
        }
        if (filter) {
          std::erase_if(*result, [&filter](const auto& item) {
            return !filter->IsSecretAllowed(item.first);
          });
        }
        std::move(done)(std::move(result));
      });
}

secrets::SecretStore* SecretsBlock::Find(std::string_view store) const {
  auto it = stores_.find(store);
  return it == stores_.end() ? nullptr : it->second.store.get();
}

std::vector<SecretsBlock::StoreInfo> SecretsBlock::Stores() const {
  std::vector<StoreInfo> out;
  for (const auto& [name, entry] : stores_) out.push_back(entry.info);
  return out;
}

absl::Status SecretsBlock::Health() const {
  for (const auto& [name, entry] : stores_) {
    if (absl::Status s = entry.store->Health(); !s.ok()) {
      return MakeStatus(s.code(), StrCat("secret store ", name, ": ", MessageOf(s)));
    }
  }
  return absl::OkStatus();
}

}  // namespace remora::runtime
