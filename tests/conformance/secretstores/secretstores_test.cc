// The secret store suite instantiated for local.file (single- and multi-valued), local.env and
// Vault (against tests/tools/vault_server), plus behaviour particular to each store.

#include <stdlib.h>

#include <utility>  // before Asio: Boost 1.74 + GCC 12 in C++20 needs it first

#include <fstream>
#include <thread>

#include <gmock/gmock.h>

#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "local_env_store.h"
#include "local_file_store.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/conformance/secretstores/secretstore_conformance.h"
#include "tests/tools/vault_launcher.h"
#include "vault_store.h"

namespace remora::conformance::secretstores {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using Metadata = std::map<std::string, std::string>;

constexpr char kToken[] = "conformance-root-token";

// One event loop for every Vault store of this binary; it outlives them all.
boost::asio::io_context& Loop() {
  static auto* loop = [] {
    auto* io = new boost::asio::io_context(1);
    auto* guard = new boost::asio::executor_work_guard<boost::asio::io_context::executor_type>(
        io->get_executor());
    (void)guard;
    std::thread([io] { io->run(); }).detach();
    return io;
  }();
  return *loop;
}

// One Vault test server for the binary, started on first use from the test's main thread.
testing::VaultServer& SharedVault() {
  static testing::VaultServer* vault = [] {
    auto started = testing::VaultServer::Start(kToken);
    if (!started.ok()) {
      ADD_FAILURE() << started.status();
      std::abort();
    }
    return started->release();
  }();
  return *vault;
}

nlohmann::json FileJson(const ss::BulkSecretData& secrets, bool multi_valued) {
  nlohmann::json root = nlohmann::json::object();
  for (const auto& [name, data] : secrets) {
    if (multi_valued) {
      root[name] = data;
    } else {
      root[name] = data.at(name);
    }
  }
  return root;
}

SecretStoreHarness LocalFileHarness(bool multi_valued) {
  SecretStoreHarness h;
  h.name = multi_valued ? "LocalFileMultiValued" : "LocalFile";
  h.type = "secretstores.local.file";
  h.factory = components::secretstores::local_file::Create;
  h.multi_valued = multi_valued;
  h.seed = [multi_valued](const std::string& test_id, const ss::BulkSecretData& secrets,
                          components::ComponentContext&) -> absl::StatusOr<Metadata> {
    std::string dir =
        testing::WriteTempFile("secrets.json", FileJson(secrets, multi_valued).dump());
    if (dir.empty()) return absl::InternalError("cannot write the secrets file");
    return Metadata{{"secretsFile", dir + "/secrets.json"},
                    {"multiValued", multi_valued ? "true" : "false"}};
  };
  return h;
}

SecretStoreHarness LocalEnvHarness() {
  SecretStoreHarness h;
  h.name = "LocalEnv";
  h.type = "secretstores.local.env";
  h.factory = components::secretstores::local_env::Create;
  h.missing_is_empty_value = true;
  h.seed = [](const std::string& test_id, const ss::BulkSecretData& secrets,
              components::ComponentContext&) -> absl::StatusOr<Metadata> {
    std::string prefix = StrCat("REMORA_CT_", test_id, "_");
    for (const auto& [name, data] : secrets) {
      ::setenv(StrCat(prefix, name).c_str(), data.at(name).c_str(), 1);
    }
    return Metadata{{"prefix", prefix}};
  };
  return h;
}

SecretStoreHarness VaultHarness() {
  SecretStoreHarness h;
  h.name = "Vault";
  h.type = "secretstores.hashicorp.vault";
  h.factory = components::secretstores::vault::Create;
  h.multi_valued = true;
  h.seed = [](const std::string& test_id, const ss::BulkSecretData& secrets,
              components::ComponentContext& context) -> absl::StatusOr<Metadata> {
    testing::VaultServer& vault = SharedVault();
    std::string prefix = StrCat("ct-", test_id);
    for (const auto& [name, data] : secrets) {
      if (absl::Status s = vault.Put(StrCat(prefix, "/", name), data); !s.ok()) return s;
    }
    context.io_context = &Loop();
    return Metadata{
        {"vaultAddr", vault.address()}, {"vaultToken", vault.token()}, {"vaultKVPrefix", prefix}};
  };
  return h;
}

INSTANTIATE_TEST_SUITE_P(Stores, SecretStoreConformanceTest,
                         ::testing::Values(LocalFileHarness(false), LocalFileHarness(true),
                                           LocalEnvHarness(), VaultHarness()),
                         SecretStoreHarnessName());

// ---- helpers for the store-specific tests ----

absl::StatusOr<std::unique_ptr<ss::SecretStore>> Make(const SecretStoreFactory& factory,
                                                      Metadata metadata) {
  components::ComponentContext context;
  context.name = "test";
  context.metadata = components::Metadata(std::move(metadata));
  context.io_context = &Loop();
  return factory(context);
}

absl::StatusOr<ss::SecretData> GetFrom(ss::SecretStore& store, const std::string& name,
                                       ss::RequestMetadata metadata = {}) {
  return Await<ss::SecretData>(
      [&](Callback<ss::SecretData> done) {
        store.GetSecret(name, std::move(metadata), std::move(done));
      },
      std::chrono::seconds(15));
}

absl::StatusOr<ss::BulkSecretData> BulkFrom(ss::SecretStore& store) {
  return Await<ss::BulkSecretData>(
      [&](Callback<ss::BulkSecretData> done) { store.BulkGetSecret({}, std::move(done)); },
      std::chrono::seconds(15));
}

// ---- local.file ----

TEST(LocalFileStore, UnreadableFileIsAClearErrorAtCreate) {
  auto store = Make(components::secretstores::local_file::Create,
                    {{"secretsFile", "/nonexistent/dir/secrets.json"}});
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("secretsFile /nonexistent/dir/secrets.json: cannot read"));
}

