#pragma once

// configuration.redis (contract §5.6): configuration items in plain Redis string keys, read and
// watched as Dapr's configuration.redis does, so daprd and remorad can share them.
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: configstore }
//   spec:
//     type: configuration.redis
//     version: v1
//     metadata:
//     - { name: redisHost, value: "localhost:6379" }
//     - { name: redisPassword, value: "" }
//     - { name: redisDB, value: "0" }
//
// Metadata: the shared Redis settings (contract §5.1, remora::redis::ParseSettings), with Dapr's
// defaults for configuration stores (maxRetries 3, minRetryInterval 8ms, maxRetryInterval 2s).
//
// Layout: one Redis string per configuration key, holding "<value>||<version>": the text before
// the first "||" is the value, the text after it the version (no "||": version ""). Write one
// with `SET orderLimit "100||3"`.
//
// Get: a GET per key in one pipelined round trip (every key from KEYS * when none are given).
// Missing keys, empty strings and keys of another Redis type are left out.
//
// Subscribe: `CONFIG SET notify-keyspace-events Kg$xe` (its answer ignored: a managed Redis may
// refuse CONFIG and have notifications enabled already), then SUBSCRIBE
// `__keyspace@<db>__:<key>` per key, or PSUBSCRIBE `__keyspace@<db>__:*` for every key, on the
// client's subscription connection. Each notification re-reads the key and delivers
// {id, {key: {value, version}}}; a deleted or expired key delivers an empty item. After Redis
// comes back (a restart loses the CONFIG SET), the client resubscribes and the store sets
// notify-keyspace-events again, so a subscription keeps working without the app doing anything.
// Changes made while Redis or the connection was down are not replayed (Redis pub/sub).
//
// Errors: Redis unreachable is UNAVAILABLE naming host:port; Subscribe fails when the
// subscription is not listening within dialTimeout (it is then cancelled).
//
// Threading: every method may be called from any thread; callbacks run on the io_context given
// in the ComponentContext (required), never inside the call.

#include <memory>

#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/common/metadata.h"
#include "remora/components/common/redis/client.h"
#include "remora/components/configuration/store.h"

namespace remora::components::configuration::redis {

struct Config {
  remora::redis::Settings settings;
};

// Dapr's defaults for a configuration store's Redis settings.
remora::redis::Settings DefaultSettings();

// Pure: the component metadata to a Config. INVALID_ARGUMENT naming the key on a bad value.
absl::StatusOr<Config> ParseConfig(const Metadata& metadata);

// Splits Dapr's stored "<value>||<version>" text.
Item ParseItem(std::string_view stored);

// The factory registered as configuration.redis/v1.
absl::StatusOr<std::unique_ptr<Store>> Create(const ComponentContext& context);

}  // namespace remora::components::configuration::redis
