#pragma once

// state.in-memory (contract §5.11): a process-local store with everything Dapr's in-memory store
// has. Data lives in this process only; two sidecars never share it.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: statestore }
//   spec:
//     type: state.in-memory
//     version: v1
//
// No metadata. Features: ETAG, TRANSACTIONAL, TTL, DELETE_WITH_PREFIX, KEYS_LIKE.
//
// Semantics (Dapr's):
// - Every write stores a new random UUIDv4 string as the key's etag.
// - An etag (non-empty) is checked under any concurrency, last-write included: a missing key or a
//   different etag is ETagMismatchError. First-write without an etag fails with ETagMismatchError
//   when the key exists. Every string is a well-formed etag, so ETagInvalidError never occurs.
// - `ttlInSeconds` > 0 sets an expiry; a write without it (or <= 0) stores the key without one.
//   An expired key is gone for every operation; Get reports `ttlExpireTime` (RFC3339, UTC) while
//   the key lives. Expired entries are dropped lazily on access and by a sweep that writes trigger
//   at most once a second per shard, so there is no background thread.
// - Transactions validate every operation's etag against the state before the transaction, then
//   apply all operations under the locks of every shard they touch: all or nothing.
//
// Threading: every method is thread-safe and invokes its callback inline, before returning.

#include <memory>

#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/state/store.h"

namespace remora::components::state::memory {

absl::StatusOr<std::unique_ptr<Store>> Create(const ComponentContext& context);

}  // namespace remora::components::state::memory
