#include <utility>  // before Asio: Boost 1.74 + GCC 12 in C++20 needs it first

#include "tests/tools/test_env.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "remora/components/common/strings.h"

extern char** environ;

namespace remora::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string TempDir() {
  const char* dir = std::getenv("TMPDIR");
  return dir != nullptr && *dir != '\0' ? dir : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool IsExecutable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// Exit status as a shell reports it.
int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Polling interval for waits on another process: short at first (most waits end within a few
// milliseconds), capped so that a long wait does not burn a core.
class Backoff {
 public:
  void Sleep() {
    std::this_thread::sleep_for(delay_);
    delay_ = std::min(delay_ * 2, std::chrono::microseconds(20000));
  }

 private:
  std::chrono::microseconds delay_{500};
};

}  // namespace

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string SourceDir() {
  if (const char* dir = std::getenv("REMORA_SOURCE_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  // Run outside ctest: this file's own location (CMake compiles it by absolute path).
  std::string file = __FILE__;
  const std::string suffix = "/tests/tools/test_env.cc";
  if (file.size() > suffix.size() && file.ends_with(suffix)) {
    return file.substr(0, file.size() - suffix.size());
  }
  return ".";
}

std::string RemoradPath() {
  if (const char* path = std::getenv("REMORAD"); path != nullptr && *path != '\0') return path;
  // Run outside ctest: the build tree's layout (<build>/tests/<test>, <build>/runtime/remorad).
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    std::string exe(self, static_cast<size_t>(n));
    std::string dir = exe.substr(0, exe.rfind('/'));
    std::string candidate = StrCat(dir, "/../runtime/remorad");
    if (IsExecutable(candidate)) return candidate;
  }
  return "";
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  if (argv.empty()) return MakeStatus(absl::StatusCode::kInvalidArgument, "empty argv");

  std::string log_path = StrCat(TempDir(), "/remora-child-XXXXXX.log");
  int log_fd = ::mkstemps(log_path.data(), 4);
  if (log_fd < 0) {
    return MakeStatus(absl::StatusCode::kInternal, StrCat("mkstemps: ", std::strerror(errno)));
  }

  // Everything the child needs is built before fork: after fork only async-signal-safe calls.
  std::map<std::string, std::string> merged;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view kv(*entry);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    merged[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [key, value] : env) merged[key] = value;
  std::vector<std::string> env_strings;
  env_strings.reserve(merged.size());
  for (const auto& [key, value] : merged) env_strings.push_back(StrCat(key, "=", value));
  std::vector<char*> envp;
  for (std::string& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argvp;
  for (std::string& arg : args) argvp.push_back(arg.data());
  argvp.push_back(nullptr);

  // Reports a failed exec (its errno) back to the parent; closed by a successful exec.
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    ::close(log_fd);
    ::unlink(log_path.c_str());
    return MakeStatus(absl::StatusCode::kInternal, StrCat("pipe2: ", std::strerror(errno)));
  }

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(log_fd);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
    ::unlink(log_path.c_str());
    return MakeStatus(absl::StatusCode::kInternal, StrCat("fork: ", std::strerror(err)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    // The test's own sockets (listeners, connections) must not leak into the child.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execvpe(argvp[0], argvp.data(), envp.data());
    int err = errno;
    ssize_t ignored = ::write(exec_pipe[1], &err, sizeof(err));
    (void)ignored;
    ::_exit(127);
  }

  ::close(log_fd);
  ::close(exec_pipe[1]);
  ::setpgid(pid, pid);  // also here, so that a signal to the group right away cannot miss it
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == sizeof(exec_errno)) {
    ::waitpid(pid, nullptr, 0);
    ::unlink(log_path.c_str());
    return MakeStatus(absl::StatusCode::kFailedPrecondition,
                      StrCat("cannot execute ", argv[0], ": ", std::strerror(exec_errno)));
  }

  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = pid;
  child->log_path_ = std::move(log_path);
  return child;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (!log_path_.empty()) ::unlink(log_path_.c_str());
}

bool ChildProcess::Running() {
  if (exit_code_) return false;
  int status;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = DecodeStatus(status);
    return false;
  }
  return r == 0;
}

void ChildProcess::Signal(int signo) {
  if (!exit_code_) ::kill(pid_, signo);
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  Backoff backoff;
  while (Running()) {
    if (Clock::now() >= deadline) return std::nullopt;
    backoff.Sleep();
  }
  return exit_code_;
}

std::string ChildProcess::Output() const { return ReadFile(log_path_); }

absl::StatusOr<http::Response> HttpCall(
    const std::string& host, int port, const std::string& method, const std::string& target,
    const std::string& body, const std::vector<std::pair<std::string, std::string>>& headers,
    std::chrono::milliseconds timeout) {
  std::optional<absl::StatusOr<http::Response>> result;
  boost::asio::io_context io;
  {
    http::Client client(io);
    http::Request request;
    request.method = method;
    request.target = target;
    request.headers = headers;
    request.body = body;
    request.timeout = timeout;
    client.Send(
        host, static_cast<uint16_t>(port), std::move(request),
        [&result](absl::StatusOr<http::Response> response) { result = std::move(response); });
    // Returns once the callback ran: the pooled connection then has no pending operation.
    io.run();
  }
  if (!result) return MakeStatus(absl::StatusCode::kInternal, "HttpCall: no result");
  return *std::move(result);
}

bool WaitForHttp(int port, const std::string& target, int status,
                 std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  Backoff backoff;
  while (true) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (remaining.count() <= 0) return false;
    auto response = HttpCall("127.0.0.1", port, "GET", target, "", {},
                             std::min(remaining, std::chrono::milliseconds(2000)));
    if (response.ok() && response->status == status) return true;
    backoff.Sleep();
  }
}

