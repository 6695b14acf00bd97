// ParseConfig of the secret stores (pure), the local.file flattening rules, the Vault request
// targets, and each store's metadata.yaml kept in sync with what its ParseConfig reads.

#include <cstdlib>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "local_env_store.h"
#include "local_file_store.h"
#include "vault_store.h"

namespace remora::components::secretstores {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

Metadata Meta(std::map<std::string, std::string> values) { return Metadata(std::move(values)); }

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// ---- local.file ----

TEST(LocalFileConfig, DefaultsAndRequiredFile) {
  auto missing = local_file::ParseConfig(Meta({}));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(missing.status()), HasSubstr("secretsFile is required"));

  auto config = local_file::ParseConfig(Meta({{"secretsFile", "s.json"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->secrets_file, "s.json");
  EXPECT_EQ(config->nested_separator, ":");
  EXPECT_FALSE(config->multi_valued);
}

TEST(LocalFileConfig, KeysAreCaseInsensitiveAndTyped) {
  auto config = local_file::ParseConfig(
      Meta({{"SECRETSFILE", "/x.json"}, {"nestedseparator", "__"}, {"multiValued", "TRUE"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->secrets_file, "/x.json");
  EXPECT_EQ(config->nested_separator, "__");
  EXPECT_TRUE(config->multi_valued);

  auto bad = local_file::ParseConfig(Meta({{"secretsFile", "x"}, {"multiValued", "maybe"}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Message(bad.status()), HasSubstr("multiValued"));
}

TEST(LocalFileSecrets, SingleValuedFlattensObjectsAndArrays) {
  local_file::Config config;
  auto secrets = local_file::ParseSecrets(
      R"({"redis": {"password": "pw", "hosts": ["a", {"h": "b"}]}, "n": 42, "f": 1.5,
          "t": true, "z": null, "plain": "v"})",
      config);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  EXPECT_THAT(*secrets, UnorderedElementsAre(
                            Pair("redis:password", SecretData{{"redis:password", "pw"}}),
                            Pair("redis:hosts:0", SecretData{{"redis:hosts:0", "a"}}),
                            Pair("redis:hosts:1:h", SecretData{{"redis:hosts:1:h", "b"}}),
                            Pair("n", SecretData{{"n", "42"}}), Pair("f", SecretData{{"f", "1.5"}}),
                            Pair("t", SecretData{{"t", "true"}}), Pair("z", SecretData{{"z", ""}}),
                            Pair("plain", SecretData{{"plain", "v"}})));
}

TEST(LocalFileSecrets, MultiValuedKeepsTopLevelSecrets) {
  local_file::Config config;
  config.multi_valued = true;
  config.nested_separator = ".";
  auto secrets = local_file::ParseSecrets(
      R"({"db": {"user": "u", "opts": {"ssl": true}, "hosts": ["a"]}, "token": "t",
          "skipped_number": 3, "skipped_array": ["x"]})",
      config);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  EXPECT_THAT(*secrets,
              UnorderedElementsAre(
                  Pair("db", SecretData{{"user", "u"}, {"opts.ssl", "true"}, {"hosts.0", "a"}}),
                  Pair("token", SecretData{{"token", "t"}})));
}

TEST(LocalFileSecrets, RejectsWhatCannotMeanOneThing) {
  local_file::Config config;
  auto dup = local_file::ParseSecrets(R"({"a:b": "1", "a": {"b": "2"}})", config);
  ASSERT_FALSE(dup.ok());
  EXPECT_THAT(Message(dup.status()), HasSubstr("duplicate secret name \"a:b\""));
  EXPECT_FALSE(local_file::ParseSecrets("[1, 2]", config).ok());
  EXPECT_FALSE(local_file::ParseSecrets("{not json", config).ok());
  auto empty = local_file::ParseSecrets("{}", config);
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(*empty, IsEmpty());
}

// ---- local.env ----

TEST(LocalEnvConfig, Prefix) {
  auto none = local_env::ParseConfig(Meta({}));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->prefix, "");
  auto with = local_env::ParseConfig(Meta({{"prefix", "APP_"}}));
  ASSERT_TRUE(with.ok());
  EXPECT_EQ(with->prefix, "APP_");
}

TEST(LocalEnvConfig, ForbiddenNames) {
  EXPECT_FALSE(local_env::IsAllowed("APP_API_TOKEN"));
  EXPECT_FALSE(local_env::IsAllowed("app_api_token"));
  EXPECT_FALSE(local_env::IsAllowed("DAPR_API_TOKEN"));
  EXPECT_FALSE(local_env::IsAllowed("Dapr_anything"));
  EXPECT_TRUE(local_env::IsAllowed("DAPR"));
  EXPECT_TRUE(local_env::IsAllowed("MY_DAPR_THING"));
  EXPECT_TRUE(local_env::IsAllowed("APP_API_TOKEN_2"));
}

// ---- Vault ----

TEST(VaultConfig, DefaultsNeedAToken) {
  auto none = vault::ParseConfig(Meta({{"vaultAddr", "http://127.0.0.1:8200"}}));
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(Message(none.status()), HasSubstr("vaultToken and vaultTokenMountPath"));
  auto both = vault::ParseConfig(
      Meta({{"vaultAddr", "http://v"}, {"vaultToken", "t"}, {"vaultTokenMountPath", "/f"}}));
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(Message(both.status()), HasSubstr("only one"));

  auto config =
      vault::ParseConfig(Meta({{"vaultAddr", "http://127.0.0.1:8200"}, {"vaultToken", "t"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->tls);
  EXPECT_EQ(config->host, "127.0.0.1");
  EXPECT_EQ(config->port, 8200);
  EXPECT_EQ(config->base_path, "");
  EXPECT_EQ(config->token, "t");
  EXPECT_EQ(config->kv_prefix, "dapr");
  EXPECT_EQ(config->engine_path, "secret");
  EXPECT_EQ(config->value_type, vault::ValueType::kMap);
  EXPECT_FALSE(config->skip_verify);
}

TEST(VaultConfig, Addresses) {
  auto parse = [](std::string addr) {
    return vault::ParseConfig(Meta({{"vaultAddr", addr}, {"vaultToken", "t"}}));
  };
  auto v6 = parse("http://[::1]:9000/vault/");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9000);
  EXPECT_EQ(v6->base_path, "/vault");
  auto name = parse("HTTP://vault.internal");
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(name->host, "vault.internal");
  EXPECT_EQ(name->port, 80);
  for (const char* bad : {"vault:8200", "ftp://x", "http://", "http://h:0", "http://h:99999",
                          "http://h:port", "http://::1:8200", "http://u@h", "http://h/?q"}) {
    auto r = parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(Message(r.status()), HasSubstr("vaultAddr")) << bad;
  }
}

TEST(VaultConfig, HttpsByDefault) {
  auto defaulted = vault::ParseConfig(Meta({{"vaultToken", "t"}}));
  ASSERT_TRUE(defaulted.ok()) << defaulted.status();
  EXPECT_EQ(defaulted->vault_addr, "https://127.0.0.1:8200");
  EXPECT_TRUE(defaulted->tls);
  EXPECT_EQ(defaulted->port, 8200);
  auto implicit_port =
      vault::ParseConfig(Meta({{"vaultAddr", "https://vault"}, {"vaultToken", "t"}}));
  ASSERT_TRUE(implicit_port.ok());
  EXPECT_EQ(implicit_port->port, 443);
}

TEST(VaultConfig, PrefixEngineValueTypeAndTls) {
  auto config = vault::ParseConfig(Meta({{"vaultAddr", "http://v:1"},
                                         {"vaultToken", "t"},
                                         {"vaultKVPrefix", "team"},
                                         {"enginePath", "kv"},
                                         {"vaultValueType", "text"},
                                         {"skipVerify", "true"},
                                         {"tlsServerName", "vault.local"},
                                         {"caPem", "PEM"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->kv_prefix, "team");
  EXPECT_EQ(config->engine_path, "kv");
  EXPECT_EQ(config->value_type, vault::ValueType::kText);
  EXPECT_TRUE(config->skip_verify);
  EXPECT_EQ(config->tls_server_name, "vault.local");
  EXPECT_EQ(config->ca_pem, "PEM");

  auto no_prefix = vault::ParseConfig(Meta({{"vaultAddr", "http://v:1"},
                                            {"vaultToken", "t"},
                                            {"vaultKVPrefix", "team"},
                                            {"vaultKVUsePrefix", "false"}}));
  ASSERT_TRUE(no_prefix.ok());
  EXPECT_EQ(no_prefix->kv_prefix, "");

  auto bad_type = vault::ParseConfig(
      Meta({{"vaultAddr", "http://v:1"}, {"vaultToken", "t"}, {"vaultValueType", "json"}}));
  ASSERT_FALSE(bad_type.ok());
  EXPECT_THAT(Message(bad_type.status()), HasSubstr("vaultValueType \"json\""));
  auto bad_bool = vault::ParseConfig(
      Meta({{"vaultAddr", "http://v:1"}, {"vaultToken", "t"}, {"vaultKVUsePrefix", "nope"}}));
  ASSERT_FALSE(bad_bool.ok());
  EXPECT_THAT(Message(bad_bool.status()), HasSubstr("vaultKVUsePrefix"));
}

TEST(VaultConfig, Targets) {
  auto config = vault::ParseConfig(Meta({{"vaultAddr", "http://v:1/base"}, {"vaultToken", "t"}}));
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(vault::SecretTarget(*config, "db", "0"), "/base/v1/secret/data/dapr/db?version=0");
  EXPECT_EQ(vault::SecretTarget(*config, "team/a b?#%", "2"),
            "/base/v1/secret/data/dapr/team/a%20b%3F%23%25?version=2");
  EXPECT_EQ(vault::ListTarget(*config, ""), "/base/v1/secret/metadata/dapr/");
  EXPECT_EQ(vault::ListTarget(*config, "team/"), "/base/v1/secret/metadata/dapr/team/");
  config->kv_prefix.clear();
  EXPECT_EQ(vault::SecretTarget(*config, "db", "0"), "/base/v1/secret/data/db?version=0");
  EXPECT_EQ(vault::ListTarget(*config, ""), "/base/v1/secret/metadata/");
}

// ---- metadata.yaml ↔ ParseConfig ----

// Every name a metadata.yaml lists, and only those, is read by ParseConfig when given (checked
// through the metadata's usage tracking, which is what reports unknown keys to users).
void ExpectInSync(const std::string& folder,
                  const std::function<absl::Status(const Metadata&)>& parse,
                  std::map<std::string, std::string> values,
                  const std::set<std::string>& read_in_another_run = {}) {
  const char* source = std::getenv("REMORA_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "REMORA_SOURCE_DIR is not set (ctest sets it)";
  YAML::Node doc =
      YAML::LoadFile(std::string(source) + "/components/secretstores/" + folder + "/metadata.yaml");
  std::set<std::string> documented;
  for (const YAML::Node& item : doc["metadata"]) documented.insert(item["name"].as<std::string>());
  std::set<std::string> given;
  for (const auto& [k, v] : values) given.insert(k);
  given.insert(read_in_another_run.begin(), read_in_another_run.end());
  EXPECT_EQ(documented, given) << folder << "/metadata.yaml and the test's values differ";
  Metadata metadata(values);
  absl::Status status = parse(metadata);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(metadata.Unused(), IsEmpty()) << folder << ": documented keys ParseConfig ignores";
}

TEST(MetadataYaml, LocalFile) {
  ExpectInSync("local_file", [](const Metadata& m) { return local_file::ParseConfig(m).status(); },
               {{"secretsFile", "s.json"}, {"nestedSeparator", ":"}, {"multiValued", "false"}});
}

TEST(MetadataYaml, LocalEnv) {
  ExpectInSync("local_env", [](const Metadata& m) { return local_env::ParseConfig(m).status(); },
               {{"prefix", "P_"}});
}

TEST(MetadataYaml, Vault) {
  std::map<std::string, std::string> values = {{"vaultAddr", "http://127.0.0.1:8200"},
                                               {"vaultToken", "t"},
                                               {"vaultKVPrefix", "dapr"},
                                               {"vaultKVUsePrefix", "true"},
                                               {"enginePath", "secret"},
                                               {"vaultValueType", "map"},
                                               {"skipVerify", "false"},
                                               {"tlsServerName", "v"},
                                               {"caCert", "/c.pem"},
                                               {"caPath", "/ca"},
                                               {"caPem", "PEM"}};
  auto parse = [](const Metadata& m) { return vault::ParseConfig(m).status(); };
  ExpectInSync("vault", parse, values, {"vaultTokenMountPath"});
  // vaultToken and vaultTokenMountPath exclude each other: the mount path in a second run.
  values.erase("vaultToken");
  values["vaultTokenMountPath"] = "/token";
  Metadata metadata(values);
  ASSERT_TRUE(parse(metadata).ok());
  EXPECT_THAT(metadata.Unused(), IsEmpty());
}

}  // namespace
}  // namespace remora::components::secretstores
