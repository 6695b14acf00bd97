// remora: the `dapr run` experience for remorad.
//
//   remora run --app-id orders --app-port 8080 [--resources-path ./components] [remorad flags]
//       -- ./order-processor args...
//
// Starts one remorad and one function side by side: free ports for every API port the user did
// not give, the sidecar first (the function starts once GET /v1.0/healthz answers 204, so its first
// call never races the sidecar), the function with DAPR_HTTP_PORT, DAPR_GRPC_PORT, APP_PORT and
// APP_ID in its environment, both outputs line-prefixed on our stdout, SIGINT/SIGTERM forwarded,
// and both stopped when either exits. The exit code is the function's.
//
// Deliberately small and free of gRPC/Beast: one poll() loop over the children's pipes and a
// signalfd, a blocking socket for the health probe.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"

namespace remora::launcher {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Options {
  std::string app_id;
  std::optional<int> app_port;
  std::optional<int> http_port;
  std::optional<int> grpc_port;
  std::optional<int> metrics_port;
  double startup_timeout_s = 20;
  double stop_timeout_s = 10;
  std::vector<std::string> remorad_args;  // every other flag, passed through unchanged
  std::vector<std::string> command;       // after `--`
};

void Say(const std::string& line) {
  std::string out = "== remora == " + line + "\n";
  (void)!::write(STDOUT_FILENO, out.data(), out.size());
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// One GET on a fresh connection; true when the status line says `want`. Short timeouts: this is
// polled against a deadline.
bool HttpStatusIs(int port, const char* target, int want) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string req =
        std::string("GET ") + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[64];
      ssize_t n = ::recv(fd, buf, sizeof(buf) - 1, 0);
      if (n > 12) {
        buf[n] = 0;
        ok = std::strncmp(buf, "HTTP/1.", 7) == 0 && std::atoi(buf + 9) == want;
      }
    }
  }
  ::close(fd);
  return ok;
}

// $REMORAD, then next to this binary, then the build tree's layout (build/tools/remora/remora and
// build/runtime/remorad), then PATH.
std::string FindRemorad() {
  if (const char* env = std::getenv("REMORAD"); env && *env) return env;
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (auto candidate : {self.parent_path() / "remorad",
                           self.parent_path() / ".." / ".." / "runtime" / "remorad"}) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.lexically_normal().string();
    }
  }
  return "remorad";
}

struct Child {
  std::string name;    // for messages
  std::string prefix;  // put before each output line
  pid_t pid = -1;
  int out_fd = -1;      // read end of the child's stdout+stderr
  std::string partial;  // bytes after the last newline
  std::optional<int> exit_code;
};

// fork+exec with stdout and stderr into one pipe. The child leads its own process group, so a
// terminal Ctrl-C reaches only us and the order of the stop is ours to choose (function first,
// then the sidecar); signals go to the whole group, so a function started through `sh -c` stops
// with its children. PR_SET_PDEATHSIG: if we are SIGKILLed, nothing is left behind.
bool Spawn(Child& child, const std::vector<std::string>& argv,
           const std::map<std::string, std::string>& env, const sigset_t& blocked) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  int exec_err[2];
  if (::pipe2(exec_err, O_CLOEXEC) != 0) return false;
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::sigprocmask(SIG_UNBLOCK, &blocked, nullptr);
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    int err = errno;
    (void)!::write(exec_err[1], &err, sizeof(err));
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: no window where a signal to the group misses it
  ::close(fds[1]);
  ::close(exec_err[1]);
  int err = 0;
  ssize_t n = ::read(exec_err[0], &err, sizeof(err));
  ::close(exec_err[0]);
  if (n == sizeof(err)) {
    Say("cannot run " + argv[0] + ": " + std::strerror(err));
    ::close(fds[0]);
    ::waitpid(pid, nullptr, 0);
    return false;
  }
  child.pid = pid;
  child.out_fd = fds[0];
  return true;
}

void Emit(Child& c, std::string_view bytes, bool flush) {
  c.partial.append(bytes);
  std::string out;
  size_t start = 0;
  for (size_t nl; (nl = c.partial.find('\n', start)) != std::string::npos; start = nl + 1) {
    out += c.prefix;
    out.append(c.partial, start, nl - start + 1);
  }
  c.partial.erase(0, start);
  if (flush && !c.partial.empty()) {
    out += c.prefix + c.partial + "\n";
    c.partial.clear();
  }
  if (!out.empty()) (void)!::write(STDOUT_FILENO, out.data(), out.size());
}

void Drain(Child& c) {
  if (c.out_fd < 0) return;
  char buf[8192];
  ssize_t n = ::read(c.out_fd, buf, sizeof(buf));
  if (n > 0) {
    Emit(c, std::string_view(buf, n), false);
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    Emit(c, {}, true);
    ::close(c.out_fd);
    c.out_fd = -1;
  }
}

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

void Reap(std::vector<Child*>& children) {
  for (Child* c : children) {
    if (c->pid < 0 || c->exit_code) continue;
    int status = 0;
    if (::waitpid(c->pid, &status, WNOHANG) == c->pid) {
      c->exit_code = ExitCodeOf(status);
      Say(c->name + " exited with code " + std::to_string(*c->exit_code));
    }
  }
}

