// The configuration RPCs of the Dapr service (contract §1.1, §1.2): Get, Subscribe (a server
// stream) and Unsubscribe, each with its Alpha1 alias.

#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "api/grpc/dapr_service.h"
#include "api/grpc/status.h"
#include "blocks/configuration/configuration_block.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/errors.h"

namespace remora::runtime::grpc {
namespace {

namespace common = ::dapr::proto::common::v1;
using errors::Code;
using Response = v1::SubscribeConfigurationResponse;

absl::Status NotConfigured() {
  return errors::Make(Code::kConfigurationStoreNotConfigured,
                      "configuration stores not configured");
}

std::map<std::string, std::string> ToMap(
    const google::protobuf::Map<std::string, std::string>& map) {
  return {map.begin(), map.end()};
}

void CopyItems(const configuration::Items& items,
               google::protobuf::Map<std::string, common::ConfigurationItem>* out) {
  for (const auto& [key, item] : items) {
    common::ConfigurationItem& o = (*out)[key];
    o.set_value(item.value);
    o.set_version(item.version);
    for (const auto& [k, v] : item.metadata) (*o.mutable_metadata())[k] = v;
  }
}

void DoGet(ConfigurationBlock* block, const v1::GetConfigurationRequest* req,
           v1::GetConfigurationResponse* res, ::grpc::ServerUnaryReactor* reactor) {
  if (block == nullptr) return reactor->Finish(ToGrpcStatus(NotConfigured()));
  configuration::GetRequest request;
  request.keys.assign(req->keys().begin(), req->keys().end());
  request.metadata = ToMap(req->metadata());
  block->Get(req->store_name(), std::move(request),
             [reactor, res](absl::StatusOr<configuration::Items> items) {
               if (!items.ok()) return reactor->Finish(ToGrpcStatus(items.status()));
               CopyItems(*items, res->mutable_items());
               reactor->Finish(::grpc::Status::OK);
             });
}

void DoUnsubscribe(ConfigurationBlock* block, const v1::UnsubscribeConfigurationRequest* req,
                   v1::UnsubscribeConfigurationResponse* res, ::grpc::ServerUnaryReactor* reactor) {
  if (block == nullptr) return reactor->Finish(ToGrpcStatus(NotConfigured()));
  absl::Status s = block->Unsubscribe(req->store_name(), req->id());
  Code code;
  if (s.ok()) {
    res->set_ok(true);
  } else if (errors::CodeOf(s, &code) && code == Code::kConfigurationUnsubscribe) {
    // daprd answers an unknown subscription in the body, not as a gRPC error.
    res->set_ok(false);
    res->set_message(std::string(MessageOf(s)));
  } else {
    return reactor->Finish(ToGrpcStatus(s));
  }
  reactor->Finish(::grpc::Status::OK);
}

// One SubscribeConfiguration stream: the first message carries the subscription id, then one
// message per update. Ends when the client goes away (the subscription is dropped) or when
// someone unsubscribes the id (the stream then finishes OK after the queued messages).
//
// Finish is called only once the block's Subscribe has answered, and the reactor is deleted
// (OnDone) only after Finish; the block stops the handler before Unsubscribe returns, so neither
// callback can reach a deleted reactor.
class SubscribeReactor final : public ::grpc::ServerWriteReactor<Response> {
 public:
  SubscribeReactor(ConfigurationBlock* block, const v1::SubscribeConfigurationRequest& req)
      : block_(block), store_(req.store_name()) {
    configuration::SubscribeRequest request;
    request.keys.assign(req.keys().begin(), req.keys().end());
    request.metadata = ToMap(req.metadata());
    block_->Subscribe(
        store_, std::move(request),
        [this](configuration::UpdateEvent event) {
          Response message;
          message.set_id(std::move(event.id));
          CopyItems(event.items, message.mutable_items());
          Enqueue(std::move(message));
        },
        [this] { FinishAfterQueue(); },
        [this](absl::StatusOr<std::string> id) { OnSubscribed(id); });
  }

  void OnWriteDone(bool ok) override {
    const Response* next = nullptr;
    bool finish = false;
    {
      std::lock_guard lock(mu_);
      queue_.pop_front();
      if (!ok) {
        // The client is gone; OnCancel follows and ends the subscription.
        queue_.clear();
        writing_ = false;
        return;
      }
      if (!queue_.empty()) {
        next = &queue_.front();
      } else {
        writing_ = false;
        finish = finish_pending_ && !finished_;
        if (finish) finished_ = true;
      }
    }
    if (next) StartWrite(next);
    if (finish) Finish(::grpc::Status::OK);
  }

