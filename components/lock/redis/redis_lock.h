#pragma once

// lock.redis (contract §5.7): Dapr's Redis distributed lock on the project's one Redis client, with
// the same keys and values as Dapr's component, so `daprd` and `remorad` sharing a Redis respect
// each other's locks.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: lockstore }
//   spec:
//     type: lock.redis
//     version: v1
//     metadata:
//     - { name: redisHost, value: "localhost:6379" }
//     - { name: redisPassword, value: "" }
//
// Metadata: the shared Redis settings (contract §5.1, remora::redis::ParseSettings), nothing else.
// `keyPrefix` is the runtime's (it builds the key), not the component's.
//
// Layout: a lock is a plain Redis string at the key the runtime passes in
// (`lock||<appId>||<resourceId>` by default) whose value is the owner, with Redis' own expiry.
//
// Semantics (Dapr's):
// - TryLock: `SET <key> <owner> NX EX <expiryInSeconds>`; success when Redis set the key. A held
//   lock answers success=false, also to its own owner, and its expiry is left alone.
// - Unlock: one Lua script (atomic): GET the key; absent → LOCK_DOES_NOT_EXIST; another owner →
//   LOCK_BELONGS_TO_OTHERS (the key is left alone); otherwise DEL → SUCCESS.
// - Like Dapr's Init, the component refuses a Redis primary that has replicas ("replication is not
//   supported": a lock taken on a primary could be lost in a failover). Dapr checks at start-up;
//   this component never blocks start-up, so it checks with `INFO replication` on its first
//   request (and on each request until one check got an answer): when refused, every request and
//   Health() answer FAILED_PRECONDITION.
//
// Errors: Redis unreachable is UNAVAILABLE naming host:port (fail fast; the client reconnects by
// itself); a timeout DEADLINE_EXCEEDED; an error reply (e.g. WRONGTYPE when the key holds another
// type) INTERNAL. Requests are never retried: a retried SET NX that had run would report the
// caller's own fresh lock as taken. Health() is the client's, except that it is OK during the very
// first connection attempt (requests then wait for it rather than fail).
//
// Threading: every method may be called from any thread; callbacks run on the io_context given
// in the ComponentContext (required), never inside the call.

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/common/metadata.h"
#include "remora/components/common/redis/client.h"
#include "remora/components/lock/store.h"

namespace remora::components::lock::redis {

struct Config {
  remora::redis::Settings settings;
};

// Dapr's defaults for a lock store's Redis settings (maxRetries 3). The reconnect backoff keeps
// the client's short defaults, as state.redis does (components/state/redis/README.md).
remora::redis::Settings DefaultSettings();

// Pure: the component metadata to a Config. INVALID_ARGUMENT naming the key on a bad value
// (missing redisHost, redisType cluster, failover, TLS: see remora::redis::ParseSettings).
absl::StatusOr<Config> ParseConfig(const Metadata& metadata);

// The factory registered as lock.redis/v1. Never blocks: the connection is made in the
// background. INVALID_ARGUMENT on bad metadata or a context without an io_context.
absl::StatusOr<std::unique_ptr<Store>> Create(const ComponentContext& context);

// The unlock script (KEYS[1] the lock key, ARGV[1] the owner). Answers -1 when the key is absent,
// -2 when another owner holds it, otherwise DEL's count (1). Exposed for tests.
std::string_view UnlockScript();

}  // namespace remora::components::lock::redis
