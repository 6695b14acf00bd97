#pragma once

// remora::Client: the APIs of a Dapr sidecar for C++ functions (state, pub/sub publish, service
// invocation, secrets, configuration, distributed lock, metadata), with two transports behind one
// interface. The app side (receiving events and invocations) is remora::App in remora/app.h.
//
//   Remote   - gRPC to remorad (or daprd) on localhost. Client::Remote() never fails: the channel
//              connects on the first call. Every call has a deadline; when no sidecar answers, a
//              call fails fast with UNAVAILABLE instead of waiting for one.
//   Embedded - the runtime runs inside the process (no sidecar, no network): components come from
//              a directory of Dapr component YAML, or the in-memory default store "statestore".
//
// Both transports answer with the same statuses: the canonical code is the gRPC code Dapr uses
// (ABORTED for an etag mismatch, INVALID_ARGUMENT for an unknown store or an illegal key, ...),
// the message is the runtime's, and ErrorReason() gives the google.rpc.ErrorInfo reason (e.g.
// "DAPR_STATE_NOT_FOUND") where Dapr attaches one.
//
// Values are bytes (std::string), stored verbatim. JSON helpers: StateItem::FromJson and
// State::Json.
//
// Example:
//
//   auto client = remora::Client::Remote();  // 127.0.0.1:$DAPR_GRPC_PORT, token $DAPR_API_TOKEN
//   if (absl::Status s = client->SaveState("statestore", "order-1", R"({"qty":3})"); !s.ok()) ...
//   absl::StatusOr<remora::State> got = client->GetState("statestore", "order-1");
//   if (got.ok() && got->found) Use(got->value, got->etag);
//
// Requests and results are plain aggregates whose members all have defaults, so designated
// initializers work without -Wmissing-field-initializers noise:
//   client->GetState({.store = "statestore", .key = "k", .consistency = Consistency::kStrong});
//
// Thread-safety: a Client may be used from any number of threads at once. Calls are synchronous:
// they block the calling thread until the answer (or the deadline).
//
// Testing: remora/testing/mock_client.h has a gmock MockClient; write functions against
// `remora::Client&` and pass the mock in unit tests.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace remora {

using Metadata = std::map<std::string, std::string>;

// Per-request hints handed to the state store (Dapr's StateOptions).
enum class Consistency { kUnspecified, kEventual, kStrong };
enum class Concurrency { kUnspecified, kFirstWrite, kLastWrite };

struct StateOptions {
  Concurrency concurrency = Concurrency::kUnspecified;
  Consistency consistency = Consistency::kUnspecified;
};

// ---- requests and results ----------------------------------------------------------------------

struct GetStateRequest {
  std::string store{};
  std::string key{};
  Consistency consistency = Consistency::kUnspecified;
  Metadata metadata{};  // passed to the store (e.g. partitionKey)
};

// One key's state. A key that does not exist is not an error: found is false and value is empty.
// Over gRPC the wire has no "found" field: a key counts as found when it has a value or an etag,
// so an empty value in a store without etags reads as not found.
struct State {
  bool found = false;
  std::string value{};
  std::string etag{};   // empty when the store has no etags
  Metadata metadata{};  // e.g. ttlExpireTime

  // The value parsed as JSON; INVALID_ARGUMENT when it is not JSON (or the key was not found).
  absl::StatusOr<nlohmann::json> Json() const;
};

// One key to write. With an etag, the write succeeds only when the stored etag is that one
// (ABORTED otherwise); options.concurrency kFirstWrite without an etag means "create only".
struct StateItem {
  std::string key{};
  std::string value{};
  std::optional<std::string> etag{};
  Metadata metadata{};  // e.g. ttlInSeconds, contentType
  StateOptions options{};

  // `value` serialised as compact JSON, the bytes Dapr's HTTP API would store for it.
  static StateItem FromJson(std::string key, const nlohmann::json& value);
};

struct SaveStateRequest {
  std::string store{};
  std::vector<StateItem> items{};  // an empty list is a no-op
};

struct DeleteStateRequest {
  std::string store{};
  std::string key{};
  std::optional<std::string> etag{};  // delete only if the stored etag is this one
  StateOptions options{};
  Metadata metadata{};
};