  void OnCancel() override {
    std::string id;
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
      if (!subscribed_) return;  // OnSubscribed finishes
      id = id_;
    }
    // Not under mu_: Unsubscribe waits for a running handler, which may be waiting for mu_.
    (void)block_->Unsubscribe(store_, id);  // runs FinishAfterQueue (unless already gone)
    FinishNow(::grpc::Status::CANCELLED);
  }

  void OnDone() override { delete this; }

 private:
  void OnSubscribed(const absl::StatusOr<std::string>& id) {
    if (!id.ok()) return FinishNow(ToGrpcStatus(id.status()));
    bool cancelled;
    {
      std::lock_guard lock(mu_);
      id_ = *id;
      subscribed_ = true;
      cancelled = cancelled_;
    }
    if (cancelled) {
      (void)block_->Unsubscribe(store_, *id);
      return FinishNow(::grpc::Status::CANCELLED);
    }
    Response first;
    first.set_id(*id);
    Enqueue(std::move(first));
  }

  void Enqueue(Response message) {
    const Response* start = nullptr;
    {
      std::lock_guard lock(mu_);
      if (finished_ || cancelled_ || finish_pending_) return;
      queue_.push_back(std::move(message));
      if (!writing_) {
        writing_ = true;
        start = &queue_.front();
      }
    }
    if (start) StartWrite(start);
  }

  // Unsubscribed: what is queued still goes out, then the stream ends OK. After a cancellation
  // the caller (OnCancel / OnSubscribed) finishes instead: finishing here could let OnDone delete
  // the reactor while that caller still uses it.
  void FinishAfterQueue() {
    bool finish;
    {
      std::lock_guard lock(mu_);
      finish_pending_ = true;
      finish = !writing_ && !finished_ && !cancelled_;
      if (finish) finished_ = true;
    }
    if (finish) Finish(::grpc::Status::OK);
  }

  void FinishNow(::grpc::Status status) {
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(std::move(status));
  }

  ConfigurationBlock* block_;
  const std::string store_;
  std::mutex mu_;
  std::deque<Response> queue_;  // front is being written while writing_
  bool writing_ = false;
  bool subscribed_ = false;
  bool cancelled_ = false;
  bool finish_pending_ = false;
  bool finished_ = false;
  std::string id_;
};

template <typename Reactor>
class FinishedReactor final : public Reactor {
 public:
  explicit FinishedReactor(::grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

DaprService::Unary* DaprService::GetConfigurationAlpha1(Ctx* ctx,
                                                        const v1::GetConfigurationRequest* req,
                                                        v1::GetConfigurationResponse* res) {
  Call* reactor;
  if (Begin(ctx, "GetConfigurationAlpha1", &reactor))
    DoGet(blocks_.configuration, req, res, reactor);
  return reactor;
}

DaprService::Unary* DaprService::GetConfiguration(Ctx* ctx, const v1::GetConfigurationRequest* req,
                                                  v1::GetConfigurationResponse* res) {
  Call* reactor;
  if (Begin(ctx, "GetConfiguration", &reactor)) DoGet(blocks_.configuration, req, res, reactor);
  return reactor;
}

::grpc::ServerWriteReactor<Response>* DaprService::SubscribeConfigurationAlpha1(
    Ctx* ctx, const v1::SubscribeConfigurationRequest* req) {
  return SubscribeConfiguration(ctx, req);
}

::grpc::ServerWriteReactor<Response>* DaprService::SubscribeConfiguration(
    Ctx* ctx, const v1::SubscribeConfigurationRequest* req) {
  ::grpc::Status status = Authorize(*ctx);
  if (status.ok() && draining_.load()) {
    status = ::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "remorad is shutting down");
  }
  if (status.ok() && blocks_.configuration == nullptr) status = ToGrpcStatus(NotConfigured());
  if (!status.ok()) return new FinishedReactor<::grpc::ServerWriteReactor<Response>>(status);
  return new SubscribeReactor(blocks_.configuration, *req);
}

DaprService::Unary* DaprService::UnsubscribeConfigurationAlpha1(
    Ctx* ctx, const v1::UnsubscribeConfigurationRequest* req,
    v1::UnsubscribeConfigurationResponse* res) {
  Call* reactor;
  if (Begin(ctx, "UnsubscribeConfigurationAlpha1", &reactor)) {
    DoUnsubscribe(blocks_.configuration, req, res, reactor);
  }
  return reactor;
}

DaprService::Unary* DaprService::UnsubscribeConfiguration(
    Ctx* ctx, const v1::UnsubscribeConfigurationRequest* req,
    v1::UnsubscribeConfigurationResponse* res) {
  Call* reactor;
  if (Begin(ctx, "UnsubscribeConfiguration", &reactor)) {
    DoUnsubscribe(blocks_.configuration, req, res, reactor);
  }
  return reactor;
}

}  // namespace remora::runtime::grpc