class Loop {
 public:
  Loop(int sig_fd, std::vector<Child*> children) : sig_fd_(sig_fd), children_(children) {}

  // Runs until `done` holds or the deadline passes; returns false on timeout. Output is relayed
  // and children reaped meanwhile; SIGINT/SIGTERM are reported through `signal_seen_`.
  template <typename Done>
  bool RunUntil(Done done, std::optional<Clock::time_point> deadline) {
    while (!done()) {
      int timeout_ms = 100;
      if (deadline) {
        auto left = std::chrono::duration_cast<milliseconds>(*deadline - Clock::now()).count();
        if (left <= 0) return false;
        timeout_ms = static_cast<int>(std::min<long>(left, 100));
      }
      std::vector<pollfd> fds{{sig_fd_, POLLIN, 0}};
      for (Child* c : children_) {
        if (c->out_fd >= 0) fds.push_back({c->out_fd, POLLIN, 0});
      }
      int n = ::poll(fds.data(), fds.size(), timeout_ms);
      if (n < 0 && errno != EINTR) return false;
      if (fds[0].revents & POLLIN) {
        signalfd_siginfo info;
        while (::read(sig_fd_, &info, sizeof(info)) == sizeof(info)) {
          if (info.ssi_signo == SIGINT || info.ssi_signo == SIGTERM) {
            ++signals_;
            last_signal_ = static_cast<int>(info.ssi_signo);
          }
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        for (Child* c : children_) {
          if (c->out_fd == fds[i].fd) Drain(*c);
        }
      }
      Reap(children_);
    }
    return true;
  }

  int signals() const { return signals_; }
  int last_signal() const { return last_signal_; }

 private:
  int sig_fd_;
  std::vector<Child*> children_;
  int signals_ = 0;
  int last_signal_ = 0;
};

// Signal to the child's process group, ignoring a child already reaped.
void SignalGroup(const Child& c, int signo) {
  if (c.pid > 0 && !c.exit_code) ::kill(-c.pid, signo);
}

// SIGTERM (or `signo`), then SIGKILL when the child outlives the grace period. A second Ctrl-C
// meanwhile skips the wait.
void Stop(Loop& loop, Child& c, int signo, double grace_s) {
  if (c.pid < 0 || c.exit_code) return;
  SignalGroup(c, signo);
  int signals_before = loop.signals();
  auto deadline = Clock::now() + milliseconds(static_cast<long>(grace_s * 1000));
  bool stopped = loop.RunUntil(
      [&] { return c.exit_code.has_value() || loop.signals() > signals_before; }, deadline);
  if (!stopped || !c.exit_code) {
    Say(c.name + " did not stop in time: killing it");
    SignalGroup(c, SIGKILL);
    loop.RunUntil([&] { return c.exit_code.has_value(); }, std::nullopt);
  }
}

int Run(Options& opt) {
  auto pick = [](std::optional<int>& port) {
    if (!port) port = FreePort();
  };
  pick(opt.http_port);
  pick(opt.grpc_port);
  pick(opt.metrics_port);
  if (opt.app_id.empty() && !opt.command.empty()) {
    opt.app_id = std::filesystem::path(opt.command[0]).filename().string();
  }

  std::vector<std::string> sidecar_argv{FindRemorad(),
                                        "--app-id",
                                        opt.app_id,
                                        "--dapr-http-port",
                                        std::to_string(*opt.http_port),
                                        "--dapr-grpc-port",
                                        std::to_string(*opt.grpc_port),
                                        "--metrics-port",
                                        std::to_string(*opt.metrics_port)};
  if (opt.app_port) {
    sidecar_argv.push_back("--app-port");
    sidecar_argv.push_back(std::to_string(*opt.app_port));
  }
  sidecar_argv.insert(sidecar_argv.end(), opt.remorad_args.begin(), opt.remorad_args.end());

  // Signals arrive through the signalfd only; children get them unblocked again after fork.
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &blocked, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  int sig_fd = ::signalfd(-1, &blocked, SFD_NONBLOCK | SFD_CLOEXEC);

  Child sidecar;
  sidecar.name = "remorad";
  sidecar.prefix = "== DAPR == ";
  Child app;
  app.name = "app";
  app.prefix = "== APP == ";
  Loop loop(sig_fd, {&sidecar, &app});

  std::string shown;
  for (const auto& a : sidecar_argv) shown += (shown.empty() ? "" : " ") + a;
  Say("starting sidecar: " + shown);
  if (!Spawn(sidecar, sidecar_argv, {}, blocked)) return 1;

  // Ready when healthz answers 204: remorad then has its components and HTTP API up.
  auto deadline = Clock::now() + milliseconds(static_cast<long>(opt.startup_timeout_s * 1000));
  bool ready = false;
  while (!ready && !sidecar.exit_code && loop.signals() == 0 && Clock::now() < deadline) {
    ready = HttpStatusIs(*opt.http_port, "/v1.0/healthz", 204);
    if (!ready) loop.RunUntil([] { return false; }, Clock::now() + milliseconds(20));
  }
  if (!ready) {
    if (sidecar.exit_code) {
      Say("remorad exited before it was ready");
      loop.RunUntil([&] { return sidecar.out_fd < 0; }, Clock::now() + milliseconds(500));
      return 1;
    }
    Say(loop.signals() ? "interrupted" : "remorad not ready in time: stopping it");
    Stop(loop, sidecar, SIGTERM, opt.stop_timeout_s);
    return loop.signals() ? 128 + loop.last_signal() : 1;
  }
  Say("remorad is up: HTTP " + std::to_string(*opt.http_port) + ", gRPC " +
      std::to_string(*opt.grpc_port));

  if (opt.command.empty()) {
    // Sidecar only (like `dapr run` without a command): run until stopped.
    loop.RunUntil([&] { return sidecar.exit_code || loop.signals() > 0; }, std::nullopt);
    Stop(loop, sidecar, SIGTERM, opt.stop_timeout_s);
    loop.RunUntil([&] { return sidecar.out_fd < 0; }, Clock::now() + milliseconds(500));
    return loop.signals() ? 0 : sidecar.exit_code.value_or(1);
  }

  std::map<std::string, std::string> env{{"DAPR_HTTP_PORT", std::to_string(*opt.http_port)},
                                         {"DAPR_GRPC_PORT", std::to_string(*opt.grpc_port)},
                                         {"DAPR_METRICS_PORT", std::to_string(*opt.metrics_port)},
                                         {"APP_ID", opt.app_id}};
  if (opt.app_port) env["APP_PORT"] = std::to_string(*opt.app_port);
  // APP_API_TOKEN and DAPR_API_TOKEN reach both children through the inherited environment.
  Say("starting app: " + opt.command[0]);
  if (!Spawn(app, opt.command, env, blocked)) {
    Stop(loop, sidecar, SIGTERM, opt.stop_timeout_s);
    return 127;
  }

  loop.RunUntil([&] { return app.exit_code || sidecar.exit_code || loop.signals() > 0; },
                std::nullopt);
  int code = 0;
  if (loop.signals() > 0 && !app.exit_code) {
    // Ctrl-C / SIGTERM: the app first, so it can finish its calls into a live sidecar.
    Say("stopping (signal " + std::to_string(loop.last_signal()) + ")");
    Stop(loop, app, loop.last_signal(), opt.stop_timeout_s);
    Stop(loop, sidecar, SIGTERM, opt.stop_timeout_s);
    code = *app.exit_code;
  } else if (app.exit_code) {
    Stop(loop, sidecar, SIGTERM, opt.stop_timeout_s);
    code = *app.exit_code;
  } else {
    Say("remorad stopped: stopping the app");
    Stop(loop, app, SIGTERM, opt.stop_timeout_s);
    code = 1;  // the sidecar going away is a failure whatever the app then does
  }
  // Relay what the children printed last.
  loop.RunUntil([&] { return sidecar.out_fd < 0 && app.out_fd < 0; },
                Clock::now() + milliseconds(500));
  return code;
}

}  // namespace
}  // namespace remora::launcher

