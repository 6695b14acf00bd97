#include "api/grpc/dapr_service.h"

#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "api/grpc/status.h"
#include "blocks/metadata/metadata_block.h"
#include "blocks/secrets/secrets_block.h"
#include "blocks/state/state_block.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/errors.h"
#include "remora/runtime/log.h"

namespace remora::runtime::grpc {
namespace {

namespace common = ::dapr::proto::common::v1;
using errors::Code;

// Dapr hands the component "" / "first-write" / "last-write" (and likewise for consistency); a
// value this build does not know is "unspecified", as in daprd's enum-to-string conversion.
state::Concurrency ToConcurrency(common::StateOptions::StateConcurrency c) {
  switch (c) {
    case common::StateOptions::CONCURRENCY_FIRST_WRITE:
      return state::Concurrency::kFirstWrite;
    case common::StateOptions::CONCURRENCY_LAST_WRITE:
      return state::Concurrency::kLastWrite;
    default:
      return state::Concurrency::kUnspecified;
  }
}

state::Consistency ToConsistency(common::StateOptions::StateConsistency c) {
  switch (c) {
    case common::StateOptions::CONSISTENCY_EVENTUAL:
      return state::Consistency::kEventual;
    case common::StateOptions::CONSISTENCY_STRONG:
      return state::Consistency::kStrong;
    default:
      return state::Consistency::kUnspecified;
  }
}

state::Options ToOptions(const common::StateOptions& options) {
  return {ToConcurrency(options.concurrency()), ToConsistency(options.consistency())};
}

state::RequestMetadata ToMap(const google::protobuf::Map<std::string, std::string>& map) {
  state::RequestMetadata out;
  for (const auto& [k, v] : map) out.emplace(k, v);
  return out;
}

void CopyMap(const state::RequestMetadata& from,
             google::protobuf::Map<std::string, std::string>* to) {
  for (const auto& [k, v] : from) (*to)[k] = v;
}

// A StateItem's etag: absent (no Etag message) differs from empty on the wire and in Dapr.
std::optional<std::string> EtagOf(const common::StateItem& item) {
  if (!item.has_etag()) return std::nullopt;
  return item.etag().value();
}

state::SetRequest ToSet(const common::StateItem& item) {
  state::SetRequest set;
  set.key = item.key();
  set.value = item.value();  // raw bytes, stored untouched (no JSON re-encoding over gRPC)
  set.etag = EtagOf(item);
  set.metadata = ToMap(item.metadata());
  set.options = ToOptions(item.options());
  return set;
}

state::DeleteRequest ToDelete(const common::StateItem& item) {
  state::DeleteRequest del;
  del.key = item.key();
  del.etag = EtagOf(item);
  del.metadata = ToMap(item.metadata());
  del.options = ToOptions(item.options());
  return del;
}

// Finishes a unary call with the block's status.
auto FinishWith(::grpc::ServerUnaryReactor* reactor) {
  return [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); };
}

bool ConstantTimeEquals(::grpc::string_ref a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a.data()[i] ^ b[i]);
  return diff == 0;
}

