// The embedded transport: the runtime's building blocks called in-process.
//
// Speed comes from not hopping threads: the state block and the in-memory store complete their
// callbacks inline, so a GET is a few function calls on the caller's thread. A store that answers
// later (Redis on the runtime's event loop) is waited for on a small shared completion slot.

#include <atomic>
#include <cstdlib>

#include "blocks/configuration/configuration_block.h"
#include "blocks/lock/lock_block.h"
#include "blocks/metadata/metadata_block.h"
#include "blocks/pubsub/pubsub_block.h"
#include "blocks/secrets/secrets_block.h"
#include "blocks/state/state_block.h"
#include "remora/client.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/errors.h"
#include "remora/runtime/log.h"
#include "remora/runtime/runtime.h"
#include "src/await.h"
#include "src/internal.h"

namespace remora {
namespace {

namespace rs = components::state;

// Runtime statuses carry the runtime's internal error code as a payload; the SDK's callers get
// what a remote call would give them instead: the canonical code, the message and the reason.
absl::Status Public(absl::Status status) {
  if (status.ok()) return status;
  errors::Code code;
  if (errors::CodeOf(status, &code)) {
    absl::Status out = MakeStatus(status.code(), MessageOf(status));
    sdk_internal::SetReason(out, errors::SpecOf(code).reason);
    return out;
  }
  return status;
}

rs::Consistency ToRuntime(Consistency c) {
  switch (c) {
    case Consistency::kEventual:
      return rs::Consistency::kEventual;
    case Consistency::kStrong:
      return rs::Consistency::kStrong;
    case Consistency::kUnspecified:
      break;
  }
  return rs::Consistency::kUnspecified;
}

rs::Concurrency ToRuntime(Concurrency c) {
  switch (c) {
    case Concurrency::kFirstWrite:
      return rs::Concurrency::kFirstWrite;
    case Concurrency::kLastWrite:
      return rs::Concurrency::kLastWrite;
    case Concurrency::kUnspecified:
      break;
  }
  return rs::Concurrency::kUnspecified;
}

rs::Options ToRuntime(const StateOptions& o) {
  return {ToRuntime(o.concurrency), ToRuntime(o.consistency)};
}

rs::SetRequest ToRuntime(const StateItem& item) {
  return {item.key, item.value, item.etag, item.metadata, ToRuntime(item.options)};
}

ConfigurationItems ToSdk(components::configuration::Items items) {
  ConfigurationItems out;
  for (auto& [key, item] : items) {
    out[key] = {std::move(item.value), std::move(item.version),
                Metadata(item.metadata.begin(), item.metadata.end())};
  }
  return out;
}

class EmbeddedClient final : public Client {
 public:
  EmbeddedClient(std::unique_ptr<runtime::Runtime> rt, std::chrono::milliseconds timeout)
      : runtime_(std::move(rt)), state_(runtime_->state()), timeout_(timeout) {}

  absl::StatusOr<State> GetState(const GetStateRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    rs::GetRequest req{request.key, request.metadata, {}};
    req.options.consistency = ToRuntime(request.consistency);
    auto result = sdk_internal::Await<absl::StatusOr<rs::GetResponse>>(
        [&](auto done) { state_.Get(request.store, std::move(req), std::move(done)); }, timeout_);
    if (!result.ok()) return Public(result.status());
    State out;
    out.found = result->found;
    out.value = std::move(result->data);
    out.etag = result->etag.value_or("");
    out.metadata = std::move(result->metadata);
    return out;
  }

  absl::Status SaveState(const SaveStateRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    std::vector<rs::SetRequest> items;
    items.reserve(request.items.size());
    for (const StateItem& item : request.items) items.push_back(ToRuntime(item));
    return Public(sdk_internal::Await<absl::Status>(
        [&](auto done) { state_.Save(request.store, std::move(items), std::move(done)); },
        timeout_));
  }

  absl::Status DeleteState(const DeleteStateRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    rs::DeleteRequest req{request.key, request.etag, request.metadata, ToRuntime(request.options)};
    return Public(sdk_internal::Await<absl::Status>(
        [&](auto done) { state_.Delete(request.store, std::move(req), std::move(done)); },
        timeout_));
  }

  absl::StatusOr<std::vector<BulkStateItem>> GetBulkState(
      const GetBulkStateRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    auto result = sdk_internal::Await<absl::StatusOr<std::vector<rs::BulkGetItem>>>(
        [&](auto done) {
          state_.BulkGet(request.store, request.keys, request.metadata, std::move(done));
        },
        timeout_);
    if (!result.ok()) return Public(result.status());
    std::vector<BulkStateItem> items;
    items.reserve(result->size());
    for (rs::BulkGetItem& in : *result) {
      BulkStateItem out;
      out.key = std::move(in.key);
      out.found = in.response.found;
      out.value = std::move(in.response.data);
      out.etag = in.response.etag.value_or("");
      out.metadata = std::move(in.response.metadata);
      out.error = std::move(in.error);
      items.push_back(std::move(out));
    }
    return items;
  }

