#pragma once

// The pub/sub building block (contract §2.3, §2.13, §3; ARCHITECTURE §5): protocol-free. It owns
// the pub/sub components, publishes (the CloudEvents envelope, scoping, Dapr's error codes), and
// runs the subscription manager and delivery engine that HTTP and gRPC share.
//
// Publish path: validate pubsub and topic (ERR_PUBSUB_NOT_CONFIGURED, ERR_PUBSUB_EMPTY,
// ERR_PUBSUB_NOT_FOUND, ERR_TOPIC_NAME_EMPTY, ERR_PUBSUB_FORBIDDEN), wrap the data in daprd's
// CloudEvent unless metadata rawPayload=true (ERR_PUBSUB_REQUEST_METADATA for a non-boolean), hand
// it to the broker (ERR_PUBSUB_PUBLISH_MESSAGE on failure).
//
// Subscriptions come from three places: declarative Subscription resources (added at start-up),
// the app (AppChannel::ListSubscriptions, once Start() is given a channel) and streaming
// subscriptions (AddStreamingSubscription, used by the gRPC API). One subscription per
// (pubsub, topic): a later duplicate is skipped with a warning (streaming: ALREADY_EXISTS).
//
// Delivery of one message (at-least-once: the broker is acked OK only after the app answered
// SUCCESS or DROP, or after the event is in the dead-letter topic):
//   1. read the CloudEvent (rawPayload subscriptions wrap the bytes in a synthetic event); a
//      message that is not a CloudEvent goes to the dead-letter topic, else is nacked;
//   2. an expired event (`expiration` in the past) is dropped: acked;
//   3. routing rules pick the path; no match → dropped, after the dead-letter topic if any;
//   4. deliver through the app channel (or the streaming callback):
//        SUCCESS → ack; DROP → dead-letter topic if any, then ack;
//        RETRY / error → retried per the component's inbound retry policy (Resiliency
//        `targets.components.<name>.inbound.retry`, else the default below); once the policy is
//        used up → dead-letter topic if any, then ack; without one, nack (the broker redelivers).
//   With bulkSubscribe enabled (app subscriptions, not streaming), step 4 collects the messages
//   per route and sends them in one AppChannel::BulkDeliver once maxMessagesCount are waiting or
//   the oldest has waited maxAwaitDurationMs; each entry then takes the SUCCESS/DROP/RETRY branch
//   of its own answer (an entry the app left out counts as RETRY; a retry joins a later batch).
//   Publishing to the dead-letter topic sends the original message bytes, content type and
//   metadata to `deadLetterTopic` on the same component; only its success acks the message, a
//   failure nacks it.
//
// Default inbound retry policy (no Resiliency applies): constant, 1 s apart, at most 3 retries
// (4 deliveries) before the dead-letter topic or the broker's redelivery. Dapr has no runtime
// default (its brokers retry on their own schedules); ours keeps a slow app from being hammered
// and a poison message from blocking a subscription for long.
//
// Thread-safety: every method may be called from any thread once the component list is built
// (AddComponent, SetInboundRetry and AddDeclarativeSubscription run at start-up, before Start).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "appchannel/app_channel.h"
#include "remora/components/common/metadata.h"
#include "remora/components/pubsub/pubsub.h"
#include "remora/runtime/resiliency.h"
#include "remora/runtime/resources.h"

namespace boost::asio {
class io_context;
}

namespace remora::runtime {

struct PublishEventRequest {
  std::string pubsub_name{};
  std::string topic{};
  std::string data{};          // the publisher's body
  std::string content_type{};  // HTTP Content-Type / gRPC data_content_type ("" → text/plain)
  std::map<std::string, std::string> metadata{};  // rawPayload, ttlInSeconds, cloudevent.*, ...
  std::string traceparent{};                      // of the publish request ("" when none)
  std::string tracestate{};
};

struct BulkPublishEventEntry {
  std::string entry_id{};  // required, unique within the request
  std::string data{};      // the event as bytes
  std::string content_type{};
  std::map<std::string, std::string> metadata{};  // overrides the request metadata
};

struct BulkPublishEventRequest {
  std::string pubsub_name{};
  std::string topic{};
  std::vector<BulkPublishEventEntry> entries{};
  std::map<std::string, std::string> metadata{};
  std::string traceparent{};
  std::string tracestate{};
};

struct BulkPublishEventResult {
  struct Failed {
    std::string entry_id{};
    std::string error{};
  };
  std::vector<Failed> failed{};  // empty: every entry was published
};

struct PubSubComponentInfo {
  std::string name{};
  std::string type{};
  std::string version{};
  std::vector<std::string> capabilities{};
};

// Streaming subscriptions get each event through this instead of the app channel. It is called
// for one event at a time per delivery attempt, possibly concurrently for different events, on any
// thread; `done` must be called exactly once (an error counts as RETRY).
using StreamingDeliver = std::function<void(TopicEvent event, Callback<EventStatus> done)>;

// "DECLARATIVE", "PROGRAMMATIC", "STREAMING" (the metadata API's names).
std::string_view SubscriptionTypeName(SubscriptionSpec::Type type);

class PubSubBlock {
 public:
  struct Options {
    std::string app_id;
    boost::asio::io_context* io = nullptr;  // retry timers run here; required
    RetryPolicy default_retry = DefaultRetryPolicy();
  };
  // Constant, 1 s, 3 retries (see above).
  static RetryPolicy DefaultRetryPolicy();

