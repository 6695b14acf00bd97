#pragma once

// state.redis (contract §5.2): state in Redis, stored exactly as Dapr's state.redis stores it, so
// `daprd` and `remorad` can share a Redis in either direction. The layout and the differences
// from Dapr's component are described in components/state/redis/README.md.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: statestore }
//   spec:
//     type: state.redis
//     version: v1
//     metadata:
//     - { name: redisHost, value: "localhost:6379" }
//     - { name: redisPassword, value: "" }
//     - { name: ttlInSeconds, value: "3600" }   # optional store-wide default TTL
//
// Metadata: the shared Redis settings (contract §5.1, remora::redis::ParseSettings) plus
// `ttlInSeconds`. `queryIndexes` is not read (no query API), so the runtime reports it as ignored.
//
// Layout: each key is a Redis hash with the fields `data` (the value's bytes, verbatim) and
// `version` (a decimal integer; the etag is its text). A key first written with first-write
// concurrency also has `first-write` = "0".
//
// Semantics (Dapr's):
// - Set: the etag must be a decimal integer (else ETagInvalidError). The write is allowed when the
//   key has no version, the version equals the etag, or no etag was given (or last-write) and
//   the key was not created under first-write. A refused write with an etag is
//   ETagMismatchError; without one it is a plain FAILED_PRECONDITION. A key holding another Redis
//   type is replaced. `ttlInSeconds` (request, else the store default): > 0 sets the expiry, <= 0
//   removes it, absent leaves an existing expiry alone. Data, version and expiry change in one
//   script, atomically.
// - Delete: allowed when the key is missing, has no version, the etag matches or no etag was
//   given; otherwise ETagMismatchError (an etag is never "invalid" on delete, as in Dapr).
// - Get: HGETALL and PTTL in one round trip; a plain string key (written by something else) is
//   read with GET and has no etag. `ttlExpireTime` (RFC3339 UTC) is reported while an expiry is
//   set. A hash without `data` or `version` is an error.
// - BulkGet: every key in one pipelined round trip.
// - Multi: one Lua script checks every operation's etag (against the state left by the operations
//   before it, as Dapr's MULTI/EXEC of its scripts would) and applies them only when all pass:
//   all or nothing, where Dapr's own component applies the operations before a failing one.
//
// Features: ETAG, TRANSACTIONAL, TTL.
//
// Scripts run with EVALSHA; a NOSCRIPT answer (a restarted or flushed Redis) is retried once
// with EVAL, which loads the script again.
//
// Errors: Redis unreachable is UNAVAILABLE naming host:port (fail fast; the client reconnects by
// itself); a timeout is DEADLINE_EXCEEDED. Health() is the client's, except that it is OK during
// the very first connection attempt (requests then wait for it rather than fail).
//
// Threading: every method may be called from any thread; callbacks run on the io_context given
// in the ComponentContext (required), never inside the call.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/common/metadata.h"
#include "remora/components/common/redis/client.h"
#include "remora/components/state/store.h"

namespace remora::components::state::redis {

struct Config {
  remora::redis::Settings settings;
  // Store-wide default for requests without `ttlInSeconds`; nullopt: none.
  std::optional<int64_t> ttl_in_seconds;
};

// Dapr's defaults for a state store's Redis settings (maxRetries 3); see README.md for why the
// reconnect backoff keeps the client's short defaults.
remora::redis::Settings DefaultSettings();

// Pure: the component metadata to a Config. INVALID_ARGUMENT naming the key on a bad value.
absl::StatusOr<Config> ParseConfig(const Metadata& metadata);

// The factory registered as state.redis/v1. Never blocks: the connection is made in the
// background. INVALID_ARGUMENT on bad metadata or a context without an io_context.
absl::StatusOr<std::unique_ptr<Store>> Create(const ComponentContext& context);

// The Lua scripts and their SHA1 digests (exposed for tests and the benchmark's direct client,
// which must run the very same scripts).
struct Script {
  std::string_view source;
  std::string sha1;  // lower-case hex
};
// KEYS[1] key; ARGV: expected version ("0" none), data, first-write flag ("0" first-write, "1"
// otherwise), ttl ("" keep, > 0 EXPIRE, <= 0 PERSIST). Answers the new version.
const Script& SetScript();
// KEYS[1] key; ARGV: etag ("0" none). Answers the number of keys deleted.
const Script& DeleteScript();
// KEYS: one per operation; ARGV: four per operation (type "s"/"d", expected version, data, ttl).
const Script& MultiScript();

// SHA1 of `data` in lower-case hex (as Redis names scripts).
std::string Sha1Hex(std::string_view data);

}  // namespace remora::components::state::redis