// A streaming call answered with one status and nothing else. Finish before the reactor is bound
// to its call is allowed: gRPC applies it once bound.
template <typename Reactor>
class FinishedReactor final : public Reactor {
 public:
  explicit FinishedReactor(::grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// "/dapr.proto.runtime.v1.Dapr/RegisterActorTimer" -> "RegisterActorTimer"; a method of another
// service keeps its full name ("grpc.health.v1.Health/Check").
std::string_view RpcName(std::string_view method) {
  constexpr std::string_view kDapr = "/dapr.proto.runtime.v1.Dapr/";
  if (method.starts_with(kDapr)) return method.substr(kDapr.size());
  if (method.starts_with('/')) return method.substr(1);
  return method;
}

}  // namespace

::grpc::Status Unimplemented(std::string_view rpc) {
  return ::grpc::Status(::grpc::StatusCode::UNIMPLEMENTED,
                        StrCat(rpc, " is not implemented in this build of remorad"));
}

DaprService::DaprService(Blocks blocks, ApiHooks hooks, std::string api_token, bool api_logging)
    : blocks_(blocks),
      state_(*blocks.state),
      metadata_(*blocks.metadata),
      secrets_(*blocks.secrets),
      hooks_(std::move(hooks)),
      api_token_(std::move(api_token)),
      api_logging_(api_logging) {}

::grpc::Status DaprService::Authorize(const ::grpc::CallbackServerContext& context) const {
  if (api_token_.empty()) return ::grpc::Status::OK;
  const auto& md = context.client_metadata();
  auto it = md.find("dapr-api-token");
  if (it == md.end()) {
    return ::grpc::Status(::grpc::StatusCode::UNAUTHENTICATED,
                          "missing api token in request metadata");
  }
  if (!ConstantTimeEquals(it->second, api_token_)) {
    return ::grpc::Status(::grpc::StatusCode::UNAUTHENTICATED,
                          "authentication error: api token mismatch");
  }
  return ::grpc::Status::OK;
}

bool DaprService::Drain(std::chrono::system_clock::time_point deadline) {
  draining_.store(true);
  while (calls_.load() > 0) {
    if (std::chrono::system_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

bool DaprService::Begin(Ctx* ctx, std::string_view rpc, Call** reactor) {
  *reactor = new Call(&calls_);
  if (::grpc::Status s = Authorize(*ctx); !s.ok()) {
    (*reactor)->Finish(std::move(s));
    return false;
  }
  if (draining_.load()) {
    (*reactor)->Finish(::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "remorad is shutting down"));
    return false;
  }
  if (api_logging_) log::Info("gRPC API Called: /dapr.proto.runtime.v1.Dapr/", rpc);
  return true;
}

DaprService::Unary* DaprService::NotImplemented(Ctx* ctx, std::string_view rpc) {
  Call* reactor;
  if (Begin(ctx, rpc, &reactor)) reactor->Finish(Unimplemented(rpc));
  return reactor;
}

// ---- state ---------------------------------------------------------------------------------

DaprService::Unary* DaprService::GetState(Ctx* ctx, const v1::GetStateRequest* req,
                                          v1::GetStateResponse* res) {
  Call* reactor;
  if (!Begin(ctx, "GetState", &reactor)) return reactor;
  state::GetRequest request;
  request.key = req->key();
  request.metadata = ToMap(req->metadata());
  request.options.consistency = ToConsistency(req->consistency());
  state_.Get(req->store_name(), std::move(request),
             [reactor, res](absl::StatusOr<state::GetResponse> result) {
               if (!result.ok()) return reactor->Finish(ToGrpcStatus(result.status()));
               // A missing key is an empty response, not an error (contract §1.2).
               if (result->found) {
                 res->set_data(std::move(result->data));
                 if (result->etag) res->set_etag(*result->etag);
                 CopyMap(result->metadata, res->mutable_metadata());
               }
               reactor->Finish(::grpc::Status::OK);
             });
  return reactor;
}

DaprService::Unary* DaprService::GetBulkState(Ctx* ctx, const v1::GetBulkStateRequest* req,
                                              v1::GetBulkStateResponse* res) {
  Call* reactor;
  if (!Begin(ctx, "GetBulkState", &reactor)) return reactor;
  // `parallelism` is the store's business: the block's bulk get already runs keys concurrently.
  std::vector<std::string> keys(req->keys().begin(), req->keys().end());
  state_.BulkGet(req->store_name(), std::move(keys), ToMap(req->metadata()),
                 [reactor, res](absl::StatusOr<std::vector<state::BulkGetItem>> result) {
                   if (!result.ok()) return reactor->Finish(ToGrpcStatus(result.status()));
                   for (state::BulkGetItem& item : *result) {
                     v1::BulkStateItem* out = res->add_items();
                     out->set_key(std::move(item.key));
                     if (!item.error.empty()) {
                       out->set_error(std::move(item.error));
                     } else if (item.response.found) {
                       out->set_data(std::move(item.response.data));
                       if (item.response.etag) out->set_etag(*item.response.etag);
                       CopyMap(item.response.metadata, out->mutable_metadata());
                     }
                   }
                   reactor->Finish(::grpc::Status::OK);
                 });
  return reactor;
}

DaprService::Unary* DaprService::SaveState(Ctx* ctx, const v1::SaveStateRequest* req, Empty*) {
  Call* reactor;
  if (!Begin(ctx, "SaveState", &reactor)) return reactor;
  std::vector<state::SetRequest> items;
  items.reserve(req->states_size());
  for (const common::StateItem& item : req->states()) {
    if (item.key().empty()) {
      reactor->Finish(
          ToGrpcStatus(errors::Make(Code::kStateSaveEmptyKey, "state key cannot be empty")));
      return reactor;
    }
    items.push_back(ToSet(item));
  }
  state_.Save(req->store_name(), std::move(items), FinishWith(reactor));
  return reactor;
}

DaprService::Unary* DaprService::DeleteState(Ctx* ctx, const v1::DeleteStateRequest* req, Empty*) {
  Call* reactor;
  if (!Begin(ctx, "DeleteState", &reactor)) return reactor;
  state::DeleteRequest request;
  request.key = req->key();
  if (req->has_etag()) request.etag = req->etag().value();
  request.metadata = ToMap(req->metadata());
  request.options = ToOptions(req->options());
  state_.Delete(req->store_name(), std::move(request), FinishWith(reactor));
  return reactor;
}

DaprService::Unary* DaprService::DeleteBulkState(Ctx* ctx, const v1::DeleteBulkStateRequest* req,
                                                 Empty*) {
  Call* reactor;
  if (!Begin(ctx, "DeleteBulkState", &reactor)) return reactor;
  std::vector<state::DeleteRequest> items;
  items.reserve(req->states_size());
  for (const common::StateItem& item : req->states()) items.push_back(ToDelete(item));
  state_.BulkDelete(req->store_name(), std::move(items), FinishWith(reactor));
  return reactor;
}

DaprService::Unary* DaprService::ExecuteStateTransaction(
    Ctx* ctx, const v1::ExecuteStateTransactionRequest* req, Empty*) {
  Call* reactor;
  if (!Begin(ctx, "ExecuteStateTransaction", &reactor)) return reactor;
  state::TransactionRequest request;
  request.metadata = ToMap(req->metadata());
  request.operations.reserve(req->operations_size());
  for (const v1::TransactionalStateOperation& op : req->operations()) {
    state::Operation operation;
    if (op.operationtype() == "upsert") {
      operation.type = state::Operation::Type::kUpsert;
      operation.set = ToSet(op.request());
    } else if (op.operationtype() == "delete") {
      operation.type = state::Operation::Type::kDelete;
      operation.delete_ = ToDelete(op.request());
    } else {
      reactor->Finish(ToGrpcStatus(
          errors::Make(Code::kNotSupportedStateOperation,
                       StrCat("operation type ", op.operationtype(), " not supported"))));
      return reactor;
    }
    request.operations.push_back(std::move(operation));
  }
  state_.Transaction(req->storename(), std::move(request), FinishWith(reactor));
  return reactor;
}

// ---- secrets -------------------------------------------------------------------------------

DaprService::Unary* DaprService::GetSecret(Ctx* ctx, const v1::GetSecretRequest* req,
                                           v1::GetSecretResponse* res) {
  Call* reactor;
  if (!Begin(ctx, "GetSecret", &reactor)) return reactor;
  secrets_.Get(req->store_name(), req->key(), ToMap(req->metadata()),
               [reactor, res](absl::StatusOr<secrets::SecretData> result) {
                 if (!result.ok()) return reactor->Finish(ToGrpcStatus(result.status()));
                 CopyMap(*result, res->mutable_data());
                 reactor->Finish(::grpc::Status::OK);
               });
  return reactor;
}

DaprService::Unary* DaprService::GetBulkSecret(Ctx* ctx, const v1::GetBulkSecretRequest* req,
                                               v1::GetBulkSecretResponse* res) {
  Call* reactor;
  if (!Begin(ctx, "GetBulkSecret", &reactor)) return reactor;
  secrets_.BulkGet(req->store_name(), ToMap(req->metadata()),
                   [reactor, res](absl::StatusOr<secrets::BulkSecretData> result) {
                     if (!result.ok()) return reactor->Finish(ToGrpcStatus(result.status()));
                     for (const auto& [name, data] : *result) {
                       CopyMap(data, (*res->mutable_data())[name].mutable_secrets());
                     }
                     reactor->Finish(::grpc::Status::OK);
                   });
  return reactor;
}

// ---- sidecar -------------------------------------------------------------------------------

DaprService::Unary* DaprService::GetMetadata(Ctx* ctx, const v1::GetMetadataRequest*,
                                             v1::GetMetadataResponse* res) {
  Call* reactor;
  if (!Begin(ctx, "GetMetadata", &reactor)) return reactor;
  MetadataSnapshot m = metadata_.Snapshot();
  res->set_id(m.app_id);
  res->set_runtime_version(m.runtime_version);
  for (const std::string& f : m.enabled_features) res->add_enabled_features(f);
  for (const ComponentInfo& c : m.components) {
    v1::RegisteredComponents* out = res->add_registered_components();
    out->set_name(c.name);
    out->set_type(c.type);
    out->set_version(c.version);
    for (const std::string& cap : c.capabilities) out->add_capabilities(cap);
  }
  CopyMap(m.extended, res->mutable_extended_metadata());
  const AppConnectionInfo& a = m.app_connection;
  v1::AppConnectionProperties* app = res->mutable_app_connection_properties();
  app->set_port(a.port);
  app->set_protocol(a.protocol);
  app->set_channel_address(a.channel_address);
  if (a.max_concurrency > 0) app->set_max_concurrency(a.max_concurrency);
  if (a.health_check) {
    v1::AppConnectionHealthProperties* health = app->mutable_health();
    health->set_health_check_path(a.health_check_path);
    health->set_health_probe_interval(a.health_probe_interval);
    health->set_health_probe_timeout(a.health_probe_timeout);
    health->set_health_threshold(a.health_threshold);
  }
  res->mutable_actor_runtime()->set_runtime_status(v1::ActorRuntime::DISABLED);
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

DaprService::Unary* DaprService::SetMetadata(Ctx* ctx, const v1::SetMetadataRequest* req, Empty*) {
  Call* reactor;
  if (!Begin(ctx, "SetMetadata", &reactor)) return reactor;
  metadata_.Set(req->key(), req->value());
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

DaprService::Unary* DaprService::Shutdown(Ctx* ctx, const v1::ShutdownRequest*, Empty*) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("dapr-force-shutdown");
  bool force = it != md.end() && it->second == "true";
  Call* reactor;
  if (!Begin(ctx, "Shutdown", &reactor)) return reactor;
  // The shutdown starts once this call is done, so the graceful drain does not wait for it.
  reactor->AtEnd([shutdown = hooks_.shutdown, force] {
    if (shutdown) shutdown(force);
  });
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

// ---- not implemented yet -------------------------------------------------------------------

DaprService::Unary* DaprService::QueryStateAlpha1(Ctx* ctx, const v1::QueryStateRequest*,
                                                  v1::QueryStateResponse*) {
  return NotImplemented(ctx, "QueryStateAlpha1");
}
DaprService::Unary* DaprService::InvokeBinding(Ctx* ctx, const v1::InvokeBindingRequest*,
                                               v1::InvokeBindingResponse*) {
  return NotImplemented(ctx, "InvokeBinding");
}

::grpc::ServerGenericBidiReactor* UnknownMethods::CreateReactor(
    ::grpc::GenericCallbackServerContext* ctx) {
  ::grpc::Status status = dapr_.Authorize(*ctx);
  if (status.ok()) status = Unimplemented(RpcName(ctx->method()));
  return new FinishedReactor<::grpc::ServerGenericBidiReactor>(std::move(status));
}

}  // namespace remora::runtime::grpc