TEST(LocalFileStore, InvalidJsonIsAClearErrorAtCreate) {
  std::string dir = testing::WriteTempFile("bad.json", "{\"a\": ");
  auto store =
      Make(components::secretstores::local_file::Create, {{"secretsFile", dir + "/bad.json"}});
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("bad.json: not valid JSON"));
}

TEST(LocalFileStore, RelativePathIsRelativeToTheWorkingDirectory) {
  std::string dir = testing::WriteTempFile("rel.json", R"({"k": "v"})");
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof(cwd)), nullptr);
  ASSERT_EQ(::chdir(dir.c_str()), 0);
  auto store = Make(components::secretstores::local_file::Create, {{"secretsFile", "rel.json"}});
  ASSERT_EQ(::chdir(cwd), 0);
  ASSERT_TRUE(store.ok()) << store.status();
  auto got = GetFrom(**store, "k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, UnorderedElementsAre(Pair("k", "v")));
}

TEST(LocalFileStore, NestedFileServedThroughTheFactoryWithACustomSeparator) {
  std::string dir = testing::WriteTempFile(
      "s.json", R"({"redis": {"password": "pw", "hosts": ["a", "b"]}, "port": 6379})");
  auto store = Make(components::secretstores::local_file::Create,
                    {{"secretsFile", dir + "/s.json"}, {"nestedSeparator", "."}});
  ASSERT_TRUE(store.ok()) << store.status();
  auto got = GetFrom(**store, "redis.hosts.1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, UnorderedElementsAre(Pair("redis.hosts.1", "b")));
  auto all = BulkFrom(**store);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 4u);  // redis.password, redis.hosts.0, redis.hosts.1, port
  EXPECT_THAT(all->at("port"), UnorderedElementsAre(Pair("port", "6379")));
}

// ---- local.env ----

