#pragma once

// A Kafka-protocol broker for tests: the remora_kafka_broker process (librdkafka's mock cluster,
// tests/tools/kafka_broker_main.cc) started on random loopback ports.
//
//   absl::StatusOr<std::unique_ptr<KafkaBroker>> kafka = KafkaBroker::Start({.topics = {{"t",
//   3}}}); ASSERT_TRUE(kafka.ok()) << kafka.status(); metadata["brokers"] = (*kafka)->bootstrap();
//   // "127.0.0.1:PORT[,...]"
//   (*kafka)->SetDown(true);   // every broker refuses and drops connections
//
// Topics not created up front appear on first use with 4 partitions. Mind the mock's group
// timing: a group's first join takes ~3 s, and any later rebalance about sessionTimeout - 1 s.
// Start from the test's main thread (see ChildProcess). The binary is found through the
// REMORA_KAFKA_BROKER environment variable (set by ctest), else next to the test binary.

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/tools/test_env.h"

namespace remora::testing {

class KafkaBroker {
 public:
  struct Options {
    int brokers = 1;
    std::vector<std::pair<std::string, int>> topics;  // name, partitions
  };

  // Returns once the process printed its bootstrap address.
  static absl::StatusOr<std::unique_ptr<KafkaBroker>> Start(
      Options options, std::chrono::milliseconds ready_timeout = std::chrono::seconds(10));
  ~KafkaBroker();  // kills the process if it still runs
  KafkaBroker(const KafkaBroker&) = delete;
  KafkaBroker& operator=(const KafkaBroker&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  bool Running();

  // SIGTERM and wait for exit. Every topic, offset and group is gone afterwards.
  absl::Status Stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Takes every broker down (true) or up again (false); waits until the process confirms.
  absl::Status SetDown(bool down, std::chrono::milliseconds timeout = std::chrono::seconds(5));

  std::string Output() const;

 private:
  KafkaBroker() = default;

  std::string bootstrap_;
  std::unique_ptr<ChildProcess> process_;
  int toggles_ = 0;  // "brokers down/up" lines printed so far
};

// The remora_kafka_broker binary (REMORA_KAFKA_BROKER, else beside /proc/self/exe).
std::string KafkaBrokerPath();

}  // namespace remora::testing
