// The secrets building block over a real local.file store: Dapr's error codes, scopes on single
// and bulk reads; and the Configuration resource's secret scopes.

#include "blocks/secrets/secrets_block.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "local_file_store.h"
#include "remora/runtime/config_resource.h"
#include "remora/runtime/errors.h"
#include "tests/tools/test_env.h"

namespace remora::runtime {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

std::unique_ptr<secrets::SecretStore> FileStore() {
  std::string dir =
      testing::WriteTempFile("s.json", R"({"db-password": "pw", "api-key": "k", "cert": "c"})");
  components::ComponentContext context;
  context.metadata = components::Metadata({{"secretsFile", dir + "/s.json"}});
  auto store = components::secretstores::local_file::Create(context);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

// Every store here answers inline.
absl::StatusOr<secrets::SecretData> Get(SecretsBlock& block, std::string_view store,
                                        std::string key) {
  std::optional<absl::StatusOr<secrets::SecretData>> out;
  block.Get(store, std::move(key), {}, [&](absl::StatusOr<secrets::SecretData> r) { out = r; });
  EXPECT_TRUE(out.has_value());
  return out.value_or(absl::InternalError("no answer"));
}

absl::StatusOr<secrets::BulkSecretData> Bulk(SecretsBlock& block, std::string_view store) {
  std::optional<absl::StatusOr<secrets::BulkSecretData>> out;
  block.BulkGet(store, {}, [&](absl::StatusOr<secrets::BulkSecretData> r) { out = r; });
  EXPECT_TRUE(out.has_value());
  return out.value_or(absl::InternalError("no answer"));
}

void ExpectCode(const absl::Status& status, errors::Code expected, int http) {
  errors::Code code;
  ASSERT_TRUE(errors::CodeOf(status, &code)) << status;
  EXPECT_EQ(code, expected) << status;
  EXPECT_EQ(errors::ToHttp(status).status, http) << status;
}

TEST(SecretsBlock, NoStoresIsNotConfigured) {
  SecretsBlock block;
  auto r = Get(block, "any", "k");
  ExpectCode(r.status(), errors::Code::kSecretStoresNotConfigured, 500);
  ExpectCode(Bulk(block, "any").status(), errors::Code::kSecretStoresNotConfigured, 500);
}

TEST(SecretsBlock, UnknownStoreIs401AndAMissingSecretIsSecretGet) {
  SecretsBlock block;
  block.AddStore("files", "secretstores.local.file", "v1", FileStore());
  auto unknown = Get(block, "other", "k");
  ExpectCode(unknown.status(), errors::Code::kSecretStoreNotFound, 401);
  EXPECT_EQ(unknown.status().message(), "failed finding secret store with key other");
  auto missing = Get(block, "files", "nope");
  ExpectCode(missing.status(), errors::Code::kSecretGet, 500);
  EXPECT_EQ(missing.status().message(),
            "failed getting secret with key nope from secret store files: secret nope not found");
  auto ok = Get(block, "files", "db-password");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(*ok, UnorderedElementsAre(Pair("db-password", "pw")));
  ASSERT_EQ(block.Stores().size(), 1u);
  EXPECT_TRUE(block.Stores()[0].capabilities.empty());
  EXPECT_NE(block.Find("files"), nullptr);
  EXPECT_EQ(block.Find("other"), nullptr);
}

TEST(SecretsBlock, ScopesApplyToGetAndFilterBulk) {
  SecretsScope deny_by_default{"allowlist", false, {"db-password"}, {}};
  SecretsScope deny_list{"denylist", true, {}, {"cert"}};
  SecretsBlock block({deny_by_default, deny_list});
  block.AddStore("allowlist", "secretstores.local.file", "v1", FileStore());
  block.AddStore("denylist", "secretstores.local.file", "v1", FileStore());
  block.AddStore("open", "secretstores.local.file", "v1", FileStore());

  EXPECT_TRUE(Get(block, "allowlist", "db-password").ok());
  auto denied = Get(block, "allowlist", "api-key");
  ExpectCode(denied.status(), errors::Code::kSecretPermissionDenied, 403);
  EXPECT_EQ(denied.status().message(),
            R"(access denied by policy to get "api-key" from "allowlist")");
  ExpectCode(Get(block, "denylist", "cert").status(), errors::Code::kSecretPermissionDenied, 403);
  EXPECT_TRUE(Get(block, "denylist", "api-key").ok());
  EXPECT_TRUE(Get(block, "open", "cert").ok());

  auto allow_bulk = Bulk(block, "allowlist");
  ASSERT_TRUE(allow_bulk.ok());
  EXPECT_THAT(*allow_bulk, UnorderedElementsAre(
                               Pair("db-password", secrets::SecretData{{"db-password", "pw"}})));
  auto deny_bulk = Bulk(block, "denylist");
  ASSERT_TRUE(deny_bulk.ok());
  EXPECT_EQ(deny_bulk->size(), 2u);
  EXPECT_EQ(deny_bulk->count("cert"), 0u);
  EXPECT_EQ(Bulk(block, "open")->size(), 3u);
}

TEST(SecretsScope, DaprsRule) {
  SecretsScope scope;
  scope.store_name = "s";
  EXPECT_TRUE(scope.IsSecretAllowed("x"));
  scope.default_allow = false;
  EXPECT_FALSE(scope.IsSecretAllowed("x"));
  scope.denied_secrets = {"x"};
  scope.default_allow = true;
  EXPECT_FALSE(scope.IsSecretAllowed("x"));
  EXPECT_TRUE(scope.IsSecretAllowed("y"));
  // A non-empty allow list is all that counts, even over the deny list and the default.
  scope.allowed_secrets = {"x"};
  EXPECT_TRUE(scope.IsSecretAllowed("x"));
  EXPECT_FALSE(scope.IsSecretAllowed("y"));
  EXPECT_FALSE(scope.IsSecretAllowed("X"));  // exact match
}

TEST(ConfigurationResource, ParsesSecretScopes) {
  ConfigurationSpec spec;
  ASSERT_TRUE(ParseConfiguration(R"(apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: { name: appconfig }
spec:
  tracing: { samplingRate: "1" }
  features: [ { name: HotReload, enabled: true } ]
  secrets:
    scopes:
    - storeName: vault
      defaultAccess: Deny
      allowedSecrets: ["db-password", "api"]
    - { storeName: files, deniedSecrets: [cert] }
)",
                                 "c.yaml", &spec)
                  .ok());
  EXPECT_THAT(spec.names, ::testing::ElementsAre("appconfig"));
  ASSERT_EQ(spec.secret_scopes.size(), 2u);
  EXPECT_EQ(spec.secret_scopes[0].store_name, "vault");
  EXPECT_FALSE(spec.secret_scopes[0].default_allow);
  EXPECT_THAT(spec.secret_scopes[0].allowed_secrets, ::testing::ElementsAre("db-password", "api"));
  EXPECT_TRUE(spec.secret_scopes[1].default_allow);
  EXPECT_THAT(spec.secret_scopes[1].denied_secrets, ::testing::ElementsAre("cert"));

  // A later file replaces an earlier one's scope for the same store.
  ASSERT_TRUE(ParseConfiguration("kind: Configuration\nspec:\n  secrets:\n    scopes:\n"
                                 "    - { storeName: files, defaultAccess: deny }\n",
                                 "d.yaml", &spec)
                  .ok());
  ASSERT_EQ(spec.secret_scopes.size(), 2u);
  EXPECT_EQ(spec.secret_scopes[1].store_name, "files");
  EXPECT_FALSE(spec.secret_scopes[1].default_allow);
  EXPECT_TRUE(spec.secret_scopes[1].denied_secrets.empty());
}

TEST(ConfigurationResource, ErrorsNameFileDocumentAndField) {
  auto error = [](const std::string& yaml) {
    ConfigurationSpec spec;
    return std::string(ParseConfiguration(yaml, "c.yaml", &spec).message());
  };
  EXPECT_EQ(
      error("kind: Configuration\nspec: { secrets: { scopes: [ { defaultAccess: deny } ] } }"),
      "c.yaml (document 1): spec.secrets.scopes[0].storeName is required");
  EXPECT_EQ(error("kind: Configuration\nspec: { secrets: { scopes: [ { storeName: s, "
                  "defaultAccess: dney } ] } }"),
            "c.yaml (document 1): spec.secrets.scopes[0].defaultAccess must be allow or deny, "
            "not \"dney\"");
  EXPECT_THAT(error("kind: Configuration\nspec: { secrets: { scopes: [ { storeName: s, "
                    "allowedSecrets: x } ] } }"),
              HasSubstr("spec.secrets.scopes[0].allowedSecrets must be a list"));
  EXPECT_THAT(error("kind: Configuration\nspec: { secrets: [1] }"),
              HasSubstr("spec.secrets must be a mapping"));
  EXPECT_THAT(error("kind: [unterminated"), HasSubstr("c.yaml: YAML syntax error at line 1"));
  auto missing = LoadConfiguration({"/nonexistent/config.yaml"});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("--config /nonexistent/config.yaml: cannot read"));
}

}  // namespace
}  // namespace remora::runtime
