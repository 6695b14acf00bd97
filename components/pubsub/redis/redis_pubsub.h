#pragma once

// pubsub.redis (contract §5.3) on Redis Streams, through the project's one Redis client.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: pubsub }
//   spec:
//     type: pubsub.redis
//     version: v1
//     metadata:
//     - { name: redisHost, value: "localhost:6379" }
//     - { name: consumerID, value: "orders" }        # default: the app id
//     - { name: processingTimeout, value: "60s" }
//     - { name: redeliverInterval, value: "15s" }
//
// Every key this component reads, with its default, is listed in metadata.yaml next to this file;
// the wire format is described in README.md. In short:
//
// Publish: `XADD <topic> [MAXLEN ~ <maxLenApprox> | MINID ~ <now - streamTTL>-1] * data <bytes>
// [metadata <JSON object of the request metadata>]`; `done` runs once Redis answered.
// BulkPublish sends every entry's XADD in one pipeline and reports failures per entry.
//
// Subscribe: `XGROUP CREATE <topic> <consumerID> 0 MKSTREAM` (BUSYGROUP is fine), then a loop of
// `XREADGROUP GROUP <consumerID> <consumer name> COUNT <queueDepth> BLOCK <readTimeout> STREAMS
// <topic> >` on a dedicated connection. At most `concurrency` messages are with the handler at a
// time; the rest of a batch waits in the subscription. An entry is XACKed only after its ack
// came with OK. An error ack leaves it pending: every `redeliverInterval` the subscription runs
// `XPENDING <topic> <group> IDLE <processingTimeout> - + <queueDepth>` and XCLAIMs the entries
// that have been pending for at least `processingTimeout` (except those it holds itself), then
// delivers them again. redeliverInterval or processingTimeout 0 disables that reclaiming. A
// NOGROUP reply (the stream or group was deleted, Redis lost its data) recreates the group.
//
// Deviations from Dapr, both for at-least-once delivery (see README.md):
// - Dapr XACKs after a failed handler too; here a failed (or dropped) ack leaves the entry pending.
// - Dapr uses consumerID as the consumer name as well. Here each subscription reads as
//   `<consumerID>-<12 random hex digits>`, so XPENDING shows which process holds an entry and a
//   subscription can tell its own in-flight entries from a dead consumer's when reclaiming.
//   The group is still consumerID, so several sidecars share a stream as Dapr's do.
//
// Delivered messages: topic = the stream, data = the `data` field, metadata = the `metadata`
// field's JSON object (non-string values and malformed JSON are ignored), content type empty
// (Dapr's wire format does not carry it).
//
// Health(): the Redis client's (OK while a pooled connection is up).
//
// Threading: every method is thread-safe. Handlers run on the io_context (one subscription's
// handler never concurrently with itself) and must not block; acks may come from any thread, in
// any order, also after the subscription is gone (an OK ack then still XACKs the entry).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/common/metadata.h"
#include "remora/components/common/redis/client.h"
#include "remora/components/pubsub/pubsub.h"

namespace remora::components::pubsub::redis {

struct Config {
  ::remora::redis::Settings redis;
  // Consumer group of every subscription; the runtime sets it to the app id when absent.
  std::string consumer_id;
  // Reclaim pending entries this often (0: never).
  std::chrono::milliseconds redeliver_interval{15000};
  // An entry pending this long is reclaimed (0: never).
  std::chrono::milliseconds processing_timeout{60000};
  int queue_depth = 100;                    // XREADGROUP COUNT, XPENDING COUNT
  int concurrency = 10;                     // messages with the handler at a time, per subscription
  int64_t max_len_approx = 0;               // 0: no MAXLEN trimming
  std::chrono::milliseconds stream_ttl{0};  // 0: no MINID trimming; ignored with max_len_approx
};

// Pure: reads `metadata` (marking what it reads as used). INVALID_ARGUMENT names the key of a
// missing or malformed value. consumerID may be absent (Create falls back to the app id).
absl::StatusOr<Config> ParseConfig(const components::Metadata& metadata);

// The registry's factory: ParseConfig, then a client that connects in the background. Needs
// context.io_context.
absl::StatusOr<std::unique_ptr<PubSub>> Create(const ComponentContext& context);

// The XADD command Publish sends for `request` at time `now` (exposed for tests).
std::vector<std::string> XAddCommand(const Config& config, const PublishRequest& request,
                                     std::chrono::system_clock::time_point now);

}  // namespace remora::components::pubsub::redis
