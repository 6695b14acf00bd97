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

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
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
  SetRequest set;        // when kUpsert
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

  // Reachability of the backend for /v1.0/healthz/outbound. Must not block.
  virtual absl::Status Health() const { return absl::OkStatus(); }
};

// Concurrency errors. The building block maps a mismatch to 409 / ABORTED and an invalid etag to
// 400 / INVALID_ARGUMENT, keeping the operation's error code (ERR_STATE_SAVE, ...).
absl::Status ETagMismatchError(std::string_view message = "possible etag mismatch");
absl::Status ETagInvalidError(std::string_view message = "invalid etag value");
bool IsETagMismatch(const absl::Status& status);
bool IsETagInvalid(const absl::Status& status);

// `ttlInSeconds` request metadata: nullopt when absent, error when it is not an integer.
absl::StatusOr<std::optional<int64_t>> ParseTTL(const RequestMetadata& metadata);

}  // namespace remora::components::state