int main(int argc, char** argv) {
  using remora::launcher::Options;
  // Everything after the first `--` is the function's command line, untouched by the parser.
  std::vector<std::string> before;
  Options opt;
  bool in_command = false;
  for (int i = 1; i < argc; ++i) {
    if (!in_command && std::strcmp(argv[i], "--") == 0) {
      in_command = true;
    } else if (in_command) {
      opt.command.push_back(argv[i]);
    } else {
      before.push_back(argv[i]);
    }
  }

  CLI::App cli{"remora: runs a function next to its remorad sidecar (like `dapr run`)", "remora"};
  cli.require_subcommand(1);
  CLI::App* run = cli.add_subcommand(
      "run",
      "Start remorad and the command after `--` together. Flags not listed here go to remorad "
      "unchanged (e.g. --resources-path DIR, --config FILE, --log-level debug).");
  run->allow_extras();
  run->add_option("--app-id", opt.app_id, "app id (default: the command's file name)");
  run->add_option("--app-port", opt.app_port, "port the function listens on")
      ->check(CLI::Range(1, 65535));
  run->add_option("--dapr-http-port", opt.http_port, "remorad's HTTP port (default: free)")
      ->check(CLI::Range(1, 65535));
  run->add_option("--dapr-grpc-port", opt.grpc_port, "remorad's gRPC port (default: free)")
      ->check(CLI::Range(1, 65535));
  run->add_option("--metrics-port", opt.metrics_port, "remorad's metrics port (default: free)")
      ->check(CLI::Range(1, 65535));
  run->add_option("--startup-timeout", opt.startup_timeout_s,
                  "seconds to wait for GET /v1.0/healthz before giving up");
  run->add_option("--stop-timeout", opt.stop_timeout_s,
                  "seconds each process gets to stop before SIGKILL");
  std::vector<std::string> args(before.rbegin(), before.rend());
  try {
    cli.parse(args);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  opt.remorad_args = run->remaining();
  return remora::launcher::Run(opt);
}
