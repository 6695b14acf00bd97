// remorad's secrets API over HTTP with real stores: local.file, and Vault through the Vault test
// server. Covers Dapr's error codes (the 401 for an unknown store, 403 for a scope), Vault faults
// (down, wrong token, sealed) answered as errors naming the store while the sidecar stays up, and
// secretKeyRef resolution at start-up, including the failures that must stop it.

#include <csignal>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/tools/test_env.h"
#include "tests/tools/vault_launcher.h"

namespace remora::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kVaultToken[] = "e2e-root-token";

std::string FileStoreYaml(const std::string& name, const std::string& file,
                          const std::string& extra = "") {
  return StrCat("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: { name: ", name,
                " }\nspec:\n  type: secretstores.local.file\n  version: v1\n  metadata:\n"
                "  - { name: secretsFile, value: \"",
                file, "\" }\n", extra, "---\n");
}

// `token` is a whole metadata item; `after_spec` goes after spec (auth: ...).
std::string VaultYamlWith(const std::string& name, const std::string& addr,
                          const std::string& token_item, const std::string& after_spec = "") {
  return StrCat("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: { name: ", name,
                " }\nspec:\n  type: secretstores.hashicorp.vault\n  version: v1\n  metadata:\n"
                "  - { name: vaultAddr, value: \"",
                addr, "\" }\n", token_item, after_spec, "---\n");
}

std::string VaultYaml(const std::string& name, const std::string& addr, const std::string& token) {
  return VaultYamlWith(name, addr, StrCat("  - { name: vaultToken, value: \"", token, "\" }\n"));
}

// A directory with the secrets file and the resources; returns the resources directory.
std::string Resources(const std::string& yaml) { return WriteTempFile("components.yaml", yaml); }

http::Response Call(int port, const std::string& target) {
  auto r = HttpCall("127.0.0.1", port, "GET", target);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : http::Response{};
}

json Body(const http::Response& r) { return json::parse(r.body, nullptr, false); }

// Starts remorad expecting it to fail; answers its exit code and output.
std::pair<std::optional<int>, std::string> StartFailing(const std::string& resources) {
  auto process = ChildProcess::Start({RemoradPath(), "--app-id", "e2e", "--resources-path",
                                      resources, "--dapr-http-port", std::to_string(FreePort()),
                                      "--dapr-grpc-port", std::to_string(FreePort())});
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return {std::nullopt, ""};
  auto code = (*process)->Wait(std::chrono::seconds(20));
  return {code, (*process)->Output()};
}

class SecretsE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto vault =
        VaultServer::Start(kVaultToken, R"({"dapr/db": {"user": "app", "password": "vault-pw"},
                        "dapr/team/api": {"key": "k-1"}})");
    ASSERT_TRUE(vault.ok()) << vault.status();
    vault_ = vault->release();
    // Vault's own token comes from the file store: a secret store resolved through another.
    secrets_dir_ = WriteTempFile(
        "secrets.json",
        R"({"db-password": "file-pw", "nested": {"a": "1"}, "hidden": "h", "vault-token": ")" +
            std::string(kVaultToken) + R"("})");
    const std::string file = secrets_dir_ + "/secrets.json";
    std::string yaml =
        // Listed before the store it reads its token from: secret stores load in dependency
        // order, not file order.
        VaultYamlWith("vault", vault_->address(),
                      "  - name: vaultToken\n    secretKeyRef: { name: vault-token }\n",
                      "auth: { secretStore: localsecrets }\n") +
        FileStoreYaml("localsecrets", file) + FileStoreYaml("scoped", file) +
        // The state store reads a metadata value through auth.secretStore (and still loads).
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: { name: statestore }\n"
        "spec:\n  type: state.in-memory\n  version: v1\n  metadata:\n"
        "  - name: actorStateStore\n    secretKeyRef: { name: \"nested:a\" }\n"
        "auth: { secretStore: localsecrets }\n---\n";
    resources_ = Resources(yaml);
    config_dir_ = WriteTempFile("config.yaml", R"(apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: { name: appconfig }
spec:
  secrets:
    scopes:
    - storeName: scoped
      defaultAccess: deny
      allowedSecrets: ["db-password", "nested:a"]
)");
    auto started = StartRemorad({"--app-id", "e2e", "--resources-path", resources_, "--config",
                                 config_dir_ + "/config.yaml"});
    ASSERT_TRUE(started.ok()) << started.status();
    sidecar_ = new Remorad(*std::move(started));
  }
  static void TearDownTestSuite() {
    delete sidecar_;
    delete vault_;
    sidecar_ = nullptr;
    vault_ = nullptr;
  }
  static http::Response Get(const std::string& target) { return Call(sidecar_->http_port, target); }

  static Remorad* sidecar_;
  static VaultServer* vault_;
  static std::string secrets_dir_;
  static std::string resources_;
  static std::string config_dir_;
};
Remorad* SecretsE2E::sidecar_ = nullptr;
VaultServer* SecretsE2E::vault_ = nullptr;
std::string SecretsE2E::secrets_dir_;
std::string SecretsE2E::resources_;
std::string SecretsE2E::config_dir_;

