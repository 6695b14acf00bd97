// order-processor: subscribes to topic "orders" of "pubsub" and, per order,
//   1. records it in the state store "statestore" (key "order-<id>", created first-write-only, so
//      a redelivered order is recognised and not processed twice),
//   2. checks the quantity against the setting "orders.maxQuantity" from the configuration store
//      "configstore" (read at start; a build or variant without one uses 5 and says so),
//   3. invokes "reserve" on the app "inventory" through the sidecars,
//   4. updates the order's state with the etag it read (optimistic concurrency),
// and measures end-to-end latency from checkout's createdAtUs. At start it also reads the secret
// "payment-api-key" from "secretstore" (it only reports its length: never print secrets).
//
//   order-processor [--orders N] [--duration SECONDS]
//
// Exits after N orders were processed (default: run until SIGINT/SIGTERM) or after SECONDS, and
// prints a summary: orders processed, rejected, failed, latency p50/p99. Exit code 0 when every
// expected order was processed. Served over gRPC (remora::App on $APP_PORT).

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "remora/app.h"
#include "remora/client.h"

namespace {

using nlohmann::json;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

class Processor {
 public:
  Processor(remora::Client& client, int max_quantity)
      : client_(client), max_quantity_(max_quantity) {}

  remora::TopicResult Handle(const remora::TopicEvent& event) {
    auto order = event.Json();
    if (!order.ok() || !order->contains("orderId")) {
      std::printf("dropping a malformed event %s\n", event.id.c_str());
      return remora::TopicResult::kDrop;
    }
    const std::string id = order->value("orderId", "");
    const std::string key = "order-" + id;

    // 1. Record the order unless it is known already (at-least-once delivery redelivers).
    remora::StateItem received =
        remora::StateItem::FromJson(key, {{"order", *order}, {"status", "received"}});
    received.options.concurrency = remora::Concurrency::kFirstWrite;
    absl::Status created = client_.SaveState("statestore", received);
    if (!created.ok()) {
      // Stores report the existing key differently (ABORTED, or an error naming first-write):
      // look at the key itself. Still "received" means an earlier attempt did not finish.
      auto known = client_.GetState("statestore", key);
      if (!known.ok() || !known->found) {
        std::printf("%s: state store failed (%s): retry\n", id.c_str(), Msg(created).c_str());
        return remora::TopicResult::kRetry;
      }
      auto value = known->Json();
      if (value.ok() && value->value("status", "") != "received") {
        std::printf("%s was processed already: skipping the redelivery\n", id.c_str());
        return remora::TopicResult::kSuccess;
      }
    }

    // 2 and 3: reserve stock unless the order asks for too much.
    int quantity = order->value("quantity", 1);
    json outcome;
    if (quantity > max_quantity_) {
      outcome = {{"status", "rejected"}, {"reason", "quantity above orders.maxQuantity"}};
    } else {
      json ask = {{"item", order->value("item", "")}, {"quantity", quantity}};
      auto reply =
          client_.InvokeMethod("inventory", "reserve", "POST", ask.dump(), "application/json");
      if (!reply.ok()) {
        std::printf("%s: inventory failed (%s): retry\n", id.c_str(), Msg(reply.status()).c_str());
        return remora::TopicResult::kRetry;
      }
      auto answer = reply->Json();
      bool reserved = answer.ok() && answer->value("reserved", false);
      outcome = {{"status", reserved ? "reserved" : "out-of-stock"},
                 {"inventory", answer.ok() ? *answer : json()}};
    }

    // 4. Update the order with the etag just read: a concurrent writer makes this ABORTED and
    // we read again rather than overwrite its change.
    for (int attempt = 0;; ++attempt) {
      auto current = client_.GetState("statestore", key);
      if (!current.ok() || attempt == 10) {
        std::printf("%s: cannot update its state: retry\n", id.c_str());
        return remora::TopicResult::kRetry;
      }
      json value =
          current->found && current->Json().ok() ? *current->Json() : json{{"order", *order}};
      value.update(outcome);
      remora::StateItem update = remora::StateItem::FromJson(key, value);
      if (!current->etag.empty()) update.etag = current->etag;
      absl::Status saved = client_.SaveState("statestore", update);
      if (saved.ok()) break;
      if (saved.code() != absl::StatusCode::kAborted) {
        std::printf("%s: state store failed (%s): retry\n", id.c_str(), Msg(saved).c_str());
        return remora::TopicResult::kRetry;
      }
    }

    int64_t latency_us = NowMicros() - order->value("createdAtUs", NowMicros());
    {
      std::lock_guard<std::mutex> lock(mu_);
      latencies_us_.push_back(latency_us);
      if (outcome["status"] == "rejected") ++rejected_;
    }
    std::printf("%s %s (%.1f ms end to end)\n", id.c_str(),
                outcome["status"].get<std::string>().c_str(), latency_us / 1000.0);
    processed_.fetch_add(1);
    return remora::TopicResult::kSuccess;
  }

