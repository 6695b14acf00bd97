#pragma once

// Hermetic test environment: free loopback ports, child processes started and stopped by the
// test (remorad, redis-server, test brokers), and a blocking HTTP helper built on the project's
// one HTTP client. Nothing here sleeps for a fixed time: waits poll against a deadline.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
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

// A child process with stdout+stderr captured to a temporary log file. The child leads its own
// process group and gets SIGKILL when the thread that started it exits (PR_SET_PDEATHSIG), so a
// crashed or killed test leaves nothing behind; start children from the test's main thread. The
// destructor SIGKILLs the whole group if the process is still running, reaps it and removes the
// log file.
class ChildProcess {
 public:
  // argv[0] is looked up in PATH when it has no '/'. `env` entries are added to (or override)
  // the current environment. Fails when the program cannot be executed.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  // Sends `signo` to the process itself (not its group).
  void Signal(int signo);
  // Waits for exit, polling; nullopt on timeout. Returns the exit code (128+signal when
  // signalled). Once it has returned a value it returns the same value again.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // Everything the process printed so far (stdout and stderr interleaved).
  std::string Output() const;

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> exit_code_;
};

// Blocking HTTP/1.1 call on the project's HTTP client (for tests and tools only): runs a private
// io_context on the calling thread until the response or the error arrives.
absl::StatusOr<http::Response> HttpCall(
    const std::string& host, int port, const std::string& method, const std::string& target,
    const std::string& body = "",
    const std::vector<std::pair<std::string, std::string>>& headers = {},
    std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Polls GET 127.0.0.1:`port``target` until it answers `status` or the deadline passes.
bool WaitForHttp(int port, const std::string& target, int status,
                 std::chrono::milliseconds timeout);

// remorad on free ports (--dapr-http-port, --dapr-grpc-port, --metrics-port), ready when
// GET /v1.0/healthz/outbound answers 204. `extra_args` are appended to the command line. Fails,
// with the process output in the message, when remorad exits or is not ready in time.
struct Remorad {
  std::unique_ptr<ChildProcess> process;
  int http_port = 0;
  int grpc_port = 0;
  int metrics_port = 0;
};
absl::StatusOr<Remorad> StartRemorad(
    const std::vector<std::string>& extra_args, const std::map<std::string, std::string>& env = {},
    std::chrono::milliseconds ready_timeout = std::chrono::seconds(10));

// Writes `content` to a fresh temporary directory as `file_name`; returns the directory.
std::string WriteTempFile(const std::string& file_name, const std::string& content);

}  // namespace remora::testing
