#include "tests/tools/vault_launcher.h"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"

namespace remora::testing {

std::string VaultServerPath() { return REMORA_VAULT_SERVER_PATH; }

absl::StatusOr<TestCertificate> MakeTestCertificate(const std::vector<std::string>& dns_names) {
  auto fail = [](std::string_view what) {
    return MakeStatus(absl::StatusCode::kInternal, StrCat("test certificate: ", what));
  };
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  if (!key) return fail("key generation");
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("remora test"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  std::string alt_names = "IP:127.0.0.1";
  for (const std::string& dns : dns_names) StrAppend(&alt_names, ",DNS:", dns);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] : {std::pair<int, std::string>{NID_subject_alt_name, alt_names},
                                   {NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) return fail("extension");
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return fail("signing");
  auto pem = [](auto write) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    write(bio.get());
    char* data = nullptr;
    long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(size));
  };
  TestCertificate out;
  out.cert_pem = pem([&](BIO* bio) { PEM_write_bio_X509(bio, cert.get()); });
  out.key_pem = pem([&](BIO* bio) {
    PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  return out;
}

absl::StatusOr<std::unique_ptr<VaultServer>> VaultServer::Start(
    std::string token, const std::string& seed_json, std::string engine,
    std::chrono::milliseconds ready_timeout) {
  return Launch(std::move(token), seed_json, std::move(engine), nullptr, ready_timeout);
}

absl::StatusOr<std::unique_ptr<VaultServer>> VaultServer::StartTls(
    std::string token, const TestCertificate& certificate, const std::string& seed_json) {
  return Launch(std::move(token), seed_json, "secret", &certificate, std::chrono::seconds(10));
}

absl::StatusOr<std::unique_ptr<VaultServer>> VaultServer::Launch(
    std::string token, const std::string& seed_json, std::string engine,
    const TestCertificate* certificate, std::chrono::milliseconds ready_timeout) {
  std::unique_ptr<VaultServer> server(new VaultServer());
  server->token_ = std::move(token);
  server->engine_ = std::move(engine);
  std::vector<std::string> argv = {VaultServerPath(), "--token", server->token_, "--engine",
                                   server->engine_};
  if (!seed_json.empty()) {
    server->seed_dir_ = WriteTempFile("seed.json", seed_json);
    argv.push_back("--seed");
    argv.push_back(server->seed_dir_ + "/seed.json");
  }
  if (certificate != nullptr) {
    server->tls_dir_ = WriteTempFile("cert.pem", certificate->cert_pem);
    std::ofstream(server->tls_dir_ + "/key.pem") << certificate->key_pem;
    for (std::string arg : {"--tls-cert", "cert.pem", "--tls-key", "key.pem"}) {
      argv.push_back(arg.ends_with(".pem") ? StrCat(server->tls_dir_, "/", arg) : arg);
    }
  }
  auto process = ChildProcess::Start(argv);
  if (!process.ok()) return process.status();
  server->process_ = *std::move(process);
  const auto deadline = std::chrono::steady_clock::now() + ready_timeout;
  auto delay = std::chrono::microseconds(500);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string out = server->process_->Output();
    size_t at = out.find("VAULT_PORT=");
    size_t eol = at == std::string::npos ? at : out.find('\n', at);
    if (eol != std::string::npos) {
      server->port_ = std::stoi(out.substr(at + 11, eol - at - 11));
      return server;
    }
    if (!server->process_->Running()) break;
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::microseconds(20000));
  }
  return MakeStatus(absl::StatusCode::kUnavailable,
                    StrCat("vault_server did not start: ", server->process_->Output()));
}

VaultServer::~VaultServer() {
  process_.reset();
  for (const std::string& dir : {seed_dir_, tls_dir_}) {
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
}

std::string VaultServer::address() const {
  return StrCat(tls_dir_.empty() ? "http" : "https", "://127.0.0.1:", port_);
}

absl::Status VaultServer::Call(const std::string& method, const std::string& target,
                               const std::string& body, int expected_status) {
  auto response = HttpCall("127.0.0.1", port_, method, target, body,
                           {{"X-Vault-Token", token_}, {"Content-Type", "application/json"}});
  if (!response.ok()) return response.status();
  if (response->status != expected_status) {
    return MakeStatus(absl::StatusCode::kInternal, StrCat(method, " ", target, ": HTTP ",
                                                          response->status, " ", response->body));
  }
  return absl::OkStatus();
}

absl::Status VaultServer::Put(const std::string& path,
                              const std::map<std::string, std::string>& data) {
  nlohmann::json body = {{"data", data}};
  return Call("POST", StrCat("/v1/", engine_, "/data/", path), body.dump(), 200);
}

absl::Status VaultServer::DeleteLatest(const std::string& path) {
  return Call("DELETE", StrCat("/v1/", engine_, "/data/", path), "", 204);
}

absl::Status VaultServer::Seal() { return Call("PUT", "/v1/sys/seal", "", 204); }
absl::Status VaultServer::Unseal() { return Call("PUT", "/v1/sys/unseal", "{}", 200); }

void VaultServer::Kill() {
  if (process_ && process_->Running()) {
    process_->Signal(SIGKILL);
    process_->Wait(std::chrono::seconds(10));
  }
}

std::string VaultServer::Output() const { return process_ ? process_->Output() : ""; }

}  // namespace remora::testing