struct GetBulkStateRequest {
  std::string store{};
  std::vector<std::string> keys{};
  int parallelism = 0;  // 0: the sidecar's default
  Metadata metadata{};
};

// One key of a bulk read, in request order. A key that failed has `error` set; the call as a
// whole still succeeds.
struct BulkStateItem {
  std::string key{};
  bool found = false;  // inferred as for State
  std::string value{};
  std::string etag{};
  Metadata metadata{};
  std::string error{};

  absl::StatusOr<nlohmann::json> Json() const;
};

// One key of a bulk delete.
struct DeleteItem {
  std::string key{};
  std::optional<std::string> etag{};
  StateOptions options{};
  Metadata metadata{};
};

struct DeleteBulkStateRequest {
  std::string store{};
  std::vector<DeleteItem> items{};
};

// One operation of a transaction. For kDelete only item.key, item.etag, item.metadata and
// item.options are used.
struct TransactionOperation {
  enum class Type { kUpsert, kDelete };
  Type type = Type::kUpsert;
  StateItem item{};

  static TransactionOperation Upsert(StateItem item) { return {Type::kUpsert, std::move(item)}; }
  static TransactionOperation Delete(std::string key,
                                     std::optional<std::string> etag = std::nullopt) {
    TransactionOperation op{Type::kDelete, {}};
    op.item.key = std::move(key);
    op.item.etag = std::move(etag);
    return op;
  }
};

// All operations apply, or none (the store must be transactional; UNIMPLEMENTED otherwise).
struct TransactionRequest {
  std::string store{};
  std::vector<TransactionOperation> operations{};
  Metadata metadata{};
};

struct ComponentInfo {
  std::string name{};
  std::string type{};                       // e.g. "state.redis"
  std::string version{};                    // e.g. "v1"
  std::vector<std::string> capabilities{};  // e.g. "ETAG", "TRANSACTIONAL"
};

// What the sidecar (or the embedded runtime) reports about itself.
struct SidecarMetadata {
  std::string app_id{};
  std::string runtime_version{};
  std::vector<std::string> enabled_features{};
  std::vector<ComponentInfo> components{};
  Metadata extended{};  // includes daprRuntimeVersion and anything set with SetMetadata
};

// ---- pub/sub -----------------------------------------------------------------------------------

// One event to publish. By default the sidecar wraps data in a CloudEvent (content_type becomes
// its datacontenttype); metadata rawPayload=true sends data as is. Other metadata goes to the
// broker (e.g. ttlInSeconds, partitionKey).
struct PublishRequest {
  std::string pubsub{};
  std::string topic{};
  std::string data{};
  std::string content_type{};  // "" → the sidecar's default (text/plain; JSON is detected)
  Metadata metadata{};
};

struct BulkPublishEntry {
  std::string entry_id{};  // unique within the request; "" → the entry's index ("0", "1", ...)
  std::string event{};     // the bytes of the event
  std::string content_type{};
  Metadata metadata{};
};

struct BulkPublishRequest {
  std::string pubsub{};
  std::string topic{};
  std::vector<BulkPublishEntry> entries{};
  Metadata metadata{};  // for the whole request
};

struct BulkPublishFailure {
  std::string entry_id{};
  std::string error{};
};

// A bulk publish that reached the broker succeeds as a call even when some entries failed: those
// are listed here (empty: every entry was published).
struct BulkPublishResult {
  std::vector<BulkPublishFailure> failed_entries{};
  bool all_published() const { return failed_entries.empty(); }
};

// ---- service invocation ------------------------------------------------------------------------

// A call of `method` on the app `app_id` through the sidecars. For an HTTP callee verb, query
// and headers become the HTTP request's; a gRPC callee gets data, content_type and the headers
// as gRPC metadata.
struct InvokeRequest {
  std::string app_id{};
  std::string method{};
  std::string verb = "POST";  // GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH
  std::string data{};
  std::string content_type{};
  Metadata headers{};   // sent as gRPC metadata, forwarded by the sidecar as headers
  std::string query{};  // "a=1&b=2" (without "?")
};