TEST_F(SecretsE2E, FileStoreSecretsAndBulk) {
  auto single = Get("/v1.0/secrets/localsecrets/db-password");
  ASSERT_EQ(single.status, 200) << single.body;
  EXPECT_EQ(single.Header("Content-Type"), "application/json");
  EXPECT_EQ(Body(single), json({{"db-password", "file-pw"}}));
  EXPECT_EQ(Body(Get("/v1.0/secrets/localsecrets/nested%3Aa")), json({{"nested:a", "1"}}));
  auto bulk = Get("/v1.0/secrets/localsecrets/bulk");
  ASSERT_EQ(bulk.status, 200) << bulk.body;
  EXPECT_EQ(Body(bulk)["hidden"], json({{"hidden", "h"}}));
  EXPECT_EQ(Body(bulk).size(), 4u);
}

TEST_F(SecretsE2E, MissingSecretIsErrSecretGet) {
  auto missing = Get("/v1.0/secrets/localsecrets/nope");
  EXPECT_EQ(missing.status, 500);
  EXPECT_EQ(Body(missing)["errorCode"], "ERR_SECRET_GET");
  EXPECT_EQ(Body(missing)["message"],
            "failed getting secret with key nope from secret store localsecrets: secret nope not "
            "found");
}

TEST_F(SecretsE2E, UnknownStoreIs401) {
  auto r = Get("/v1.0/secrets/nosuchstore/db-password");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Body(r)["errorCode"], "ERR_SECRET_STORE_NOT_FOUND");
  EXPECT_EQ(Body(r)["message"], "failed finding secret store with key nosuchstore");
  EXPECT_EQ(Get("/v1.0/secrets/nosuchstore/bulk").status, 401);
}

TEST_F(SecretsE2E, ScopesDenyAndFilterBulk) {
  EXPECT_EQ(Get("/v1.0/secrets/scoped/db-password").status, 200);
  auto denied = Get("/v1.0/secrets/scoped/hidden");
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(Body(denied)["errorCode"], "ERR_PERMISSION_DENIED");
  EXPECT_EQ(Body(denied)["message"], R"(access denied by policy to get "hidden" from "scoped")");
  auto bulk = Get("/v1.0/secrets/scoped/bulk");
  ASSERT_EQ(bulk.status, 200);
  EXPECT_EQ(Body(bulk), json({{"db-password", {{"db-password", "file-pw"}}},
                              {"nested:a", {{"nested:a", "1"}}}}));
  // The same file through an unscoped store is all there.
  EXPECT_EQ(Get("/v1.0/secrets/localsecrets/hidden").status, 200);
}

