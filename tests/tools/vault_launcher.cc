#include "tests/tools/vault_launcher.h"

#include <csignal>
#include <filesystem>
#include <thread>

#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"

namespace remora::testing {

std::string VaultServerPath() { return REMORA_VAULT_SERVER_PATH; }

absl::StatusOr<std::unique_ptr<VaultServer>> VaultServer::Start(
    std::string token, const std::string& seed_json, std::string engine,
    std::chrono::milliseconds ready_timeout) {
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
  if (!seed_dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(seed_dir_, ignored);
  }
}

std::string VaultServer::address() const { return StrCat("http://127.0.0.1:", port_); }

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
