// State GET through the C++ SDK: embedded (runtime in-process, state.in-memory) and remote (gRPC to
// remorad), plus a remote client's first call in a fresh process, connect included.
//
//   sdk_state_bench [benchmark flags]
//     REMORA_BENCH_GRPC_ADDRESS=host:port  use that sidecar (its store "statestore") instead of
//                                          starting remorad
//     REMORAD=/path/to/remorad             the remorad to start (default: the one built with this)
//
// Each benchmark reports, besides Google Benchmark's mean time, the p50/p99 of single calls
// (p50_us, p99_us; two clock reads per call included). RemoteFirstCall starts this binary again
// with --first-call and reports exec -> first answer (spawn_to_answer_*) and construction -> first
// answer inside the child (first_call_*).

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "remora/client.h"
#include "tests/tools/test_env.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kStore = "statestore";
constexpr const char* kKey = "bench-key";
const std::string kValue(100, 'v');  // a small JSON-ish document's worth

std::string g_self;  // this binary, for RemoteFirstCall

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

void ReportPercentiles(benchmark::State& state, std::vector<double>& samples,
                       const std::string& prefix = "") {
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[static_cast<size_t>(q * (samples.size() - 1))]; };
  state.counters[prefix + "p50_us"] = at(0.50);
  state.counters[prefix + "p99_us"] = at(0.99);
}

// The sidecar for the remote benchmarks: given, or a remorad started once for the process.
const std::string& RemoteAddress() {
  static std::optional<remora::testing::Remorad> remorad;
  static std::string address = [] {
    if (const char* given = std::getenv("REMORA_BENCH_GRPC_ADDRESS"); given && *given) {
      return std::string(given);
    }
    if (std::getenv("REMORAD") == nullptr) ::setenv("REMORAD", REMORA_REMORAD_PATH, 1);
    auto started = remora::testing::StartRemorad({"--app-id", "bench", "--log-level", "warn"});
    if (!started.ok()) {
      std::cerr << "cannot start remorad: " << started.status() << "\n";
      std::exit(1);
    }
    remorad = *std::move(started);
    return "127.0.0.1:" + std::to_string(remorad->grpc_port);
  }();
  return address;
}

void GetLoop(benchmark::State& state, remora::Client& client) {
  if (absl::Status s = client.SaveState(kStore, kKey, kValue); !s.ok()) {
    state.SkipWithError(std::string(s.ToString()).c_str());
    return;
  }
  std::vector<double> samples;
  samples.reserve(1 << 20);
  for (auto _ : state) {
    Clock::time_point start = Clock::now();
    auto got = client.GetState(kStore, kKey);
    Clock::time_point end = Clock::now();
    if (!got.ok() || got->value.size() != kValue.size()) {
      state.SkipWithError("GET failed");
      break;
    }
    if (samples.size() < samples.capacity()) samples.push_back(Micros(end - start));
  }
  ReportPercentiles(state, samples);
}

void BM_EmbeddedGet(benchmark::State& state) {
  static auto client = remora::Client::Embedded();
  if (!client.ok()) {
    state.SkipWithError(std::string(client.status().ToString()).c_str());
    return;
  }
  GetLoop(state, **client);
}
BENCHMARK(BM_EmbeddedGet);

void BM_RemoteGet(benchmark::State& state) {
  remora::RemoteOptions options;
  options.address = RemoteAddress();
  auto client = remora::Client::Remote(options);
  GetLoop(state, *client);
}
BENCHMARK(BM_RemoteGet)->UseRealTime();

// One child process per iteration: exec, create a client, one GET, print, exit.
void BM_RemoteFirstCall(benchmark::State& state) {
  const std::string address = RemoteAddress();
  {
    remora::RemoteOptions options;
    options.address = address;
    (void)remora::Client::Remote(options)->SaveState(kStore, kKey, kValue);
  }
  std::vector<double> spawn_to_answer;
  std::vector<double> in_child;
  for (auto _ : state) {
    int out[2];
    if (::pipe(out) != 0) {
      state.SkipWithError("pipe failed");
      break;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::string flag = "--first-call=" + address;
    char* argv[] = {g_self.data(), flag.data(), nullptr};
    Clock::time_point start = Clock::now();
    pid_t pid = -1;
    int rc = posix_spawn(&pid, g_self.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) {
      ::close(out[0]);
      state.SkipWithError("spawn failed");
      break;
    }
    char buf[128] = {};
    ssize_t n = ::read(out[0], buf, sizeof(buf) - 1);  // the child's one line: the answer
    Clock::time_point answered = Clock::now();
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    double child_us = 0;
    if (n <= 0 || std::sscanf(buf, "ok %lf", &child_us) != 1) {
      state.SkipWithError(("first call failed: " + std::string(buf, n > 0 ? n : 0)).c_str());
      break;
    }
    spawn_to_answer.push_back(Micros(answered - start));
    in_child.push_back(child_us);
  }
  ReportPercentiles(state, spawn_to_answer, "spawn_to_answer_");
  ReportPercentiles(state, in_child, "first_call_");
}
BENCHMARK(BM_RemoteFirstCall)->Iterations(30)->UseRealTime()->Unit(benchmark::kMillisecond);

// Child mode of BM_RemoteFirstCall.
int FirstCall(const std::string& address) {
  Clock::time_point start = Clock::now();
  remora::RemoteOptions options;
  options.address = address;
  auto client = remora::Client::Remote(options);
  auto got = client->GetState(kStore, kKey);
  double us = Micros(Clock::now() - start);
  if (!got.ok()) {
    std::printf("error %s\n", std::string(got.status().ToString()).c_str());
    return 1;
  }
  std::printf("ok %.1f\n", us);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr std::string_view kFirstCall = "--first-call=";
  if (argc == 2 && std::string_view(argv[1]).starts_with(kFirstCall)) {
    return FirstCall(std::string(argv[1] + kFirstCall.size()));
  }
  g_self = "/proc/self/exe";
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
