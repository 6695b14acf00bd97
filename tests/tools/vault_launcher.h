#pragma once

// Starts the Vault test server (tests/tools/vault_server.cc) as a child process for tests, and
// talks to it over the project's HTTP client for set-up.
//
//   auto vault = VaultServer::Start("root-token", R"({"dapr/db": {"password": "pw"}})");
//   ASSERT_TRUE(vault.ok()) << vault.status();
//   (*vault)->Put("dapr/api", {{"key", "k1"}});       // a new version, as `vault kv put` does
//   std::string addr = (*vault)->address();           // "http://127.0.0.1:<port>"
//
// Start from the test's main thread (see ChildProcess). Readiness is the port line the server
// prints, polled against a deadline.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/tools/test_env.h"

namespace remora::testing {

// A self-signed certificate, its own CA, for IP:127.0.0.1 and the given DNS names, valid for a
// day. Made with OpenSSL's API: no openssl binary needed.
struct TestCertificate {
  std::string cert_pem;
  std::string key_pem;
};
absl::StatusOr<TestCertificate> MakeTestCertificate(const std::vector<std::string>& dns_names = {
                                                        "localhost"});

class VaultServer {
 public:
  // `seed_json` (optional) is the server's seed file content: {"<path>": {k: v} | [{..}, ..]}.
  static absl::StatusOr<std::unique_ptr<VaultServer>> Start(
      std::string token, const std::string& seed_json = "", std::string engine = "secret",
      std::chrono::milliseconds ready_timeout = std::chrono::seconds(10));
  // The same over HTTPS with `certificate`. Put, DeleteLatest, Seal and Unseal speak plain HTTP
  // and do not work on it: seed it instead.
  static absl::StatusOr<std::unique_ptr<VaultServer>> StartTls(std::string token,
                                                               const TestCertificate& certificate,
                                                               const std::string& seed_json = "");
  ~VaultServer();
  VaultServer(const VaultServer&) = delete;
  VaultServer& operator=(const VaultServer&) = delete;

  int port() const { return port_; }
  std::string address() const;  // http(s)://127.0.0.1:<port>
  const std::string& token() const { return token_; }

  // Writes a new version of `path` (below the engine) through the KV v2 API.
  absl::Status Put(const std::string& path, const std::map<std::string, std::string>& data);
  // Soft-deletes the latest version of `path`.
  absl::Status DeleteLatest(const std::string& path);
  // While sealed every call answers 503 {"errors":["Vault is sealed"]}.
  absl::Status Seal();
  absl::Status Unseal();
  // SIGKILL and wait: connections are refused afterwards.
  void Kill();

  std::string Output() const;

 private:
  VaultServer() = default;
  absl::Status Call(const std::string& method, const std::string& target, const std::string& body,
                    int expected_status);
  static absl::StatusOr<std::unique_ptr<VaultServer>> Launch(
      std::string token, const std::string& seed_json, std::string engine,
      const TestCertificate* certificate, std::chrono::milliseconds ready_timeout);

  std::string token_;
  std::string engine_;
  std::string seed_dir_;
  std::string tls_dir_;  // certificate and key when serving HTTPS
  int port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// Path of the vault_server binary (set at build time).
std::string VaultServerPath();

}  // namespace remora::testing
