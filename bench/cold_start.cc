// cold_start: time from exec of a server to its first expected HTTP status on a health URL.
//
//   cold_start [--runs N] [--warmup N] --port P [--path /v1.0/healthz] [--status 204]
//              [--server-cpu C] [--client-cpu C] [--timeout-ms T] [--log FILE]
//              -- program [args...]
//   cold_start --free-port        prints a currently free loopback TCP port
//
// Each run spawns the program in its own process group (optionally pinned to --server-cpu),
// then polls 127.0.0.1:P in a tight loop: non-blocking connect, "GET <path>", read the status
// line; a refused connection or another status is retried after ~50 µs. The clock starts right
// before posix_spawn and stops when the status line with the expected code has arrived. The
// whole process group is then killed with SIGKILL and the port is polled until it refuses
// connections again, so the next run binds a free port. The program's stdout and stderr go to
// --log (appended; default /dev/null). Warm-up runs (default 1) are not counted: the figure is
// process start-up, not a cold page cache.
//
// Output: one line per run on stderr, and on stdout
//   cold_start runs=N median_us=M min_us=A max_us=B
// Exit status 1 when any run fails (program exits early, timeout, bad arguments).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace {

using Clock = struct timespec;

int64_t NowNs() {
  Clock t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

void PauseUs(int us) {
  struct timespec t = {0, us * 1000L};
  nanosleep(&t, nullptr);
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// Waits for `events` on fd in slices of 100 µs until the deadline. True when ready.
bool WaitFd(int fd, short events, int64_t deadline_ns) {
  while (NowNs() < deadline_ns) {
    pollfd p{fd, events, 0};
    struct timespec slice = {0, 100 * 1000};
    int n = ppoll(&p, 1, &slice, nullptr);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
  return false;
}

enum class Probe { kRefused, kOtherStatus, kExpected, kTimeout };

// One attempt: connect, send the request, read the status code.
Probe ProbeOnce(int port, const std::string& request, int expected, int64_t deadline_ns) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Probe::kRefused;
  sockaddr_in addr = Loopback(port);
  Probe result = Probe::kRefused;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) {
      close(fd);
      return Probe::kRefused;
    }
    if (!WaitFd(fd, POLLOUT, deadline_ns)) {
      close(fd);
      return Probe::kTimeout;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      close(fd);
      return Probe::kRefused;
    }
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return Probe::kRefused;
  }
  // "HTTP/1.1 204" is 12 bytes; read until we have them (or the peer closes).
  char buf[256];
  size_t have = 0;
  while (have < 12) {
    ssize_t n = recv(fd, buf + have, sizeof(buf) - have, 0);
    if (n > 0) {
      have += static_cast<size_t>(n);
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
    if (!WaitFd(fd, POLLIN, deadline_ns)) {
      close(fd);
      return Probe::kTimeout;
    }
  }
  if (have >= 12 && std::string_view(buf, 5) == "HTTP/") {
    int status = std::atoi(std::string(buf + 9, 3).c_str());
    result = status == expected ? Probe::kExpected : Probe::kOtherStatus;
  }
  close(fd);
  return result;
}

bool PortRefuses(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(port);
  bool refused = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0;
  close(fd);
  return refused;
}

bool SetCpu(int cpu) {
  if (cpu < 0) return true;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

struct Args {
  int runs = 10;
  int warmup = 1;
  int port = 0;
  std::string path = "/v1.0/healthz";
  int status = 204;
  int server_cpu = -1;
  int client_cpu = -1;
  int timeout_ms = 5000;
  std::string log = "/dev/null";
  std::vector<char*> argv;
};

int Usage() {
  std::fprintf(stderr,
               "usage: cold_start [--runs N] [--warmup N] --port P [--path PATH] [--status CODE]\n"
               "                  [--server-cpu C] [--client-cpu C] [--timeout-ms T] [--log FILE]\n"
               "                  -- program [args...]\n"
               "       cold_start --free-port\n");
  return 2;
}

// One timed run; returns microseconds, or -1 on failure.
int64_t RunOnce(const Args& args, const std::string& request) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, args.log.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);

  // posix_spawn has no affinity attribute: the child inherits ours, so borrow the server's CPU
  // for the spawn and go back to the client's right after.
  SetCpu(args.server_cpu);
  pid_t pid = -1;
  int64_t start = NowNs();
  int rc = posix_spawnp(&pid, args.argv[0], &actions, &attr, args.argv.data(), environ);
  SetCpu(args.client_cpu);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    std::fprintf(stderr, "cold_start: cannot start %s: %s\n", args.argv[0], std::strerror(rc));
    return -1;
  }

  int64_t deadline = start + int64_t{args.timeout_ms} * 1000000;
  int64_t elapsed_us = -1;
  const char* failure = "timed out";
  while (NowNs() < deadline) {
    int wstatus;
    if (waitpid(pid, &wstatus, WNOHANG) == pid) {
      failure = "the program exited before answering";
      pid = -1;
      break;
    }
    Probe p = ProbeOnce(args.port, request, args.status, deadline);
    if (p == Probe::kExpected) {
      elapsed_us = (NowNs() - start) / 1000;
      break;
    }
    if (p == Probe::kTimeout) break;
    PauseUs(50);
  }
  if (pid > 0) {
    killpg(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  // Other processes of the group (nginx's worker) die asynchronously: wait for the port.
  int64_t port_deadline = NowNs() + 2000000000LL;
  while (!PortRefuses(args.port) && NowNs() < port_deadline) PauseUs(200);
  if (elapsed_us < 0) std::fprintf(stderr, "cold_start: %s: %s\n", args.argv[0], failure);
  return elapsed_us;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--free-port") {
      int port = FreePort();
      if (port < 0) return 1;
      std::printf("%d\n", port);
      return 0;
    }
    if (a == "--") {
      for (int j = i + 1; j < argc; ++j) args.argv.push_back(argv[j]);
      break;
    }
    const char* v = next();
    if (v == nullptr) return Usage();
    if (a == "--runs") {
      args.runs = std::atoi(v);
    } else if (a == "--warmup") {
      args.warmup = std::atoi(v);
    } else if (a == "--port") {
      args.port = std::atoi(v);
    } else if (a == "--path") {
      args.path = v;
    } else if (a == "--status") {
      args.status = std::atoi(v);
    } else if (a == "--server-cpu") {
      args.server_cpu = std::atoi(v);
    } else if (a == "--client-cpu") {
      args.client_cpu = std::atoi(v);
    } else if (a == "--timeout-ms") {
      args.timeout_ms = std::atoi(v);
    } else if (a == "--log") {
      args.log = v;
    } else {
      return Usage();
    }
  }
  if (args.argv.empty() || args.port <= 0 || args.runs <= 0) return Usage();
  args.argv.push_back(nullptr);
  SetCpu(args.client_cpu);
  if (!PortRefuses(args.port)) {
    std::fprintf(stderr, "cold_start: port %d is already in use\n", args.port);
    return 1;
  }

  const std::string request =
      "GET " + args.path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  std::vector<int64_t> times;
  for (int i = 0; i < args.warmup + args.runs; ++i) {
    int64_t us = RunOnce(args, request);
    if (us < 0) return 1;
    bool counted = i >= args.warmup;
    std::fprintf(stderr, "cold_start: run %d%s: %lld us\n", i + 1, counted ? "" : " (warm-up)",
                 static_cast<long long>(us));
    if (counted) times.push_back(us);
  }
  std::sort(times.begin(), times.end());
  size_t n = times.size();
  int64_t median = n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
  std::printf("cold_start runs=%zu median_us=%lld min_us=%lld max_us=%lld\n", n,
              static_cast<long long>(median), static_cast<long long>(times.front()),
              static_cast<long long>(times.back()));
  return 0;
}
