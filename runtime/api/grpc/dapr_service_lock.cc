// The distributed lock on the gRPC API (contract §1.3): TryLockAlpha1 and UnlockAlpha1 over the
// protocol-free LockBlock. Behaviour and error codes are the HTTP routes'
// (api/http/routes_lock.cc).

#include <utility>

#include "api/grpc/dapr_service.h"
#include "api/grpc/status.h"
#include "blocks/lock/lock_block.h"
#include "remora/runtime/errors.h"

namespace remora::runtime::grpc {
namespace {

absl::Status NotConfigured() {
  return errors::Make(errors::Code::kLockStoreNotConfigured, "lock store is not configured");
}

}  // namespace

DaprService::Unary* DaprService::TryLockAlpha1(Ctx* ctx, const v1::TryLockRequest* req,
                                               v1::TryLockResponse* res) {
  Call* reactor;
  if (!Begin(ctx, "TryLockAlpha1", &reactor)) return reactor;
  if (blocks_.lock == nullptr) {
    reactor->Finish(ToGrpcStatus(NotConfigured()));
    return reactor;
  }
  lock::TryLockRequest request;
  request.resource_id = req->resource_id();
  request.lock_owner = req->lock_owner();
  request.expiry_in_seconds = req->expiry_in_seconds();
  blocks_.lock->TryLock(req->store_name(), std::move(request),
                        [reactor, res](absl::StatusOr<lock::TryLockResponse> result) {
                          if (!result.ok()) return reactor->Finish(ToGrpcStatus(result.status()));
                          res->set_success(result->success);
                          reactor->Finish(::grpc::Status::OK);
                        });
  return reactor;
}

DaprService::Unary* DaprService::UnlockAlpha1(Ctx* ctx, const v1::UnlockRequest* req,
                                              v1::UnlockResponse* res) {
  Call* reactor;
  if (!Begin(ctx, "UnlockAlpha1", &reactor)) return reactor;
  if (blocks_.lock == nullptr) {
    reactor->Finish(ToGrpcStatus(NotConfigured()));
    return reactor;
  }
  lock::UnlockRequest request;
  request.resource_id = req->resource_id();
  request.lock_owner = req->lock_owner();
  blocks_.lock->Unlock(
      req->store_name(), std::move(request),
      [reactor, res](absl::StatusOr<lock::UnlockStatus> result) {
        if (!result.ok()) return reactor->Finish(ToGrpcStatus(result.status()));
        // The enum values are the wire values (store.h).
        res->set_status(static_cast<v1::UnlockResponse::Status>(static_cast<int>(*result)));
        reactor->Finish(::grpc::Status::OK);
      });
  return reactor;
}

}  // namespace remora::runtime::grpc