TEST_F(SecretsE2E, VaultWithItsTokenFromTheFileStore) {
  auto db = Get("/v1.0/secrets/vault/db");
  ASSERT_EQ(db.status, 200) << db.body;
  EXPECT_EQ(Body(db), json({{"user", "app"}, {"password", "vault-pw"}}));
  auto nested = Get("/v1.0/secrets/vault/team%2Fapi");
  ASSERT_EQ(nested.status, 200) << nested.body;
  EXPECT_EQ(Body(nested), json({{"key", "k-1"}}));
  ASSERT_TRUE(vault_->Put("dapr/db", {{"password", "v2"}}).ok());
  EXPECT_EQ(Body(Get("/v1.0/secrets/vault/db?metadata.version_id=1"))["password"], "vault-pw");
  EXPECT_EQ(Body(Get("/v1.0/secrets/vault/db"))["password"], "v2");
  auto bulk = Get("/v1.0/secrets/vault/bulk");
  ASSERT_EQ(bulk.status, 200) << bulk.body;
  EXPECT_EQ(Body(bulk)["team/api"], json({{"key", "k-1"}}));
}

TEST_F(SecretsE2E, SealedVaultIsAnErrorNamingTheStore) {
  ASSERT_TRUE(vault_->Seal().ok());
  auto r = Get("/v1.0/secrets/vault/db");
  ASSERT_TRUE(vault_->Unseal().ok());
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(Body(r)["errorCode"], "ERR_SECRET_GET");
  EXPECT_THAT(Body(r)["message"].get<std::string>(),
              HasSubstr("from secret store vault: vault at http://127.0.0.1:"));
  EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("HTTP 503: Vault is sealed"));
}

