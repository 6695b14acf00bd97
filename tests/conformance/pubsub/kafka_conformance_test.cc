// pubsub.kafka in the pub/sub conformance suite, against the remora_kafka_broker test broker
// (librdkafka's mock cluster), started on first use. Kafka's own behaviour (partition order,
// commit rules, rebalances, initialOffset, health) is tested in kafka_test.cc.

#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "kafka_pubsub.h"
#include "tests/conformance/pubsub/pubsub_conformance.h"
#include "tests/tools/kafka_broker.h"

namespace remora::conformance::pubsub {
namespace {

using std::chrono::seconds;

// One broker for the whole binary, started from the test's main thread (the harness' prepare
// runs in the test body), as ChildProcess requires.
absl::Status PointAtBroker(components::ComponentContext& context) {
  static std::unique_ptr<remora::testing::KafkaBroker> broker;
  if (broker == nullptr) {
    absl::StatusOr<std::unique_ptr<remora::testing::KafkaBroker>> started =
        remora::testing::KafkaBroker::Start({});
    if (!started.ok()) return started.status();
    broker = *std::move(started);
  }
  std::map<std::string, std::string> values = context.metadata.values();
  values["brokers"] = broker->bootstrap();
  context.metadata = components::Metadata(values);
  return absl::OkStatus();
}

PubSubHarness KafkaHarness() {
  PubSubHarness h;
  h.name = "Kafka";
  h.type = "pubsub.kafka";
  h.factory = [](const components::ComponentContext& context) {
    return components::pubsub::kafka::Create(context);
  };
  // Topics are new in every test, so "oldest" is everything published after Subscribe() returned
  // even while the group join (~3 s in the mock) is still going on. A short session timeout makes
  // the mock's rebalances take ~3 s instead of ~9 s.
  h.metadata = {{"authType", "none"},
                {"initialOffset", "oldest"},
                {"sessionTimeout", "4s"},
                {"heartbeatInterval", "500ms"},
                {"consumeRetryInterval", "50ms"}};
  h.prepare = PointAtBroker;
  // The group comes from consumerID, as the runtime sets it (the default set_group).
  PubSubCapabilities& c = h.capabilities;
  c.shared_backend = true;
  c.consumer_groups = true;
  c.durable = true;
  c.metadata = true;       // every metadata entry travels as a record header
  c.content_type = false;  // Kafka records have no content type (Dapr sends none either)
  c.bulk_publish_feature = true;
  h.delivery_timeout = seconds(25);
  h.redelivery_timeout = seconds(10);
  return h;
}

INSTANTIATE_TEST_SUITE_P(Kafka, PubSubConformanceTest, ::testing::Values(KafkaHarness()),
                         PubSubHarnessName());

}  // namespace
}  // namespace remora::conformance::pubsub