  absl::Status DeleteBulkState(const DeleteBulkStateRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    std::vector<rs::DeleteRequest> items;
    items.reserve(request.items.size());
    for (const DeleteItem& item : request.items) {
      items.push_back({item.key, item.etag, item.metadata, ToRuntime(item.options)});
    }
    return Public(sdk_internal::Await<absl::Status>(
        [&](auto done) { state_.BulkDelete(request.store, std::move(items), std::move(done)); },
        timeout_));
  }

  absl::Status ExecuteStateTransaction(const TransactionRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    rs::TransactionRequest req;
    req.metadata = request.metadata;
    req.operations.reserve(request.operations.size());
    for (const TransactionOperation& op : request.operations) {
      rs::Operation out;
      if (op.type == TransactionOperation::Type::kUpsert) {
        out.type = rs::Operation::Type::kUpsert;
        out.set = ToRuntime(op.item);
      } else {
        out.type = rs::Operation::Type::kDelete;
        out.delete_ = {op.item.key, op.item.etag, op.item.metadata, ToRuntime(op.item.options)};
      }
      req.operations.push_back(std::move(out));
    }
    return Public(sdk_internal::Await<absl::Status>(
        [&](auto done) { state_.Transaction(request.store, std::move(req), std::move(done)); },
        timeout_));
  }

  absl::StatusOr<SidecarMetadata> GetMetadata() override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    runtime::MetadataSnapshot snap = runtime_->metadata().Snapshot();
    SidecarMetadata out;
    out.app_id = std::move(snap.app_id);
    out.runtime_version = std::move(snap.runtime_version);
    out.enabled_features = std::move(snap.enabled_features);
    for (runtime::ComponentInfo& c : snap.components) {
      out.components.push_back(
          {std::move(c.name), std::move(c.type), std::move(c.version), std::move(c.capabilities)});
    }
    out.extended = Metadata(snap.extended.begin(), snap.extended.end());
    return out;
  }

  absl::Status SetMetadata(std::string_view key, std::string_view value) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    runtime_->metadata().Set(std::string(key), std::string(value));
    return absl::OkStatus();
  }

  absl::Status PublishEvent(const PublishRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    runtime::PublishEventRequest req;
    req.pubsub_name = request.pubsub;
    req.topic = request.topic;
    req.data = request.data;
    req.content_type = request.content_type;
    req.metadata = request.metadata;
    return Public(sdk_internal::Await<absl::Status>(
        [&](auto done) { runtime_->pubsub().Publish(std::move(req), std::move(done)); }, timeout_));
  }

  absl::StatusOr<BulkPublishResult> BulkPublishEvent(const BulkPublishRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    runtime::BulkPublishEventRequest req;
    req.pubsub_name = request.pubsub;
    req.topic = request.topic;
    req.metadata = request.metadata;
    req.entries.reserve(request.entries.size());
    for (size_t i = 0; i < request.entries.size(); ++i) {
      const BulkPublishEntry& in = request.entries[i];
      req.entries.push_back({in.entry_id.empty() ? std::to_string(i) : in.entry_id, in.event,
                             in.content_type, in.metadata});
    }
    auto result = sdk_internal::Await<absl::StatusOr<runtime::BulkPublishEventResult>>(
        [&](auto done) { runtime_->pubsub().BulkPublish(std::move(req), std::move(done)); },
        timeout_);
    if (!result.ok()) return Public(result.status());
    BulkPublishResult out;
    for (auto& failed : result->failed) {
      out.failed_entries.push_back({std::move(failed.entry_id), std::move(failed.error)});
    }
    return out;
  }

  absl::StatusOr<Secret> GetSecret(const GetSecretRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    auto result = sdk_internal::Await<absl::StatusOr<components::secretstores::SecretData>>(
        [&](auto done) {
          runtime_->secrets().Get(request.store, request.key, request.metadata, std::move(done));
        },
        timeout_);
    if (!result.ok()) return Public(result.status());
    return Secret(result->begin(), result->end());
  }

  absl::StatusOr<BulkSecret> GetBulkSecret(const GetBulkSecretRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    auto result = sdk_internal::Await<absl::StatusOr<components::secretstores::BulkSecretData>>(
        [&](auto done) {
          runtime_->secrets().BulkGet(request.store, request.metadata, std::move(done));
        },
        timeout_);
    if (!result.ok()) return Public(result.status());
    BulkSecret out;
    for (auto& [name, secret] : *result) out[name] = Secret(secret.begin(), secret.end());
    return out;
  }