// The callee's answer. A callee that answered with an HTTP status outside 2xx (or a gRPC error)
// makes InvokeMethod fail instead: the status code follows Dapr's HTTP→gRPC mapping (404 →
// NOT_FOUND, 400 → INTERNAL (Dapr's quirk), 500 → UNKNOWN, ...) and the message carries the body.
struct InvokeResponse {
  int http_status = 200;  // the HTTP callee's status (dapr-http-status); 200 for a gRPC callee
  std::string data{};
  std::string content_type{};
  Metadata headers{};  // response headers (and trailers) as the sidecar returned them

  absl::StatusOr<nlohmann::json> Json() const;  // data parsed as JSON
};

// ---- secrets -----------------------------------------------------------------------------------

struct GetSecretRequest {
  std::string store{};
  std::string key{};
  Metadata metadata{};  // e.g. version_id for Vault
};

struct GetBulkSecretRequest {
  std::string store{};
  Metadata metadata{};
};

// A secret is a map (a multi-valued secret has several keys; local.file with nestedSeparator and
// most stores give one entry named like the secret).
using Secret = std::map<std::string, std::string>;
// Every secret of a store the app may read: secret name → its map.
using BulkSecret = std::map<std::string, Secret>;

// ---- configuration -----------------------------------------------------------------------------

struct ConfigurationItem {
  std::string value{};
  std::string version{};
  Metadata metadata{};
};

using ConfigurationItems = std::map<std::string, ConfigurationItem>;

struct GetConfigurationRequest {
  std::string store{};
  std::vector<std::string> keys{};  // empty: every key the store has
  Metadata metadata{};
};

struct SubscribeConfigurationRequest {
  std::string store{};
  std::vector<std::string> keys{};  // empty: every key
  Metadata metadata{};
};

// One change notification: the keys that changed, with their new values (a deleted key arrives
// with an empty value, as the store reports it).
struct ConfigurationUpdate {
  std::string subscription_id{};
  ConfigurationItems items{};
};

// Called on a thread that is not the caller's (remote: one per subscription; embedded: the
// runtime's event loop), one update at a time per subscription. It should not block for long and
// must not call UnsubscribeConfiguration for its own subscription: hand that to another thread.
using ConfigurationHandler = std::function<void(const ConfigurationUpdate& update)>;

// ---- distributed lock --------------------------------------------------------------------------

struct TryLockRequest {
  std::string store{};
  std::string resource{};  // the lock is per (store, resource)
  std::string owner{};     // only this owner may unlock it
  int expiry_seconds = 0;  // must be > 0: the lock expires on its own after this
};

struct UnlockRequest {
  std::string store{};
  std::string resource{};
  std::string owner{};
};

// Dapr's UnlockResponse.Status: the lock store's answer, not a call failure.
enum class UnlockStatus { kSuccess, kLockDoesNotExist, kLockBelongsToOthers, kInternalError };

// ---- transports --------------------------------------------------------------------------------

struct RemoteOptions {
  // "host:port" of the sidecar's gRPC API. Empty: 127.0.0.1 and $DAPR_GRPC_PORT (default 50001).
  std::string address{};
  // Sent as `dapr-api-token` metadata when non-empty. nullopt: $DAPR_API_TOKEN.
  std::optional<std::string> api_token{};
  // Deadline of every call.
  std::chrono::milliseconds timeout = std::chrono::seconds(5);
};

struct EmbeddedOptions {
  std::string app_id{};  // scopes keys as a sidecar with --app-id would (keyPrefix appid)
  // Directories of Dapr component YAML. Empty: one state.in-memory store named "statestore".
  std::vector<std::string> resources_paths{};
  // Runtime log level on stderr: debug, info, warn, error. Embedded functions default to quiet.
  std::string log_level = "warn";
  // Upper bound on a call whose store answers asynchronously (e.g. Redis).
  std::chrono::milliseconds timeout = std::chrono::seconds(5);
};

// ---- the client ---------------------------------------------------------------------------------

class Client {
 public:
  virtual ~Client() = default;

  // gRPC to a sidecar. Nothing connects until the first call; one channel per client.
  static std::unique_ptr<Client> Remote(const RemoteOptions& options = {});
  // The runtime in-process: loads the components (an error names the bad file or component) and
  // starts no servers.
  static absl::StatusOr<std::unique_ptr<Client>> Embedded(const EmbeddedOptions& options = {});