TEST(LocalEnvStore, NeverServesTheSidecarsOwnCredentials) {
  ::setenv("DAPR_API_TOKEN", "sidecar-token", 1);
  ::setenv("dapr_lowercase_secret", "x", 1);
  ::setenv("APP_API_TOKEN", "app-token", 1);
  ::setenv("REMORA_ENVTEST_VISIBLE", "yes", 1);
  auto store = Make(components::secretstores::local_env::Create, {});
  ASSERT_TRUE(store.ok()) << store.status();
  for (const char* name : {"DAPR_API_TOKEN", "dapr_lowercase_secret", "APP_API_TOKEN"}) {
    auto got = GetFrom(**store, name);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_THAT(*got, UnorderedElementsAre(Pair(name, ""))) << name;
  }
  auto visible = GetFrom(**store, "REMORA_ENVTEST_VISIBLE");
  ASSERT_TRUE(visible.ok());
  EXPECT_THAT(*visible, UnorderedElementsAre(Pair("REMORA_ENVTEST_VISIBLE", "yes")));
  auto all = BulkFrom(**store);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->count("DAPR_API_TOKEN"), 0u);
  EXPECT_EQ(all->count("dapr_lowercase_secret"), 0u);
  EXPECT_EQ(all->count("APP_API_TOKEN"), 0u);
  EXPECT_EQ(all->count("REMORA_ENVTEST_VISIBLE"), 1u);
  ::unsetenv("DAPR_API_TOKEN");
  ::unsetenv("APP_API_TOKEN");
}

TEST(LocalEnvStore, APrefixCannotReachForbiddenVariables) {
  ::setenv("DAPR_X_SECRET", "hidden", 1);
  auto store = Make(components::secretstores::local_env::Create, {{"prefix", "DAPR_X_"}});
  ASSERT_TRUE(store.ok()) << store.status();
  auto got = GetFrom(**store, "SECRET");
  ASSERT_TRUE(got.ok());
  EXPECT_THAT(*got, UnorderedElementsAre(Pair("SECRET", "")));
  auto all = BulkFrom(**store);
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(*all, IsEmpty());
}

// ---- Vault ----

Metadata VaultMetadata(const std::string& prefix) {
  return {
      {"vaultAddr", SharedVault().address()}, {"vaultToken", kToken}, {"vaultKVPrefix", prefix}};
}

TEST(VaultStore, WrongTokenIsPermissionDeniedNamingTheToken) {
  Metadata m = VaultMetadata("wrong-token");
  m["vaultToken"] = "not-the-token";
  auto store = Make(components::secretstores::vault::Create, m);
  ASSERT_TRUE(store.ok()) << store.status();
  auto got = GetFrom(**store, "anything");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("permission denied: check the vault token"));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr(SharedVault().address()));
  auto all = BulkFrom(**store);
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(VaultStore, ServerDownIsUnavailableNamingTheAddress) {
  auto vault = testing::VaultServer::Start("t");
  ASSERT_TRUE(vault.ok()) << vault.status();
  std::string address = (*vault)->address();
  (*vault)->Kill();
  auto store =
      Make(components::secretstores::vault::Create, {{"vaultAddr", address}, {"vaultToken", "t"}});
  ASSERT_TRUE(store.ok()) << store.status();  // lazy: nothing connects at Create
  auto got = GetFrom(**store, "db");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr(StrCat("vault at ", address, " is unreachable")));
}

TEST(VaultStore, OtherErrorsCarryTheStatusAndVaultsErrors) {
  testing::VaultServer& vault = SharedVault();
  auto store = Make(components::secretstores::vault::Create, VaultMetadata("sealed"));
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(vault.Seal().ok());
  auto got = GetFrom(**store, "db");
  auto all = BulkFrom(**store);
  ASSERT_TRUE(vault.Unseal().ok());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("HTTP 503: Vault is sealed"));
  ASSERT_FALSE(all.ok());
  EXPECT_THAT(std::string(all.status().message()), HasSubstr("HTTP 503: Vault is sealed"));
}

