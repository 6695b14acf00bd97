// remorad's gRPC GetSecret / GetBulkSecret over the real binary: data, scopes and Dapr's status
// codes (contract §2.12: not configured FAILED_PRECONDITION, unknown store INVALID_ARGUMENT,
// scope PERMISSION_DENIED, store failure INTERNAL naming the store).

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "remora/components/common/strings.h"
#include "tests/tools/test_env.h"
#include "tests/tools/vault_launcher.h"

namespace remora::testing {
namespace {

namespace v1 = ::dapr::proto::runtime::v1;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

class Client {
 public:
  explicit Client(int port)
      : stub_(v1::Dapr::NewStub(::grpc::CreateChannel(StrCat("127.0.0.1:", port),
                                                      ::grpc::InsecureChannelCredentials()))) {}

  ::grpc::Status Get(const std::string& store, const std::string& key, v1::GetSecretResponse* res,
                     std::map<std::string, std::string> metadata = {}) {
    v1::GetSecretRequest req;
    req.set_store_name(store);
    req.set_key(key);
    for (const auto& [k, v] : metadata) (*req.mutable_metadata())[k] = v;
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->GetSecret(&ctx, req, res);
  }

  ::grpc::Status Bulk(const std::string& store, v1::GetBulkSecretResponse* res) {
    v1::GetBulkSecretRequest req;
    req.set_store_name(store);
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->GetBulkSecret(&ctx, req, res);
  }

 private:
  std::unique_ptr<v1::Dapr::Stub> stub_;
};

std::map<std::string, std::string> AsMap(const google::protobuf::Map<std::string, std::string>& m) {
  return {m.begin(), m.end()};
}

std::string Component(const std::string& name, const std::string& type,
                      const std::string& metadata) {
  return StrCat("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: { name: ", name,
                " }\nspec:\n  type: ", type, "\n  version: v1\n  metadata:\n", metadata, "---\n");
}

TEST(SecretsGrpcE2E, GetBulkScopesAndErrors) {
  auto vault = VaultServer::Start("grpc-token", R"({"dapr/db": [{"p": "v1"}, {"p": "v2"}]})");
  ASSERT_TRUE(vault.ok()) << vault.status();
  std::string dir = WriteTempFile("s.json", R"({"db": {"user": "u", "password": "pw"},
                                               "api": {"key": "k"}})");
  std::string file_meta = StrCat("  - { name: secretsFile, value: \"", dir,
                                 "/s.json\" }\n  - { name: multiValued, value: \"true\" }\n");
  std::string resources = WriteTempFile(
      "c.yaml",
      Component("files", "secretstores.local.file", file_meta) +
          Component("scoped", "secretstores.local.file", file_meta) +
          Component("vault", "secretstores.hashicorp.vault",
                    StrCat("  - { name: vaultAddr, value: \"", (*vault)->address(),
                           "\" }\n  - { name: vaultToken, value: grpc-token }\n")));
  std::string config = WriteTempFile("config.yaml", R"(kind: Configuration
spec:
  secrets:
    scopes: [ { storeName: scoped, deniedSecrets: [api] } ]
)");
  auto sidecar = StartRemorad({"--app-id", "grpc-secrets", "--resources-path", resources,
                               "--config", config + "/config.yaml"});
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  Client client(sidecar->grpc_port);

  v1::GetSecretResponse db;
  ASSERT_TRUE(client.Get("files", "db", &db).ok());
  EXPECT_THAT(AsMap(db.data()), UnorderedElementsAre(Pair("user", "u"), Pair("password", "pw")));

  v1::GetBulkSecretResponse all;
  ASSERT_TRUE(client.Bulk("files", &all).ok());
  ASSERT_EQ(all.data().size(), 2u);
  EXPECT_THAT(AsMap(all.data().at("api").secrets()), UnorderedElementsAre(Pair("key", "k")));

  v1::GetBulkSecretResponse scoped;
  ASSERT_TRUE(client.Bulk("scoped", &scoped).ok());
  EXPECT_EQ(scoped.data().size(), 1u);
  EXPECT_EQ(scoped.data().count("db"), 1u);
  v1::GetSecretResponse denied;
  auto denied_status = client.Get("scoped", "api", &denied);
  EXPECT_EQ(denied_status.error_code(), ::grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(denied_status.error_message(), R"(access denied by policy to get "api" from "scoped")");

  v1::GetSecretResponse unknown;
  auto unknown_status = client.Get("nope", "db", &unknown);
  EXPECT_EQ(unknown_status.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(unknown_status.error_message(), "failed finding secret store with key nope");

  v1::GetSecretResponse missing;
  auto missing_status = client.Get("files", "missing", &missing);
  EXPECT_EQ(missing_status.error_code(), ::grpc::StatusCode::INTERNAL);
  EXPECT_THAT(missing_status.error_message(), HasSubstr("secret missing not found"));

  v1::GetSecretResponse first;
  ASSERT_TRUE(client.Get("vault", "db", &first, {{"version_id", "1"}}).ok());
  EXPECT_THAT(AsMap(first.data()), UnorderedElementsAre(Pair("p", "v1")));

  (*vault)->Kill();
  v1::GetSecretResponse down;
  auto down_status = client.Get("vault", "db", &down);
  EXPECT_EQ(down_status.error_code(), ::grpc::StatusCode::INTERNAL);
  EXPECT_THAT(down_status.error_message(),
              HasSubstr(StrCat("from secret store vault: vault at ", (*vault)->address(),
                               " is unreachable")));
  v1::GetBulkSecretResponse down_bulk;
  EXPECT_EQ(client.Bulk("vault", &down_bulk).error_code(), ::grpc::StatusCode::INTERNAL);
  EXPECT_TRUE(sidecar->process->Running());
}

TEST(SecretsGrpcE2E, NoSecretStoresIsFailedPrecondition) {
  auto sidecar = StartRemorad({"--app-id", "grpc-secrets"});
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  v1::GetSecretResponse res;
  auto status = Client(sidecar->grpc_port).Get("any", "key", &res);
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(), "secret store is not configured");
}

}  // namespace
}  // namespace remora::testing
