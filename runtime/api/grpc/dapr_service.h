#pragma once

// The `dapr.proto.runtime.v1.Dapr` service on gRPC's callback API: parse the request → call a
// building block → render the result or map the status with ToGrpcStatus. No state logic here.
// Block callbacks may complete on any thread (inline for the in-memory store, on an event loop
// for Redis); each handler finishes its reactor from there.

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include <grpcpp/generic/async_generic_service.h>

#include "api/grpc/api.h"
#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"

namespace remora::runtime::grpc {

namespace v1 = ::dapr::proto::runtime::v1;

class DaprService final : public v1::Dapr::CallbackService {
 public:
  DaprService(Blocks blocks, ApiHooks hooks, std::string api_token, bool api_logging);

  // Graceful shutdown, first half: from now on new calls answer UNAVAILABLE, and this waits
  // until every call in progress has completed or `deadline` has passed. True when none is left.
  // (gRPC's own Server::Shutdown also waits for idle client connections to close, which a
  // client may notice only at its next poll, seconds later; draining here lets the server be
  // shut down with an immediate deadline afterwards.)
  bool Drain(std::chrono::system_clock::time_point deadline);

  // Dapr's token check (contract §1.5): OK when no token is configured or the call carries the
  // right `dapr-api-token`, UNAUTHENTICATED otherwise. Also used for unknown methods.
  ::grpc::Status Authorize(const ::grpc::CallbackServerContext& context) const;

  using Unary = ::grpc::ServerUnaryReactor;
  using Ctx = ::grpc::CallbackServerContext;
  using Empty = ::google::protobuf::Empty;

  // Implemented.
  Unary* GetState(Ctx* ctx, const v1::GetStateRequest* req, v1::GetStateResponse* res) override;
  Unary* GetBulkState(Ctx* ctx, const v1::GetBulkStateRequest* req,
                      v1::GetBulkStateResponse* res) override;
  Unary* SaveState(Ctx* ctx, const v1::SaveStateRequest* req, Empty* res) override;
  Unary* DeleteState(Ctx* ctx, const v1::DeleteStateRequest* req, Empty* res) override;
  Unary* DeleteBulkState(Ctx* ctx, const v1::DeleteBulkStateRequest* req, Empty* res) override;
  Unary* ExecuteStateTransaction(Ctx* ctx, const v1::ExecuteStateTransactionRequest* req,
                                 Empty* res) override;
  Unary* GetMetadata(Ctx* ctx, const v1::GetMetadataRequest* req,
                     v1::GetMetadataResponse* res) override;
  Unary* SetMetadata(Ctx* ctx, const v1::SetMetadataRequest* req, Empty* res) override;
  Unary* Shutdown(Ctx* ctx, const v1::ShutdownRequest* req, Empty* res) override;
  Unary* GetSecret(Ctx* ctx, const v1::GetSecretRequest* req, v1::GetSecretResponse* res) override;
  Unary* GetBulkSecret(Ctx* ctx, const v1::GetBulkSecretRequest* req,
                       v1::GetBulkSecretResponse* res) override;

  // Service invocation: dapr_service_invoke.cc.
  Unary* InvokeService(Ctx* ctx, const v1::InvokeServiceRequest* req,
                       ::dapr::proto::common::v1::InvokeResponse* res) override;