  int processed() const { return processed_.load(); }

  void PrintSummary(int expected) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int64_t> sorted = latencies_us_;
    std::sort(sorted.begin(), sorted.end());
    auto pct = [&](double p) {
      if (sorted.empty()) return 0.0;
      size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * (sorted.size() - 1) + 0.5));
      return sorted[i] / 1000.0;
    };
    std::string want = expected > 0 ? "/" + std::to_string(expected) : "";
    std::printf(
        "SUMMARY orders processed %d%s, rejected %d; end-to-end latency p50 %.2f ms, p99 %.2f "
        "ms\n",
        static_cast<int>(sorted.size()), want.c_str(), rejected_, pct(0.50), pct(0.99));
  }

 private:
  remora::Client& client_;
  const int max_quantity_;
  std::atomic<int> processed_{0};
  std::mutex mu_;
  std::vector<int64_t> latencies_us_;
  int rejected_ = 0;
};

// The setting from the configuration store, or `fallback` when there is none.
int MaxQuantity(remora::Client& client, int fallback) {
  remora::GetConfigurationRequest request{.store = "configstore", .keys = {"orders.maxQuantity"}};
  auto items = client.GetConfiguration(request);
  if (!items.ok()) {
    std::printf("configuration unavailable (%s): orders.maxQuantity = %d\n",
                Msg(items.status()).c_str(), fallback);
    return fallback;
  }
  auto it = items->find("orders.maxQuantity");
  int value = it == items->end() ? fallback : std::atoi(it->second.value.c_str());
  std::printf("orders.maxQuantity = %d (%s)\n", value,
              it == items->end() ? "not set in configstore" : "from configstore");
  return value > 0 ? value : fallback;
}

void ReadPaymentKey(remora::Client& client) {
  auto secret = client.GetSecret("secretstore", "payment-api-key");
  if (!secret.ok()) {
    std::printf("secret payment-api-key unavailable (%s)\n", Msg(secret.status()).c_str());
    return;
  }
  size_t length = secret->empty() ? 0 : secret->begin()->second.size();
  std::printf("secret payment-api-key read (%zu characters)\n", length);
}

}  // namespace

int main(int argc, char** argv) {
  int expected = 0;
  double duration_s = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--orders") expected = std::atoi(argv[i + 1]);
    if (flag == "--duration") duration_s = std::atof(argv[i + 1]);
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // SIGINT/SIGTERM are taken below with sigtimedwait; every thread started from here on inherits
  // the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::unique_ptr<remora::Client> client = remora::Client::Remote();
  // The launcher starts us once the HTTP API answers; gRPC follows within milliseconds.
  for (int i = 0; i < 50 && client->GetMetadata().status().code() == absl::StatusCode::kUnavailable;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Processor processor(*client, MaxQuantity(*client, 5));
  ReadPaymentKey(*client);

  remora::App app;
  app.Subscribe({.pubsub = "pubsub", .topic = "orders"},
                [&](const remora::TopicEvent& event) { return processor.Handle(event); });
  absl::Status started = app.Start();
  if (!started.ok()) {
    std::fprintf(stderr, "order-processor: %s\n", Msg(started).c_str());
    return 1;
  }
  std::printf("order-processor: subscribed to pubsub/orders%s\n",
              expected > 0 ? (", expecting " + std::to_string(expected) + " orders").c_str() : "");

  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(duration_s);
  timespec tick{0, 100 * 1000 * 1000};
  while (expected == 0 || processor.processed() < expected) {
    if (sigtimedwait(&stop_signals, nullptr, &tick) > 0) break;
    if (duration_s > 0 && std::chrono::steady_clock::now() >= deadline) {
      std::printf("time is up\n");
      break;
    }
  }
  app.Stop();
  processor.PrintSummary(expected);
  return expected == 0 || processor.processed() >= expected ? 0 : 1;
}