TEST(VaultStore, VersionIdSelectsAVersion) {
  testing::VaultServer& vault = SharedVault();
  ASSERT_TRUE(vault.Put("versions/db", {{"password", "v1"}}).ok());
  ASSERT_TRUE(vault.Put("versions/db", {{"password", "v2"}}).ok());
  auto store = Make(components::secretstores::vault::Create, VaultMetadata("versions"));
  ASSERT_TRUE(store.ok()) << store.status();
  auto latest = GetFrom(**store, "db");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_THAT(*latest, UnorderedElementsAre(Pair("password", "v2")));
  auto first = GetFrom(**store, "db", {{"version_id", "1"}});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(*first, UnorderedElementsAre(Pair("password", "v1")));
  auto missing = GetFrom(**store, "db", {{"version_id", "7"}});
  EXPECT_TRUE(ss::IsSecretNotFound(missing.status())) << missing.status();
}

TEST(VaultStore, BulkWalksFoldersAndSkipsDeletedSecrets) {
  testing::VaultServer& vault = SharedVault();
  ASSERT_TRUE(vault.Put("tree/top", {{"a", "1"}}).ok());
  ASSERT_TRUE(vault.Put("tree/team/one", {{"b", "2"}}).ok());
  ASSERT_TRUE(vault.Put("tree/team/deep/two", {{"c", "3"}}).ok());
  ASSERT_TRUE(vault.Put("tree/gone", {{"d", "4"}}).ok());
  ASSERT_TRUE(vault.DeleteLatest("tree/gone").ok());
  auto store = Make(components::secretstores::vault::Create, VaultMetadata("tree"));
  ASSERT_TRUE(store.ok()) << store.status();
  auto all = BulkFrom(**store);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, UnorderedElementsAre(Pair("top", ss::SecretData{{"a", "1"}}),
                                         Pair("team/one", ss::SecretData{{"b", "2"}}),
                                         Pair("team/deep/two", ss::SecretData{{"c", "3"}})));
  auto nested = GetFrom(**store, "team/deep/two");
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_THAT(*nested, UnorderedElementsAre(Pair("c", "3")));
  auto gone = GetFrom(**store, "gone");
  EXPECT_TRUE(ss::IsSecretNotFound(gone.status())) << gone.status();
}

TEST(VaultStore, ManySecretsInBulk) {
  testing::VaultServer& vault = SharedVault();
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(vault.Put(StrCat("many/s", i), {{"i", std::to_string(i)}}).ok());
  }
  auto store = Make(components::secretstores::vault::Create, VaultMetadata("many"));
  ASSERT_TRUE(store.ok()) << store.status();
  auto all = BulkFrom(**store);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 40u);
  EXPECT_THAT(all->at("s17"), UnorderedElementsAre(Pair("i", "17")));
}

TEST(VaultStore, TextValueTypeAnswersTheDataAsJson) {
  testing::VaultServer& vault = SharedVault();
  ASSERT_TRUE(vault.Put("text/cfg", {{"user", "u"}}).ok());
  Metadata m = VaultMetadata("text");
  m["vaultValueType"] = "text";
  auto store = Make(components::secretstores::vault::Create, m);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->HasFeature(ss::Feature::kMultipleKeyValuesPerSecret));
  auto got = GetFrom(**store, "cfg");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, UnorderedElementsAre(Pair("cfg", R"({"user":"u"})")));
}

TEST(VaultStore, NoPrefixAndATokenFile) {
  auto vault = testing::VaultServer::Start("file-token", R"({"plain": {"k": "v"}})");
  ASSERT_TRUE(vault.ok()) << vault.status();
  std::string dir = testing::WriteTempFile("token", "  file-token\n");
  auto store =
      Make(components::secretstores::vault::Create, {{"vaultAddr", (*vault)->address()},
                                                     {"vaultTokenMountPath", dir + "/token"},
                                                     {"vaultKVUsePrefix", "false"}});
  ASSERT_TRUE(store.ok()) << store.status();
  auto got = GetFrom(**store, "plain");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, UnorderedElementsAre(Pair("k", "v")));
  auto all = BulkFrom(**store);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, UnorderedElementsAre(Pair("plain", ss::SecretData{{"k", "v"}})));
}

