// checkout: publishes orders to topic "orders" of the pub/sub component "pubsub", through its
// sidecar (remora::Client::Remote: 127.0.0.1:$DAPR_GRPC_PORT). Each order carries the wall-clock
// time it was created, so order-processor can report end-to-end latency.
//
//   checkout [--orders N] [--rate PER_SECOND] [--duration SECONDS]
//
// Stops after N orders (default 20) or SECONDS (default 60), whichever comes first, or on
// SIGINT/SIGTERM; exit code 1 when no order could be published.

#include <csignal>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "nlohmann/json.hpp"
#include "remora/client.h"

namespace {

std::atomic<bool> stop{false};

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  int orders = 20;
  double rate = 10;
  double duration_s = 60;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--orders") orders = std::atoi(argv[i + 1]);
    if (flag == "--rate") rate = std::atof(argv[i + 1]);
    if (flag == "--duration") duration_s = std::atof(argv[i + 1]);
  }
  std::signal(SIGINT, [](int) { stop = true; });
  std::signal(SIGTERM, [](int) { stop = true; });
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  std::unique_ptr<remora::Client> client = remora::Client::Remote();
  const char* items[] = {"coffee", "tea", "cake", "bagel"};
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::duration<double>(duration_s);
  auto interval = std::chrono::duration<double>(rate > 0 ? 1.0 / rate : 0);
  int published = 0;
  for (int n = 1; n <= orders && !stop && std::chrono::steady_clock::now() < deadline; ++n) {
    nlohmann::json order = {{"orderId", "order-" + std::to_string(n)},
                            {"item", items[n % 4]},
                            {"quantity", 1 + n % 3},
                            {"createdAtUs", NowMicros()}};
    // The sidecar may still be loading its gRPC API when we start: retry briefly.
    absl::Status s;
    for (int attempt = 0; attempt < 50 && !stop; ++attempt) {
      s = client->PublishJson("pubsub", "orders", order);
      if (s.code() != absl::StatusCode::kUnavailable) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (s.ok()) {
      ++published;
      std::printf("published %s (%s x%d)\n", order["orderId"].get<std::string>().c_str(),
                  order["item"].get<std::string>().c_str(), order["quantity"].get<int>());
    } else {
      std::printf("publish of order-%d failed: %s\n", n, std::string(s.message()).c_str());
    }
    std::this_thread::sleep_until(
        start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval * n));
  }
  std::printf("checkout done: %d order(s) published\n", published);
  return published > 0 ? 0 : 1;
}
