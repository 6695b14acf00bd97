// The client of bench/grpc_state.sh: state GET through the C++ SDK (remora::Client), one client
// making sequential calls, every call's latency recorded (exact percentiles, not averages).
//
//   grpc_state_client --free-port                       print a free loopback port
//   grpc_state_client --seed ADDR --value-file F        SaveState (retrying until the sidecar's
//                                                       gRPC API answers, ≤ 10 s), then GetState;
//                                                       prints "SEED bytes=<n> etag=<e>"
//   grpc_state_client --wait ADDR                       GetState until it answers (≤ 10 s)
//   grpc_state_client --get ADDR [--duration S] [--warmup S]
//       remote transport (gRPC) to ADDR; prints one line:
//       LOAD_RESULT requests=<n> duration_us=<d> p50_us=<p> p99_us=<p> errors=<e> bytes=<b>
//       etag=<t>
//   grpc_state_client --embedded --value-file F [--duration S] [--warmup S]
//       embedded transport (runtime in-process, state.in-memory), same line
//   grpc_state_client --first-call-runs N ADDR --child PATH
//       N+1 times (the first discarded): spawn PATH (bench/grpc_first_call: a small program linked
//       with the SDK's remote transport only), which creates a client and makes one GET; time
//       from just before posix_spawn to the child's answer line. Prints "FIRST_CALL runs=N
//       median_us= min_us= max_us= in_child_median_us=" (in_child: client construction → GET
//       answered, inside the child, connect included).
//
// Common options: --store S (statestore), --key K (bench-1k). Latency is two steady_clock reads
// around each call (~20-40 ns, included).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "remora/client.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "grpc_state_client: " << message << "\n";
  std::exit(2);
}

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double At(std::vector<double>& sorted, double q) {
  return sorted.empty() ? 0 : sorted[static_cast<size_t>(q * (sorted.size() - 1))];
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A port the kernel just handed out on loopback; free unless someone else takes it meanwhile.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::unique_ptr<remora::Client> RemoteClient(const std::string& address) {
  remora::RemoteOptions options;
  options.address = address;
  return remora::Client::Remote(options);
}

// Sequential GETs: `warmup` seconds unrecorded, then `duration` seconds recorded.
int GetLoop(remora::Client& client, const std::string& store, const std::string& key, double warmup,
            double duration) {
  auto run_for = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  int64_t errors = 0;
  std::string etag;
  size_t bytes = 0;
  for (Clock::time_point end = Clock::now() + run_for(warmup); Clock::now() < end;) {
    if (!client.GetState(store, key).ok()) ++errors;
  }
  std::vector<double> samples;
  samples.reserve(1 << 20);
  Clock::time_point start = Clock::now();
  Clock::time_point end = start + run_for(duration);
  Clock::time_point now = start;
  while (now < end) {
    Clock::time_point before = Clock::now();
    auto got = client.GetState(store, key);
    now = Clock::now();
    samples.push_back(Micros(now - before));
    if (!got.ok() || !got->found) {
      ++errors;
    } else {
      bytes = got->value.size();
      etag = got->etag;
    }
  }
  double elapsed = Micros(now - start);
  std::sort(samples.begin(), samples.end());
  std::printf(
      "LOAD_RESULT requests=%zu duration_us=%.0f p50_us=%.2f p99_us=%.2f errors=%lld bytes=%zu "
      "etag=%s\n",
      samples.size(), elapsed, At(samples, 0.50), At(samples, 0.99), static_cast<long long>(errors),
      bytes, etag.empty() ? "-" : etag.c_str());
  return 0;
}

// Retries `call` every 10 ms for up to 10 s: remorad loads its gRPC API after the HTTP one.
template <typename F>
bool Retry(F call) {
  for (Clock::time_point end = Clock::now() + std::chrono::seconds(10); Clock::now() < end;) {
    if (call()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

int FirstCallRuns(int runs, std::string child, const std::string& address, const std::string& store,
                  const std::string& key) {
  std::vector<double> spawn_to_answer;
  std::vector<double> in_child;
  for (int i = 0; i <= runs; ++i) {
    int out[2];
    if (::pipe(out) != 0) Die("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::string a1 = address, a2 = store, a3 = key;
    char* argv[] = {child.data(), a1.data(), a2.data(), a3.data(), nullptr};
    Clock::time_point start = Clock::now();
    pid_t pid = -1;
    int rc = posix_spawn(&pid, child.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) Die("spawn failed");
    char buf[256] = {};
    ssize_t n = ::read(out[0], buf, sizeof(buf) - 1);  // the child's one line: the answer
    Clock::time_point answered = Clock::now();
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    double child_us = 0;
    if (n <= 0 || std::sscanf(buf, "ok %lf", &child_us) != 1) {
      Die("first call failed: " + std::string(buf, n > 0 ? n : 0));
    }
    if (i == 0) continue;  // warm-up: page cache, not process start-up
    spawn_to_answer.push_back(Micros(answered - start));
    in_child.push_back(child_us);
  }
  std::sort(spawn_to_answer.begin(), spawn_to_answer.end());
  std::sort(in_child.begin(), in_child.end());
  auto median = [](const std::vector<double>& v) {
    size_t n = v.size();
    return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  };
  std::printf("FIRST_CALL runs=%d median_us=%.0f min_us=%.0f max_us=%.0f in_child_median_us=%.0f\n",
              runs, median(spawn_to_answer), spawn_to_answer.front(), spawn_to_answer.back(),
              median(in_child));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode, address, value_file, child, store = "statestore", key = "bench-1k";
  double duration = 10, warmup = 1;
  int runs = 10;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value for " + arg);
      return argv[++i];
    };
    if (arg == "--free-port" || arg == "--embedded") {
      mode = arg;
    } else if (arg == "--seed" || arg == "--wait" || arg == "--get") {
      mode = arg;
      address = next();
    } else if (arg == "--first-call-runs") {
      mode = arg;
      runs = std::atoi(next().c_str());
      address = next();
    } else if (arg == "--child") {
      child = next();
    } else if (arg == "--value-file") {
      value_file = next();
    } else if (arg == "--duration") {
      duration = std::atof(next().c_str());
    } else if (arg == "--warmup") {
      warmup = std::atof(next().c_str());
    } else if (arg == "--store") {
      store = next();
    } else if (arg == "--key") {
      key = next();
    } else {
      Die("unknown option " + arg);
    }
  }

  if (mode == "--free-port") {
    std::printf("%d\n", FreePort());
    return 0;
  }
  if (mode == "--first-call-runs") {
    if (runs < 1 || child.empty()) Die("--first-call-runs needs N ≥ 1 and --child");
    return FirstCallRuns(runs, child, address, store, key);
  }
  if (mode == "--seed") {
    if (value_file.empty()) Die("--seed needs --value-file");
    const std::string value = ReadFile(value_file);
    auto client = RemoteClient(address);
    if (!Retry([&] { return client->SaveState(store, key, value).ok(); })) {
      Die("SaveState to " + address + " never succeeded");
    }
    auto got = client->GetState(store, key);
    if (!got.ok() || got->value != value) Die("GetState does not answer the saved value");
    std::printf("SEED bytes=%zu etag=%s\n", got->value.size(), got->etag.c_str());
    return 0;
  }
  if (mode == "--wait") {
    auto client = RemoteClient(address);
    if (!Retry([&] { return client->GetState(store, key).ok(); })) {
      Die(address + " never answered GetState");
    }
    return 0;
  }
  if (mode == "--get") {
    auto client = RemoteClient(address);
    return GetLoop(*client, store, key, warmup, duration);
  }
  if (mode == "--embedded") {
    if (value_file.empty()) Die("--embedded needs --value-file");
    auto client = remora::Client::Embedded();
    if (!client.ok()) Die("embedded client: " + std::string(client.status().ToString()));
    if (absl::Status s = (*client)->SaveState(store, key, ReadFile(value_file)); !s.ok()) {
      Die("embedded SaveState: " + std::string(s.ToString()));
    }
    return GetLoop(**client, store, key, warmup, duration);
  }
  Die("no mode given (see the comment at the top of grpc_state_client.cc)");
}
