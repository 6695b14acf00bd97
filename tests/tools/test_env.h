#pragma once

// Hermetic test environment: free loopback ports, child processes started and stopped by the
// test (remorad, redis-server, test brokers), and a blocking HTTP helper built on the project's
// one HTTP client. Nothing here sleeps for a fixed time: waits poll against a deadline.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "remora/components/common/http/client.h"

namespace remora::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
int FreePort();

// Directory of the source tree (REMORA_SOURCE_DIR set by ctest) and the remorad binary (REMORAD).
std::string SourceDir();
std::string RemoradPath();

// A child process with stdout+stderr captured to a temporary log file. Killed (SIGKILL) on
// destruction if still running.
class ChildProcess {
 public:
  // `env` entries are added to (or override) the current environment.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int signo);
  // Waits for exit; nullopt on timeout. Returns the exit code (128+signal when signalled).
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // Everything the process printed so far.
  std::string Output() const;

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> exit_code_;
};

// Blocking HTTP/1.1 call on the project's HTTP client (for tests and tools only).
absl::StatusOr<http::Response> HttpCall(
    const std::string& host, int port, const std::string& method, const std::string& target,
    const std::string& body = "", const std::vector<std::pair<std::string, std::string>>& headers =
                                      {},
    std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Polls `url` (GET) until it answers `status` or the deadline passes.
bool WaitForHttp(int port, const std::string& target, int status, std::chrono::milliseconds timeout);

// remorad on free ports. `extra_args` are appended to the command line.
struct Remorad {
  std::unique_ptr<ChildProcess> process;
  int http_port = 0;
  int grpc_port = 0;
};
absl::StatusOr<Remorad> StartRemorad(const std::vector<std::string>& extra_args,
                                     const std::map<std::string, std::string>& env = {},
                                     std::chrono::milliseconds ready_timeout = std::chrono::seconds(10));

// Writes `content` to a fresh temporary directory as `file_name`; returns the directory.
std::string WriteTempFile(const std::string& file_name, const std::string& content);

}  // namespace remora::testing