  // State. Errors: INVALID_ARGUMENT (unknown store, key containing "||", missing key),
  // FAILED_PRECONDITION (no state store configured), ABORTED (etag mismatch on save/delete),
  // UNIMPLEMENTED (transactions on a store without them), INTERNAL (the store failed),
  // UNAVAILABLE / DEADLINE_EXCEEDED (remote: no sidecar, or no answer in time).
  virtual absl::StatusOr<State> GetState(const GetStateRequest& request) = 0;
  virtual absl::Status SaveState(const SaveStateRequest& request) = 0;
  virtual absl::Status DeleteState(const DeleteStateRequest& request) = 0;
  virtual absl::StatusOr<std::vector<BulkStateItem>> GetBulkState(
      const GetBulkStateRequest& request) = 0;
  virtual absl::Status DeleteBulkState(const DeleteBulkStateRequest& request) = 0;
  virtual absl::Status ExecuteStateTransaction(const TransactionRequest& request) = 0;

  // Pub/sub. Errors: INVALID_ARGUMENT (unknown pubsub, missing topic, bad metadata),
  // FAILED_PRECONDITION (no pubsub configured), PERMISSION_DENIED (topic not allowed by scopes),
  // INTERNAL (the broker failed; for bulk publish when every entry failed Dapr also says INTERNAL).
  virtual absl::Status PublishEvent(const PublishRequest& request) = 0;
  virtual absl::StatusOr<BulkPublishResult> BulkPublishEvent(const BulkPublishRequest& request) = 0;

  // Service invocation (InvokeService). Errors: as for InvokeResponse, plus INVALID_ARGUMENT
  // (unknown verb), Dapr's ERR_DIRECT_INVOKE codes when the target app cannot be reached
  // (INTERNAL; NOT_FOUND for an unknown app id), and FAILED_PRECONDITION on the embedded
  // transport (no invocation there yet).
  virtual absl::StatusOr<InvokeResponse> InvokeMethod(const InvokeRequest& request) = 0;

  // Secrets. Errors: INVALID_ARGUMENT (unknown store), FAILED_PRECONDITION (no secret store
  // configured), PERMISSION_DENIED (key not allowed by the store's scopes), NOT_FOUND / INTERNAL
  // as the store reports a missing key.
  virtual absl::StatusOr<Secret> GetSecret(const GetSecretRequest& request) = 0;
  virtual absl::StatusOr<BulkSecret> GetBulkSecret(const GetBulkSecretRequest& request) = 0;

  // Configuration. GetConfiguration returns the requested keys the store has (a missing key is
  // absent from the map, not an error). SubscribeConfiguration returns once the sidecar has
  // accepted the subscription, with its id; `handler` then gets every change until
  // UnsubscribeConfiguration(store, id) returns or the client is destroyed (after either, it is
  // never called again). Errors: INVALID_ARGUMENT (unknown store), FAILED_PRECONDITION (no
  // configuration store), INTERNAL (the store failed); Unsubscribe: NOT_FOUND when the sidecar
  // has no subscription with that id.
  virtual absl::StatusOr<ConfigurationItems> GetConfiguration(
      const GetConfigurationRequest& request) = 0;
  virtual absl::StatusOr<std::string> SubscribeConfiguration(
      const SubscribeConfigurationRequest& request, ConfigurationHandler handler) = 0;
  virtual absl::Status UnsubscribeConfiguration(std::string_view store, std::string_view id) = 0;

  // Distributed lock (Dapr's alpha API). TryLock: true when this owner now holds the lock, false
  // when somebody else does (not an error). Unlock: the store's verdict. Errors: INVALID_ARGUMENT
  // (unknown store, empty resource/owner, expiry <= 0), FAILED_PRECONDITION (no lock store),
  // INTERNAL (the store failed).
  virtual absl::StatusOr<bool> TryLock(const TryLockRequest& request) = 0;
  virtual absl::StatusOr<UnlockStatus> Unlock(const UnlockRequest& request) = 0;

  // Sidecar metadata (GetMetadata / SetMetadata).
  virtual absl::StatusOr<SidecarMetadata> GetMetadata() = 0;
  virtual absl::Status SetMetadata(std::string_view key, std::string_view value) = 0;
  // Remote: asks the sidecar to shut down gracefully. Embedded: later calls fail with
  // FAILED_PRECONDITION; the runtime stops when the client is destroyed.
  virtual absl::Status Shutdown() = 0;