TEST(VaultStore, MissingTokenFileFailsCreate) {
  auto store =
      Make(components::secretstores::vault::Create,
           {{"vaultAddr", "http://127.0.0.1:1"}, {"vaultTokenMountPath", "/nonexistent/token"}});
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("vaultTokenMountPath /nonexistent/token: cannot read the token"));
}

TEST(VaultStore, HttpsVerifiesTheServerAsConfigured) {
  auto cert = testing::MakeTestCertificate({"localhost"});
  ASSERT_TRUE(cert.ok()) << cert.status();
  auto vault = testing::VaultServer::StartTls("tls-token", *cert,
                                              R"({"dapr/db": {"p": "over-tls"}, "dapr/x/y": {}})");
  ASSERT_TRUE(vault.ok()) << vault.status();
  const std::string addr = (*vault)->address();
  ASSERT_EQ(addr.substr(0, 8), "https://");
  std::string ca_dir = testing::WriteTempFile("ca.pem", cert->cert_pem);
  auto get = [&](Metadata extra) -> absl::StatusOr<ss::SecretData> {
    Metadata m = {{"vaultAddr", addr}, {"vaultToken", "tls-token"}};
    for (auto& [k, v] : extra) m[k] = v;
    auto store = Make(components::secretstores::vault::Create, m);
    if (!store.ok()) return store.status();
    return GetFrom(**store, "db");
  };
  for (const Metadata& trusted :
       {Metadata{{"caPem", cert->cert_pem}}, Metadata{{"caCert", ca_dir + "/ca.pem"}},
        Metadata{{"caPath", ca_dir}}, Metadata{{"skipVerify", "true"}},
        Metadata{{"caPem", cert->cert_pem}, {"tlsServerName", "localhost"}}}) {
    auto got = get(trusted);
    ASSERT_TRUE(got.ok()) << got.status() << " with " << trusted.begin()->first;
    EXPECT_THAT(*got, UnorderedElementsAre(Pair("p", "over-tls")));
  }
  // Not trusted: the system CAs do not know the certificate, or its name is not the one asked.
  for (const Metadata& untrusted :
       {Metadata{}, Metadata{{"caPem", cert->cert_pem}, {"tlsServerName", "vault.example"}}}) {
    auto got = get(untrusted);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(got.status().message()), HasSubstr("TLS handshake"));
    EXPECT_THAT(std::string(got.status().message()), HasSubstr("certificate verify failed"));
  }
  auto bad_pem = get({{"caPem", "not a certificate"}});
  ASSERT_FALSE(bad_pem.ok());
  EXPECT_EQ(bad_pem.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_pem.status().message()), HasSubstr("not a PEM certificate"));

  auto store = Make(components::secretstores::vault::Create,
                    {{"vaultAddr", addr}, {"vaultToken", "tls-token"}, {"caPem", cert->cert_pem}});
  ASSERT_TRUE(store.ok());
  auto all = BulkFrom(**store);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 2u);
  EXPECT_EQ(all->count("x/y"), 1u);
}

TEST(VaultStore, DestroyingTheStoreWithRequestsInFlightIsSafe) {
  auto store = Make(components::secretstores::vault::Create, VaultMetadata("inflight"));
  ASSERT_TRUE(store.ok()) << store.status();
  auto calls = std::make_shared<std::atomic<int>>(0);
  for (int i = 0; i < 10; ++i) {
    (*store)->GetSecret("x", {}, [calls](absl::StatusOr<ss::SecretData>) { calls->fetch_add(1); });
    (*store)->BulkGetSecret({},
                            [calls](absl::StatusOr<ss::BulkSecretData>) { calls->fetch_add(1); });
  }
  store->reset();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (calls->load() < 20 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(calls->load(), 20);  // every callback ran once (cancelled or answered)
}

}  // namespace
}  // namespace remora::conformance::secretstores