  // Invocation needs an app channel and peers to call: an embedded runtime has neither.
  absl::StatusOr<InvokeResponse> InvokeMethod(const InvokeRequest&) override {
    return NotEmbedded("service invocation");
  }

  absl::StatusOr<ConfigurationItems> GetConfiguration(
      const GetConfigurationRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    runtime::ConfigurationBlock* block = runtime_->blocks().configuration;
    if (block == nullptr) return NotEmbedded("configuration");
    auto result = sdk_internal::Await<absl::StatusOr<components::configuration::Items>>(
        [&](auto done) {
          block->Get(request.store, {request.keys, request.metadata}, std::move(done));
        },
        timeout_);
    if (!result.ok()) return Public(result.status());
    return ToSdk(std::move(*result));
  }

  absl::StatusOr<std::string> SubscribeConfiguration(const SubscribeConfigurationRequest& request,
                                                     ConfigurationHandler handler) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    runtime::ConfigurationBlock* block = runtime_->blocks().configuration;
    if (block == nullptr) return NotEmbedded("configuration");
    auto shared = std::make_shared<ConfigurationHandler>(std::move(handler));
    auto result = sdk_internal::Await<absl::StatusOr<std::string>>(
        [&](auto done) {
          block->Subscribe(
              request.store, {request.keys, request.metadata},
              [shared](components::configuration::UpdateEvent event) {
                if (*shared) (*shared)({std::move(event.id), ToSdk(std::move(event.items))});
              },
              nullptr, std::move(done));
        },
        timeout_);
    if (!result.ok()) return Public(result.status());
    return *std::move(result);
  }

  absl::Status UnsubscribeConfiguration(std::string_view store, std::string_view id) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    runtime::ConfigurationBlock* block = runtime_->blocks().configuration;
    if (block == nullptr) return NotEmbedded("configuration");
    return Public(block->Unsubscribe(store, std::string(id)));
  }

  absl::StatusOr<bool> TryLock(const TryLockRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    runtime::LockBlock* block = runtime_->blocks().lock;
    if (block == nullptr) return NotEmbedded("distributed lock");
    auto result = sdk_internal::Await<absl::StatusOr<components::lock::TryLockResponse>>(
        [&](auto done) {
          block->TryLock(request.store, {request.resource, request.owner, request.expiry_seconds},
                         std::move(done));
        },
        timeout_);
    if (!result.ok()) return Public(result.status());
    return result->success;
  }

  absl::StatusOr<UnlockStatus> Unlock(const UnlockRequest& request) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    runtime::LockBlock* block = runtime_->blocks().lock;
    if (block == nullptr) return NotEmbedded("distributed lock");
    auto result = sdk_internal::Await<absl::StatusOr<components::lock::UnlockStatus>>(
        [&](auto done) {
          block->Unlock(request.store, {request.resource, request.owner}, std::move(done));
        },
        timeout_);
    if (!result.ok()) return Public(result.status());
    // The component's enum has Dapr's wire values, as UnlockStatus has its order.
    return static_cast<UnlockStatus>(static_cast<int>(*result));
  }

  absl::Status Shutdown() override {
    shut_down_.store(true, std::memory_order_relaxed);
    return absl::OkStatus();
  }

 private:
  static absl::Status NotEmbedded(std::string_view api) {
    return MakeStatus(absl::StatusCode::kFailedPrecondition,
                      StrCat(api,
                             " is not available in the embedded runtime yet (use Client::Remote "
                             "with remorad)"));
  }

  absl::Status CheckOpen() const {
    if (!shut_down_.load(std::memory_order_relaxed)) return absl::OkStatus();
    return MakeStatus(absl::StatusCode::kFailedPrecondition,
                      "the embedded runtime was shut down (Client::Shutdown)");
  }

  std::unique_ptr<runtime::Runtime> runtime_;
  runtime::StateBlock& state_;
  std::chrono::milliseconds timeout_;
  std::atomic<bool> shut_down_{false};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Embedded(const EmbeddedOptions& options) {
  log::Level level = log::Level::kWarn;
  if (!options.log_level.empty() && !log::ParseLevel(options.log_level, &level)) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("EmbeddedOptions.log_level: unknown level '", options.log_level,
                             "' (debug, info, warn, error)"));
  }
  log::Configure(level, /*as_json=*/false, options.app_id);
  runtime::Options rt_options;
  rt_options.app_id = options.app_id;
  rt_options.resources_paths = options.resources_paths;
  // As remorad does: keyPrefix "namespace" scopes keys with $NAMESPACE.
  if (const char* ns = std::getenv("NAMESPACE"); ns != nullptr) rt_options.namespace_ = ns;
  auto rt = runtime::Runtime::Create(rt_options);
  if (!rt.ok()) return rt.status();
  return std::unique_ptr<Client>(new EmbeddedClient(*std::move(rt), options.timeout));
}

}  // namespace remora