  // Shorthands for the common cases.
  absl::StatusOr<State> GetState(std::string_view store, std::string_view key) {
    GetStateRequest request;
    request.store = store;
    request.key = key;
    return GetState(request);
  }
  absl::Status SaveState(std::string_view store, std::string_view key, std::string_view value,
                         std::optional<std::string> etag = std::nullopt) {
    StateItem item;
    item.key = key;
    item.value = value;
    item.etag = std::move(etag);
    return SaveState(store, std::move(item));
  }
  absl::Status SaveState(std::string_view store, StateItem item) {
    SaveStateRequest request;
    request.store = store;
    request.items.push_back(std::move(item));
    return SaveState(request);
  }
  absl::Status SaveJson(std::string_view store, std::string_view key, const nlohmann::json& value) {
    return SaveState(store, StateItem::FromJson(std::string(key), value));
  }
  absl::Status DeleteState(std::string_view store, std::string_view key,
                           std::optional<std::string> etag = std::nullopt) {
    DeleteStateRequest request;
    request.store = store;
    request.key = key;
    request.etag = std::move(etag);
    return DeleteState(request);
  }
  absl::Status PublishEvent(std::string_view pubsub, std::string_view topic, std::string_view data,
                            std::string_view content_type = "", Metadata metadata = {}) {
    PublishRequest request;
    request.pubsub = pubsub;
    request.topic = topic;
    request.data = data;
    request.content_type = content_type;
    request.metadata = std::move(metadata);
    return PublishEvent(request);
  }
  // Publishes `value` as application/json.
  absl::Status PublishJson(std::string_view pubsub, std::string_view topic,
                           const nlohmann::json& value, Metadata metadata = {}) {
    return PublishEvent(pubsub, topic,
                        value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                        "application/json", std::move(metadata));
  }
  absl::StatusOr<InvokeResponse> InvokeMethod(std::string_view app_id, std::string_view method,
                                              std::string_view verb = "POST",
                                              std::string_view data = "",
                                              std::string_view content_type = "") {
    InvokeRequest request;
    request.app_id = app_id;
    request.method = method;
    request.verb = verb;
    request.data = data;
    request.content_type = content_type;
    return InvokeMethod(request);
  }
  absl::StatusOr<Secret> GetSecret(std::string_view store, std::string_view key) {
    GetSecretRequest request;
    request.store = store;
    request.key = key;
    return GetSecret(request);
  }
  absl::StatusOr<BulkSecret> GetBulkSecret(std::string_view store) {
    GetBulkSecretRequest request;
    request.store = store;
    return GetBulkSecret(request);
  }
  absl::StatusOr<ConfigurationItems> GetConfiguration(std::string_view store,
                                                      std::vector<std::string> keys = {}) {
    GetConfigurationRequest request;
    request.store = store;
    request.keys = std::move(keys);
    return GetConfiguration(request);
  }
  absl::StatusOr<std::string> SubscribeConfiguration(std::string_view store,
                                                     std::vector<std::string> keys,
                                                     ConfigurationHandler handler) {
    SubscribeConfigurationRequest request;
    request.store = store;
    request.keys = std::move(keys);
    return SubscribeConfiguration(request, std::move(handler));
  }
  absl::StatusOr<bool> TryLock(std::string_view store, std::string_view resource,
                               std::string_view owner, int expiry_seconds) {
    TryLockRequest request;
    request.store = store;
    request.resource = resource;
    request.owner = owner;
    request.expiry_seconds = expiry_seconds;
    return TryLock(request);
  }
  absl::StatusOr<UnlockStatus> Unlock(std::string_view store, std::string_view resource,
                                      std::string_view owner) {
    UnlockRequest request;
    request.store = store;
    request.resource = resource;
    request.owner = owner;
    return Unlock(request);
  }
};

// The google.rpc.ErrorInfo reason a failed call carried ("DAPR_STATE_NOT_FOUND", ...), or "" when
// the error has none (Dapr's older errors have none, e.g. an etag mismatch).
std::string ErrorReason(const absl::Status& status);

// The name of an UnlockStatus ("SUCCESS", "LOCK_DOES_NOT_EXIST", ...), as Dapr spells it.
std::string_view UnlockStatusName(UnlockStatus status);

}  // namespace remora