  // Declared in our .proto but not implemented yet: UNIMPLEMENTED naming the RPC.
  Unary* QueryStateAlpha1(Ctx* ctx, const v1::QueryStateRequest*, v1::QueryStateResponse*) override;
  // Pub/sub: dapr_service_pubsub.cc.
  Unary* PublishEvent(Ctx* ctx, const v1::PublishEventRequest* req, Empty* res) override;
  Unary* BulkPublishEventAlpha1(Ctx* ctx, const v1::BulkPublishRequest* req,
                                v1::BulkPublishResponse* res) override;
  Unary* BulkPublishEvent(Ctx* ctx, const v1::BulkPublishRequest* req,
                          v1::BulkPublishResponse* res) override;
  ::grpc::ServerBidiReactor<v1::SubscribeTopicEventsRequestAlpha1,
                            v1::SubscribeTopicEventsResponseAlpha1>*
  SubscribeTopicEventsAlpha1(Ctx* ctx) override;
  Unary* InvokeBinding(Ctx* ctx, const v1::InvokeBindingRequest*,
                       v1::InvokeBindingResponse*) override;
  Unary* GetConfigurationAlpha1(Ctx* ctx, const v1::GetConfigurationRequest*,
                                v1::GetConfigurationResponse*) override;
  Unary* GetConfiguration(Ctx* ctx, const v1::GetConfigurationRequest*,
                          v1::GetConfigurationResponse*) override;
  ::grpc::ServerWriteReactor<v1::SubscribeConfigurationResponse>* SubscribeConfigurationAlpha1(
      Ctx* ctx, const v1::SubscribeConfigurationRequest*) override;
  ::grpc::ServerWriteReactor<v1::SubscribeConfigurationResponse>* SubscribeConfiguration(
      Ctx* ctx, const v1::SubscribeConfigurationRequest*) override;
  Unary* UnsubscribeConfigurationAlpha1(Ctx* ctx, const v1::UnsubscribeConfigurationRequest*,
                                        v1::UnsubscribeConfigurationResponse*) override;
  Unary* UnsubscribeConfiguration(Ctx* ctx, const v1::UnsubscribeConfigurationRequest*,
                                  v1::UnsubscribeConfigurationResponse*) override;
  // Implemented in dapr_service_lock.cc.
  Unary* TryLockAlpha1(Ctx* ctx, const v1::TryLockRequest*, v1::TryLockResponse*) override;
  Unary* UnlockAlpha1(Ctx* ctx, const v1::UnlockRequest*, v1::UnlockResponse*) override;

 private:
  class Call;
  // The reactor for a unary call, counted in calls_ until it is done. Already finished when the
  // token check fails or the service is draining (then returns false and the handler returns
  // the reactor as is).
  bool Begin(Ctx* ctx, std::string_view rpc, Call** reactor);
  Unary* NotImplemented(Ctx* ctx, std::string_view rpc);

  Blocks blocks_;
  StateBlock& state_;
  MetadataBlock& metadata_;
  SecretsBlock& secrets_;
  ApiHooks hooks_;
  std::string api_token_;
  bool api_logging_;
  std::atomic<int> calls_{0};  // unary calls not yet done
  std::atomic<bool> draining_{false};
};

// A unary call's reactor (defined here so that per-block dapr_service_<block>.cc files can use
// it), counted while the call is in progress (until gRPC is done with it, not
// just until Finish) so that Drain knows when nothing is left to answer.
class DaprService::Call final : public ::grpc::ServerUnaryReactor {
 public:
  explicit Call(std::atomic<int>* calls) : calls_(calls) { calls_->fetch_add(1); }
  // Runs once gRPC is done with the call (its answer sent or the call cancelled).
  void AtEnd(std::function<void()> on_done) { on_done_ = std::move(on_done); }
  void OnDone() override {
    if (on_done_) on_done_();
    calls_->fetch_sub(1);
    delete this;
  }

 private:
  std::atomic<int>* calls_;
  std::function<void()> on_done_;
};

// Every method the server does not know: the RPCs of the Dapr service that our .proto leaves out
// (actors, workflows, jobs, crypto, conversation), other services (grpc.health.v1 included: daprd
// does not serve it) when the call has no `dapr-app-id` (api/grpc/proxy.h forwards those that do).
// Checks the token like any call, then answers UNIMPLEMENTED naming the RPC.
class UnknownMethods final : public ::grpc::CallbackGenericService {
 public:
  explicit UnknownMethods(const DaprService& dapr) : dapr_(dapr) {}
  ::grpc::ServerGenericBidiReactor* CreateReactor(
      ::grpc::GenericCallbackServerContext* ctx) override;

 private:
  const DaprService& dapr_;
};

// "<Rpc> is not implemented in this build of remorad": what every unimplemented RPC answers.
::grpc::Status Unimplemented(std::string_view rpc);

}  // namespace remora::runtime::grpc