  // A component's metadata as the broker should see it: `consumerID` set to the app id when
  // absent, and the keys the runtime reads itself (consumerID, publishingScopes,
  // subscriptionScopes, allowedTopics, protectedTopics) marked as used.
  static components::Metadata PrepareMetadata(const components::Metadata& metadata,
                                              std::string_view app_id);

  explicit PubSubBlock(Options options);
  ~PubSubBlock();  // Shutdown() with an immediate deadline if it was not called
  PubSubBlock(const PubSubBlock&) = delete;
  PubSubBlock& operator=(const PubSubBlock&) = delete;

  // --- start-up, before Start() ---
  // Reads the scoping keys from `metadata`.
  void AddComponent(std::string name, std::string type, std::string version,
                    const components::Metadata& metadata,
                    std::unique_ptr<components::pubsub::PubSub> component);
  // Inbound retry policy for component `name` (from Resiliency); others use the default.
  void SetInboundRetry(std::string_view name, RetryPolicy policy);
  // Registers a declarative subscription (subscribed by Start). A routing rule outside the
  // supported subset, or a non-boolean rawPayload, is an error naming the resource's file. A
  // subscription to a pubsub that is not loaded is skipped with a warning (it may be scoped to
  // another app), as is a topic the component's subscriptionScopes/allowedTopics forbid.
  absl::Status AddDeclarativeSubscription(const SubscriptionResource& resource);

  // Subscribes the declarative subscriptions (synchronously: they receive what is published once
  // Start returns), then asks the app for its programmatic ones in the background. `channel` may
  // be null (no app): then only streaming subscriptions deliver. Must outlive the block or
  // Shutdown(). Call once.
  void Start(AppChannel* channel);

  // --- publishing ---
  void Publish(PublishEventRequest request, DoneCallback done);
  // Entry errors (empty or duplicate entryId, an envelope that cannot be built) fail the whole
  // request with ERR_PUBSUB_EVENTS_SER / ERR_PUBSUB_CLOUD_EVENTS_SER before anything is sent.
  // Broker failures are per entry in the result (the caller renders them with
  // ERR_PUBSUB_PUBLISH_MESSAGE).
  void BulkPublish(BulkPublishEventRequest request, Callback<BulkPublishEventResult> done);

  // --- streaming subscriptions (gRPC SubscribeTopicEventsAlpha1) ---
  // Subscribes at once. `spec.rules` empty means every event (path ""). Errors: the publish
  // validation codes for pubsub/topic, ALREADY_EXISTS for a (pubsub, topic) already subscribed, or
  // the broker's error. Returns an id for RemoveStreamingSubscription.
  absl::StatusOr<uint64_t> AddStreamingSubscription(SubscriptionSpec spec,
                                                    StreamingDeliver deliver);
  // Stops the subscription. Once it returns `deliver` is not called again; deliveries whose
  // `done` is still outstanding complete normally. Unknown ids are ignored.
  void RemoveStreamingSubscription(uint64_t id);

  // --- introspection ---
  std::vector<PubSubComponentInfo> Components() const;
  // Every registered subscription, in registration order.
  std::vector<SubscriptionSpec> Subscriptions() const;
  // Called (outside the block's locks) with the new list whenever it changes.
  void SetSubscriptionsListener(std::function<void(std::vector<SubscriptionSpec>)> listener);
  // True once the app's programmatic subscriptions are loaded (or failed to load), or at once
  // without an app channel.
  bool programmatic_loaded() const { return programmatic_loaded_.load(); }
  // First unhealthy component's status, for /v1.0/healthz/outbound.
  absl::Status Health() const;
  // Messages taken from a broker and not yet acked.
  int in_flight() const;

  // Stops every subscription (no new messages; retry timers fire at once and nack), then waits
  // until the messages in flight are acked or `deadline` passes. Publishing still works.
  void Shutdown(std::chrono::steady_clock::time_point deadline);

  // Internals, public so the delivery steps in the .cc can name them.
  struct Component;
  struct Active;
  struct Counters;
  struct Guard;

 private:
  absl::StatusOr<std::shared_ptr<Component>> FindForPublish(std::string_view pubsub_name,
                                                            std::string_view topic) const;
  // Builds the runtime form of `spec` (parsed rules, rawPayload, retry policy).
  absl::StatusOr<std::shared_ptr<Active>> Prepare(SubscriptionSpec spec);
  // Subscribes on the broker; logs and returns the error.
  absl::Status Subscribe(const std::shared_ptr<Active>& active);
  void LoadProgrammatic();
  void NotifyListener();

  Options options_;
  std::shared_ptr<Counters> counters_;
  std::map<std::string, std::shared_ptr<Component>, std::less<>> components_;
  AppChannel* channel_ = nullptr;
  std::atomic<bool> programmatic_loaded_{false};

  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Active>> subscriptions_;           // guarded by mu_
  std::map<uint64_t, std::shared_ptr<Active>> streaming_;        // guarded by mu_
  uint64_t next_streaming_id_ = 1;                               // guarded by mu_
  bool shut_down_ = false;                                       // guarded by mu_
  std::shared_ptr<Guard> guard_;                                 // guarded by mu_
  std::function<void(std::vector<SubscriptionSpec>)> listener_;  // guarded by mu_
  std::mutex notify_mu_;  // serialises listener calls so they arrive in order
};

}  // namespace remora::runtime
