#pragma once

// pubsub.kafka (contract §5.4) on librdkafka.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: pubsub }
//   spec:
//     type: pubsub.kafka
//     version: v1
//     metadata:
//     - { name: brokers, value: "kafka-1:9092,kafka-2:9092" }
//     - { name: authType, value: "none" }
//     - { name: consumerGroup, value: "orders" }   # default: consumerID, i.e. the app id
//     - { name: initialOffset, value: "oldest" }
//
// Every key this component reads, with its default, is listed in metadata.yaml next to this file.
// Keys Dapr accepts that have no librdkafka counterpart (schema registry, Avro, version, ...) are
// not read, so the runtime reports them as unused.
//
// Publish: one idempotent librdkafka producer per component (acks=all unless
// producerRequiredAcks says otherwise). `done` runs once the broker has acknowledged the record
// (the delivery report), on the producer's own thread. `partitionKey` or `__key` in the request
// metadata becomes the record key, `partitionNumber` picks the partition, and, as Dapr does, every
// metadata entry (the key included) also travels as a record header. BulkPublish produces every
// entry first, then collects the delivery reports.
//
// Subscribe: one consumer per subscription in the group `consumerGroup`, on its own poll thread,
// with auto-commit and auto offset store off. Records of one partition reach the handler in
// offset order, at most `maxInFlightPerPartition` (default 1) of them unacknowledged at a time,
// so by default a partition's next record waits for the previous ack, like Dapr's consumer.
// Partitions are independent of each other. An offset is committed only once every record below it
// was acked OK; an error ack redelivers that record after `consumeRetryInterval` (it keeps its
// place: with the default window the partition waits for it). When partitions are revoked
// (rebalance, Close) the acked prefix is committed and everything after it is left to the next
// owner: nothing is lost, duplicates are possible. Delivered metadata: `__key` (when the record
// has one), `__topic`, `__partition`, `__offset`, `__timestamp` (Unix ms) and every header.
//
// Health(): UNAVAILABLE with librdkafka's last error while no broker is reachable.
//
// Threading: every method is thread-safe. Handlers must not block (they run on the subscription's
// poll thread); acks may come from any thread, in any order, also after the subscription is gone
// (they are then ignored: the records are redelivered to whoever owns the partition next).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/common/metadata.h"
#include "remora/components/pubsub/pubsub.h"

namespace remora::components::pubsub::kafka {

// librdkafka configuration properties, in the order they are applied.
using Settings = std::vector<std::pair<std::string, std::string>>;

struct Config {
  std::vector<std::string> brokers;
  std::string consumer_group;  // empty: publishing works, Subscribe fails (Create falls back to
                               // the context's app id, as Dapr does)
  std::string client_id = "sarama";
  std::string auth_type;               // none, password, mtls, certificate or oidc (lower case)
  bool initial_offset_oldest = false;  // initialOffset: newest (default) or oldest
  // 0: no limit of our own (librdkafka's message.max.bytes still applies).
  int64_t max_message_bytes = 0;
  std::chrono::milliseconds consume_retry_interval{100};
  int max_in_flight_per_partition = 1;

  // librdkafka properties for both client kinds, then for each kind only. Computed here so the
  // mapping from Dapr's keys is testable without a broker.
  Settings common;
  Settings producer;
  Settings consumer;
};

// Pure: reads `metadata` (marking what it reads as used) and maps it to librdkafka settings.
// INVALID_ARGUMENT names the key for missing or malformed values; UNIMPLEMENTED for auth types
// librdkafka cannot do here (awsiam, oidc_private_key_jwt).
absl::StatusOr<Config> ParseConfig(const components::Metadata& metadata);

// The registry's factory: ParseConfig, then a producer that connects in the background.
absl::StatusOr<std::unique_ptr<PubSub>> Create(const ComponentContext& context);

// The same from a parsed config (tests).
absl::StatusOr<std::unique_ptr<PubSub>> CreateFromConfig(Config config);

}  // namespace remora::components::pubsub::kafka
