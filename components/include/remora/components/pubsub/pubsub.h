#pragma once

// The pub/sub broker contract. Every `pubsub.*` component implements PubSub; the runtime's
// pub/sub building block (runtime/blocks/pubsub) is the only caller. Brokers move opaque bytes: the
// CloudEvents envelope, routing, retries and dead-lettering are the building block's job.
//
// Example component YAML:
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: pubsub }
//   spec:
//     type: pubsub.redis
//     version: v1
//     metadata:
//     - { name: redisHost, value: "localhost:6379" }
//
// Delivery contract (at-least-once): a broker hands each message to the subscription's handler
// and acknowledges it to the backend ONLY after the handler's `ack` is called with OK. An `ack`
// with an error means "not processed": the broker must deliver the message again later
// (redelivery interval / uncommitted offset / pending entry). A crash before the ack loses nothing:
// the backend still holds the message. Handlers may ack out of order and from any thread; a
// broker that needs ordered commits (Kafka offsets) tracks that itself.
//
// Threading: every method may be called from any thread; callbacks and handlers run on any thread.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "remora/components/common/callback.h"

namespace remora::components::pubsub {

using Metadata = std::map<std::string, std::string>;

// Capability strings Dapr reports in the metadata API.
enum class Feature { kMessageTTL, kSubscribeWildcards, kBulkPublish, kBulkSubscribe };
const char* FeatureName(Feature feature);

struct PublishRequest {
  std::string topic;
  std::string data;          // the envelope (or raw payload) exactly as it goes on the wire
  std::string content_type;  // of `data`
  Metadata metadata;         // request metadata: ttlInSeconds, partitionKey, ...
};

struct BulkPublishEntry {
  std::string entry_id;
  PublishRequest request;
};

struct BulkPublishResult {
  struct Failed {
    std::string entry_id;
    std::string error;
  };
  std::vector<Failed> failed;  // empty: every entry was published
};

struct Message {
  std::string topic;
  std::string data;
  std::string content_type;
  Metadata metadata;  // broker metadata delivered to the app as headers (__key, __partition, ...)
};

// Called once per delivered message. `ack(OkStatus)` commits it; `ack(error)` asks for redelivery.
using Ack = DoneCallback;
using Handler = absl::AnyInvocable<void(Message message, Ack ack)>;

struct SubscribeRequest {
  std::string topic;
  Metadata metadata;  // subscription metadata (rawPayload, ...), also component-specific keys
};

// Returned by Subscribe; destroying it stops delivery (messages not acked stay with the backend).
class Subscription {
 public:
  virtual ~Subscription() = default;
};

class PubSub {
 public:
  virtual ~PubSub() = default;

  virtual std::vector<Feature> Features() const = 0;
  bool HasFeature(Feature feature) const;

  // Completes once the backend has the message (durably, for backends that can say so).
  virtual void Publish(PublishRequest request, DoneCallback done) = 0;
  // Default: one Publish per entry, concurrently; failures reported per entry.
  virtual void BulkPublish(std::vector<BulkPublishEntry> entries,
                           Callback<BulkPublishResult> done);

  // Starts delivering `request.topic` to `handler`. The consumer group/name come from the
  // component's own metadata (consumerID, consumerGroup), which the runtime defaults to the app id.
  virtual absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(SubscribeRequest request,
                                                                  Handler handler) = 0;

  // Reachability of the backend for /v1.0/healthz/outbound. Must not block.
  virtual absl::Status Health() const { return absl::OkStatus(); }
};

}  // namespace remora::components::pubsub