absl::StatusOr<Remorad> StartRemorad(const std::vector<std::string>& extra_args,
                                     const std::map<std::string, std::string>& env,
                                     std::chrono::milliseconds ready_timeout) {
  const std::string path = RemoradPath();
  if (path.empty()) {
    return MakeStatus(absl::StatusCode::kFailedPrecondition,
                      "remorad not found: set REMORAD (ctest does)");
  }
  // A free port can be taken by someone else before remorad binds it: then remorad exits
  // complaining that the address is in use, and another set of ports is tried.
  std::string last_output;
  for (int attempt = 0; attempt < 3; ++attempt) {
    Remorad remorad;
    remorad.http_port = FreePort();
    do {
      remorad.grpc_port = FreePort();
    } while (remorad.grpc_port == remorad.http_port);
    do {
      remorad.metrics_port = FreePort();
    } while (remorad.metrics_port == remorad.http_port ||
             remorad.metrics_port == remorad.grpc_port);
    std::vector<std::string> argv = {path,
                                     "--dapr-http-port",
                                     std::to_string(remorad.http_port),
                                     "--dapr-grpc-port",
                                     std::to_string(remorad.grpc_port),
                                     "--metrics-port",
                                     std::to_string(remorad.metrics_port)};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    auto process = ChildProcess::Start(argv, env);
    if (!process.ok()) return process.status();
    remorad.process = *std::move(process);

    const Clock::time_point deadline = Clock::now() + ready_timeout;
    Backoff backoff;
    bool exited = false;
    while (Clock::now() < deadline) {
      if (!remorad.process->Running()) {
        exited = true;
        break;
      }
      auto remaining =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      auto response = HttpCall("127.0.0.1", remorad.http_port, "GET", "/v1.0/healthz/outbound", "",
                               {}, std::min(remaining, std::chrono::milliseconds(1000)));
      if (response.ok() && response->status == 204) return remorad;
      backoff.Sleep();
    }
    last_output = remorad.process->Output();
    if (!exited) {
      return MakeStatus(absl::StatusCode::kDeadlineExceeded,
                        StrCat("remorad not ready (GET /v1.0/healthz/outbound != 204) after ",
                               ready_timeout.count(), " ms; output:\n", last_output));
    }
    int code = remorad.process->Wait(std::chrono::milliseconds(0)).value_or(-1);
    if (last_output.find("in use") == std::string::npos) {
      return MakeStatus(absl::StatusCode::kUnavailable,
                        StrCat("remorad exited with code ", code, " before it was ready; output:\n",
                               last_output));
    }
  }
  return MakeStatus(absl::StatusCode::kUnavailable,
                    StrCat("remorad could not bind free ports; output:\n", last_output));
}

std::string WriteTempFile(const std::string& file_name, const std::string& content) {
  std::string dir = StrCat(TempDir(), "/remora-test-XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) return "";
  std::ofstream out(StrCat(dir, "/", file_name), std::ios::binary);
  out << content;
  return dir;
}

}  // namespace remora::testing