TEST_F(SecretsE2E, StateStoreWithASecretKeyRefLoaded) {
  auto metadata = Get("/v1.0/metadata");
  ASSERT_EQ(metadata.status, 200);
  json components = Body(metadata)["components"];
  auto has = [&](const std::string& name, const std::string& type) {
    for (const json& c : components) {
      if (c["name"] == name && c["type"] == type) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("statestore", "state.in-memory")) << components;
  EXPECT_TRUE(has("vault", "secretstores.hashicorp.vault")) << components;
  EXPECT_TRUE(has("localsecrets", "secretstores.local.file")) << components;
  EXPECT_EQ(HttpCall("127.0.0.1", sidecar_->http_port, "POST", "/v1.0/state/statestore",
                     R"([{"key":"k","value":1}])")
                ->status,
            204);
}

// ---- separate sidecars ----

TEST(SecretsE2EStandalone, NoSecretStoresIs500NotConfigured) {
  auto sidecar = StartRemorad({"--app-id", "e2e"});
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto r = Call(sidecar->http_port, "/v1.0/secrets/any/key");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(Body(r)["errorCode"], "ERR_SECRET_STORES_NOT_CONFIGURED");
}

TEST(SecretsE2EStandalone, VaultDownOrWrongTokenIsAClearErrorAndTheSidecarStaysUp) {
  auto vault = VaultServer::Start(kVaultToken, R"({"dapr/db": {"p": "x"}})");
  ASSERT_TRUE(vault.ok()) << vault.status();
  auto sidecar =
      StartRemorad({"--app-id", "e2e", "--resources-path",
                    Resources(VaultYaml("goodvault", (*vault)->address(), kVaultToken) +
                              VaultYaml("badtoken", (*vault)->address(), "wrong-token"))});
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  const int port = sidecar->http_port;

  auto wrong = Call(port, "/v1.0/secrets/badtoken/db");
  EXPECT_EQ(wrong.status, 500);
  EXPECT_EQ(Body(wrong)["errorCode"], "ERR_SECRET_GET");
  EXPECT_THAT(Body(wrong)["message"].get<std::string>(), HasSubstr("from secret store badtoken: "));
  EXPECT_THAT(Body(wrong)["message"].get<std::string>(),
              HasSubstr("permission denied: check the vault token"));
  EXPECT_EQ(Call(port, "/v1.0/secrets/badtoken/bulk").status, 500);
  EXPECT_EQ(Call(port, "/v1.0/secrets/goodvault/db").status, 200);

  (*vault)->Kill();
  for (const char* target : {"/v1.0/secrets/goodvault/db", "/v1.0/secrets/goodvault/bulk"}) {
    auto down = Call(port, target);
    EXPECT_EQ(down.status, 500) << target;
    EXPECT_EQ(Body(down)["errorCode"], "ERR_SECRET_GET");
    EXPECT_THAT(Body(down)["message"].get<std::string>(),
                HasSubstr(StrCat("secret store goodvault: vault at ", (*vault)->address(),
                                 " is unreachable")));
  }
  EXPECT_EQ(Call(port, "/v1.0/healthz").status, 204);
  EXPECT_TRUE(sidecar->process->Running());
}

TEST(SecretsE2EStandalone, UnresolvableSecretKeyRefStopsStartUpNamingComponentAndKey) {
  std::string dir = WriteTempFile("s.json", R"({"redis": {"password": "pw"}, "flat": "f"})");
  const std::string file = dir + "/s.json";
  auto state = [](const std::string& ref, const std::string& auth) {
    return StrCat(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: { name: cache }\nspec:\n"
        "  type: state.in-memory\n  version: v1\n  metadata:\n  - name: redisPassword\n"
        "    secretKeyRef: ",
        ref, "\n", auth, "---\n");
  };
  struct Case {
    std::string yaml;
    std::vector<std::string> expected;
  };
  std::vector<Case> cases = {
      // The secret exists but not the key.
      {FileStoreYaml("files", file) +
           state("{ name: flat, key: nokey }", "auth: { secretStore: files }\n"),
       {"component cache", "metadata redisPassword", "key: nokey", "has no key nokey"}},
      // The secret does not exist.
      {FileStoreYaml("files", file) +
           state("{ name: missing, key: password }", "auth: { secretStore: files }\n"),
       {"component cache", "key: password", "secret missing not found"}},
      // auth.secretStore names no loaded store.
      {FileStoreYaml("files", file) +
           state("{ name: flat }", "auth: { secretStore: nosuchstore }\n"),
       {"component cache", "key: flat", "auth.secretStore \"nosuchstore\" is not a loaded",
        "loaded: files"}},
      // No auth.secretStore at all.
      {state("{ name: flat }", ""), {"component cache", "no auth.secretStore"}},
  };
  for (const Case& c : cases) {
    auto [code, output] = StartFailing(Resources(c.yaml));
    ASSERT_TRUE(code.has_value()) << "remorad did not exit: " << output;
    EXPECT_NE(*code, 0) << output;
    for (const std::string& text : c.expected) EXPECT_THAT(output, HasSubstr(text)) << c.yaml;
  }
}

TEST(SecretsE2EStandalone, BadSecretStoresStopStartUpWithAClearError) {
  auto [missing_file, out1] =
      StartFailing(Resources(FileStoreYaml("files", "/nonexistent/secrets.json")));
  ASSERT_TRUE(missing_file.has_value());
  EXPECT_NE(*missing_file, 0);
  EXPECT_THAT(out1, HasSubstr("component files (secretstores.local.file): secretsFile "
                              "/nonexistent/secrets.json: cannot read"));

  std::string config = WriteTempFile("c.yaml", R"(kind: Configuration
spec: { secrets: { scopes: [ { storeName: s, defaultAccess: maybe } ] } }
)");
  auto process = ChildProcess::Start({RemoradPath(), "--config", config + "/c.yaml",
                                      "--dapr-http-port", std::to_string(FreePort()),
                                      "--dapr-grpc-port", std::to_string(FreePort())});
  ASSERT_TRUE(process.ok());
  auto code = (*process)->Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  EXPECT_THAT((*process)->Output(),
              HasSubstr("spec.secrets.scopes[0].defaultAccess must be allow or deny"));
}

}  // namespace
}  // namespace remora::testing
