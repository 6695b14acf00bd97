#pragma once

// pubsub.in-memory (contract §5.12): a process-local event bus.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: pubsub }
//   spec:
//     type: pubsub.in-memory
//     version: v1
//     metadata: []
//
// No metadata. Features: SUBSCRIBE_WILDCARDS.
//
// Semantics:
// - Each component instance is its own bus: two components (or two sidecars) never share
//   messages. Nothing survives the process.
// - Publish fans the message out to every subscription whose topic matches and completes at once
//   (inline, OK). Deliveries never run inside Publish: each is posted to the subscription's
//   strand on the component's io_context (a process-wide worker thread when the context has
//   none), so one subscription's handler is never called concurrently with itself and sees one
//   publisher's messages in publish order.
// - Wildcards as Dapr's bus has them: a subscription topic ending in `*` matches every topic that
//   starts with the part before the `*` and is longer than it ("orders.*" matches "orders.eu",
//   not "orders."; "*" matches every topic). Other `*` are literal.
// - Delivered messages carry the published topic, data, content type and metadata unchanged.
// - Ack contract (a deviation from Dapr's bus, which only retries a failing handler ten times,
//   100 ms apart, and then drops the message): an error ack — or an ack dropped without a call —
//   redelivers the message to the same subscription after a backoff of 100 ms, doubling per
//   attempt up to 5 s, until it is acked OK or the subscription is destroyed. Retries and
//   dead-lettering therefore behave the same as on durable brokers.
// - Destroying a Subscription stops delivery at once (waiting for a handler call in progress on
//   another thread); messages not yet acked are dropped, as everything in this bus is.
//
// Threading: every method is thread-safe. Handlers must not block: they run on the io_context.

#include <memory>

#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/pubsub/pubsub.h"

namespace remora::components::pubsub::memory {

absl::StatusOr<std::unique_ptr<PubSub>> Create(const ComponentContext& context);

}  // namespace remora::components::pubsub::memory
