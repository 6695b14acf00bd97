#pragma once

// The state store contract. Every `state.*` component implements Store; the runtime's state
// building block (runtime/blocks/state) is the only caller. Keys arrive already scoped by the
// runtime (`<appId>||<key>` etc.), so a component stores exactly the key it is given.
//
// Example component YAML:
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: statestore }
//   spec:
//     type: state.in-memory
//     version: v1
//
// Threading: every method may be called concurrently from any thread. The callback is invoked
// exactly once, inline or later on any thread.
//
// Errors: a component reports concurrency failures with ETagMismatchError / ETagInvalidError below
// and anything else as a plain status; the building block turns them into Dapr's error codes.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "remora/components/common/callback.h"

namespace remora::components::state {

using RequestMetadata = std::map<std::string, std::string>;

enum class Concurrency { kUnspecified, kFirstWrite, kLastWrite };
enum class Consistency { kUnspecified, kEventual, kStrong };

struct Options {
  Concurrency concurrency = Concurrency::kUnspecified;
  Consistency consistency = Consistency::kUnspecified;
};

// The capability strings Dapr reports in the metadata API.
enum class Feature { kETag, kTransactional, kTTL, kQueryAPI, kDeleteWithPrefix, kKeysLike };
const char* FeatureName(Feature feature);

struct GetRequest {
  std::string key;
  RequestMetadata metadata;
  Options options;
};

struct GetResponse {
  bool found = false;  // false: the key does not exist (HTTP 204, empty gRPC response)
  std::string data;
  std::optional<std::string> etag;
  RequestMetadata metadata;  // e.g. ttlExpireTime
};

struct SetRequest {
  std::string key;
  std::string value;  // stored verbatim
  std::optional<std::string> etag;
  RequestMetadata metadata;  // ttlInSeconds, contentType, ...
  Options options;
};

struct DeleteRequest {
  std::string key;
  std::optional<std::string> etag;
  RequestMetadata metadata;
  Options options;
};

struct BulkGetItem {
  std::string key;
  GetResponse response;
  std::string error;  // non-empty when this key failed; the bulk call itself still succeeds
};

struct Operation {
  enum class Type { kUpsert, kDelete };
  Type type = Type::kUpsert;
  SetRequest set;         // when kUpsert
  DeleteRequest delete_;  // when kDelete
};

struct TransactionRequest {
  std::vector<Operation> operations;
  RequestMetadata metadata;
};

// Optional capability: all-or-nothing multi-key writes.
class TransactionalStore {
 public:
  virtual ~TransactionalStore() = default;
  virtual void Multi(TransactionRequest request, DoneCallback done) = 0;
  // 0 means unlimited; more operations answer ERR_STATE_STORE_TOO_MANY_TRANSACTIONS.
  virtual int MaxOperations() const { return 0; }
};

// Optional capability (feature DELETE_WITH_PREFIX): deletes every key directly under a prefix, as
// Dapr does when an actor's state is purged. `prefix` gets "||" appended when it does not end with
// it; a key under a longer prefix (another "||" after the prefix) is not deleted. An empty prefix
// or "||" alone is InvalidArgument. Answers the number of keys deleted.
class DeleteWithPrefixStore {
 public:
  virtual ~DeleteWithPrefixStore() = default;
  virtual void DeleteWithPrefix(std::string prefix, Callback<int64_t> done) = 0;
};

// Optional capability (feature KEYS_LIKE): lists keys matching an SQL LIKE pattern (`%` any run of
// characters, `_` one character, `\` escapes the next character; `%` and `_` do not match a
// newline), ordered by their last write, oldest first, paginated.
struct KeysLikeRequest {
  std::string pattern;                            // required; empty is InvalidArgument
  std::optional<std::string> continuation_token;  // from a previous response
  std::optional<uint32_t> page_size;              // nullopt or 0: everything
};

struct KeysLikeResponse {
  std::vector<std::string> keys;
  std::optional<std::string> continuation_token;  // set when more keys follow
};

class KeysLikeStore {
 public:
  virtual ~KeysLikeStore() = default;
  virtual void KeysLike(KeysLikeRequest request, Callback<KeysLikeResponse> done) = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual std::vector<Feature> Features() const = 0;
  bool HasFeature(Feature feature) const;

  virtual void Get(GetRequest request, Callback<GetResponse> done) = 0;
  virtual void Set(SetRequest request, DoneCallback done) = 0;
  virtual void Delete(DeleteRequest request, DoneCallback done) = 0;

  // Defaults issue one Get/Set/Delete per item concurrently (as Dapr's default bulk does); a
  // store with a native bulk operation overrides them. Items come back in request order.
  virtual void BulkGet(std::vector<GetRequest> requests, Callback<std::vector<BulkGetItem>> done);
  virtual void BulkSet(std::vector<SetRequest> requests, DoneCallback done);
  virtual void BulkDelete(std::vector<DeleteRequest> requests, DoneCallback done);

  // Null when the store has no transactions.
  virtual TransactionalStore* AsTransactional() { return nullptr; }
  // Null when the store lacks the capability (see DeleteWithPrefixStore / KeysLikeStore).
  virtual DeleteWithPrefixStore* AsDeleteWithPrefix() { return nullptr; }
  virtual KeysLikeStore* AsKeysLike() { return nullptr; }

  // Reachability of the backend for /v1.0/healthz/outbound. Must not block.
  virtual absl::Status Health() const { return absl::OkStatus(); }
};

// Concurrency errors. The building block maps a mismatch to 409 / ABORTED and an invalid etag to
// 400 / INVALID_ARGUMENT, keeping the operation's error code (ERR_STATE_SAVE, ...). The kind is
// carried in a status payload, so the predicates survive a message rewrite that keeps payloads
// and never match an unrelated ABORTED / INVALID_ARGUMENT status.
absl::Status ETagMismatchError(std::string_view message = "possible etag mismatch");
absl::Status ETagInvalidError(std::string_view message = "invalid etag value");
bool IsETagMismatch(const absl::Status& status);
bool IsETagInvalid(const absl::Status& status);

// `ttlInSeconds` request metadata: nullopt when absent or empty, InvalidArgument naming the value
// when it is not a decimal integer. The value is returned as given: stores treat <= 0 as "no
// expiry" (Dapr's semantics).
absl::StatusOr<std::optional<int64_t>> ParseTTL(const RequestMetadata& metadata);

}  // namespace remora::components::state
