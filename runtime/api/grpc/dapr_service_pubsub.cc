// Pub/sub on the gRPC API (contract §1.1, §1.2): PublishEvent, BulkPublishEvent (+Alpha1) and the
// SubscribeTopicEventsAlpha1 streaming subscription, over the protocol-free PubSubBlock. The
// behaviour and error codes are the HTTP routes' (api/http/routes.cc Publish/BulkPublish).

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "api/grpc/dapr_service.h"
#include "api/grpc/grpc_app_channel.h"
#include "api/grpc/status.h"
#include "blocks/pubsub/pubsub_block.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/errors.h"
#include "remora/runtime/log.h"

namespace remora::runtime::grpc {
namespace {

using errors::Code;
using Request = v1::SubscribeTopicEventsRequestAlpha1;
using Response = v1::SubscribeTopicEventsResponseAlpha1;

std::map<std::string, std::string> ToStdMap(
    const google::protobuf::Map<std::string, std::string>& map) {
  return {map.begin(), map.end()};
}

std::string MetadataOf(const ::grpc::CallbackServerContext& ctx, const char* name) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(name);
  return it == md.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

absl::Status NotConfigured() {
  return errors::Make(Code::kPubsubNotConfigured, "no pubsub is configured");
}

// The entries of a BulkPublishRequest for the block; the block validates entry ids.
BulkPublishEventRequest ToBulk(const ::grpc::CallbackServerContext& ctx,
                               const v1::BulkPublishRequest& req) {
  BulkPublishEventRequest request;
  request.pubsub_name = req.pubsub_name();
  request.topic = req.topic();
  request.metadata = ToStdMap(req.metadata());
  request.traceparent = MetadataOf(ctx, "traceparent");
  request.tracestate = MetadataOf(ctx, "tracestate");
  request.entries.reserve(req.entries_size());
  for (const v1::BulkPublishRequestEntry& e : req.entries()) {
    BulkPublishEventEntry entry;
    entry.entry_id = e.entry_id();
    entry.data = e.event();
    entry.content_type = e.content_type();
    entry.metadata = ToStdMap(e.metadata());
    request.entries.push_back(std::move(entry));
  }
  return request;
}

// One SubscribeTopicEventsAlpha1 call. Reads: the initial request (subscribes through the block,
// then answers initial_response), then event_processed messages that complete the matching
// deliveries. Writes are queued: the block may deliver several events at once, from any thread,
// and gRPC allows one write in flight. Finish is deferred while a write is in flight so that it
// never races a StartWrite.
//
// Lifetime: gRPC owns the reactor until OnDone. The block's deliver callback holds `State`
// (shared), which reaches the reactor only while `finished` is false; after that a delivery fails
// at once (counted as RETRY by the block).
class SubscribeStream final : public ::grpc::ServerBidiReactor<Request, Response> {
 public:
  SubscribeStream(PubSubBlock* pubsub, bool api_logging)
      : pubsub_(pubsub), api_logging_(api_logging), state_(std::make_shared<State>()) {
    state_->reactor = this;
    StartRead(&read_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return End(::grpc::Status::OK);  // the client closed its side, or the call ended
    if (!subscribed_) {
      if (!read_.has_initial_request()) {
        return End(::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT,
                                  "the first message must be an initial_request"));
      }
      if (::grpc::Status s = Subscribe(read_.initial_request()); !s.ok()) return End(std::move(s));
    } else if (read_.has_initial_request()) {
      return End(::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT,
                                "duplicate initial_request: the stream is already subscribed"));
    } else if (read_.has_event_processed()) {
      const auto& processed = read_.event_processed();
      if (!state_->Complete(processed.id(), EventStatusOf(processed.status().status()))) {
        return End(::grpc::Status(
            ::grpc::StatusCode::INVALID_ARGUMENT,
            StrCat("event_processed for unknown event id \"", processed.id(), "\"")));
      }
    }
    StartRead(&read_);
  }

  void OnWriteDone(bool ok) override { state_->WriteDone(ok); }

  // Nothing to do: a read is always pending until the stream ends, and a cancelled call fails it
  // (OnReadDone(false) ends the stream). Finishing only from the read side keeps Finish and
  // StartRead from racing.
  void OnCancel() override {}

  void OnDone() override {
    // No delivery reaches the state after this; the ones still waiting for the client's answer
    // are retried by the block.
    if (subscription_id_ != 0) pubsub_->RemoveStreamingSubscription(subscription_id_);
    state_->FailPending();
    delete this;
  }

 private:
  struct State {
    std::mutex mu;
    SubscribeStream* reactor = nullptr;  // valid while !finished
    bool holding = true;                 // writes wait until initial_response is queued
    bool writing = false;
    bool finish_requested = false;
    bool finished = false;
    bool broken = false;  // a write failed: nothing more is written
    ::grpc::Status finish_status;
    std::deque<Response> queue;
    Response current;
    // Deliveries waiting for event_processed, by CloudEvent id (FIFO if a publisher reuses ids).
    std::map<std::string, std::deque<Callback<EventStatus>>> pending;

    // Queues `message` (at the front for the initial response); false once the stream is over.
    bool Write(Response message, bool front = false) {
      SubscribeStream* start = nullptr;
      {
        std::lock_guard lock(mu);
        if (finished || finish_requested || broken) return false;
        if (front) {
          queue.push_front(std::move(message));
        } else {
          queue.push_back(std::move(message));
        }
        start = NextLocked();
      }
      if (start != nullptr) start->StartWrite(&current);
      return true;
    }
    // Takes the next message into `current` when no write is in flight.
    SubscribeStream* NextLocked() {
      if (writing || holding || queue.empty() || finished || finish_requested || broken) {
        return nullptr;
      }
      current = std::move(queue.front());
      queue.pop_front();
      writing = true;
      return reactor;
    }
    void Release() {
      SubscribeStream* start = nullptr;
      {
        std::lock_guard lock(mu);
        holding = false;
        start = NextLocked();
      }
      if (start != nullptr) start->StartWrite(&current);
    }
    void WriteDone(bool ok) {
      SubscribeStream* start = nullptr;
      SubscribeStream* finish = nullptr;
      {
        std::lock_guard lock(mu);
        writing = false;
        // A failed write means the call is broken: its pending read fails too, and the read
        // side finishes the stream.
        if (!ok) broken = true;
        if (finish_requested) {
          finished = true;
          finish = reactor;
        } else {
          start = NextLocked();
        }
      }
      if (start != nullptr) start->StartWrite(&current);
      if (finish != nullptr) finish->Finish(finish_status);
    }
    // Finishes now, or after the write in flight. Called from the read reactions only.
    void RequestFinish(::grpc::Status status) {
      SubscribeStream* finish = nullptr;
      {
        std::lock_guard lock(mu);
        if (finish_requested || finished) return;
        finish_requested = true;
        finish_status = std::move(status);
        if (!writing) {
          finished = true;
          finish = reactor;
        }
      }
      if (finish != nullptr) finish->Finish(finish_status);
    }
    void Add(const std::string& id, Callback<EventStatus> done) {
      std::lock_guard lock(mu);
      pending[id].push_back(std::move(done));
    }
    bool Complete(const std::string& id, EventStatus status) {
      Callback<EventStatus> done;
      {
        std::lock_guard lock(mu);
        auto it = pending.find(id);
        if (it == pending.end()) return false;
        done = std::move(it->second.front());
        it->second.pop_front();
        if (it->second.empty()) pending.erase(it);
      }
      std::move(done)(status);
      return true;
    }
    // Takes the delivery back when its message could not be queued.
    Callback<EventStatus> Take(const std::string& id) {
      std::lock_guard lock(mu);
      auto it = pending.find(id);
      if (it == pending.end()) return nullptr;
      Callback<EventStatus> done = std::move(it->second.back());
      it->second.pop_back();
      if (it->second.empty()) pending.erase(it);
      return done;
    }
    void FailPending() {
      std::map<std::string, std::deque<Callback<EventStatus>>> failed;
      {
        std::lock_guard lock(mu);
        failed.swap(pending);
      }
      for (auto& [id, dones] : failed) {
        for (auto& done : dones) {
          std::move(done)(MakeStatus(absl::StatusCode::kUnavailable,
                                     "the streaming subscriber went away before answering"));
        }
      }
    }
  };

  ::grpc::Status Subscribe(const v1::SubscribeTopicEventsRequestInitialAlpha1& initial) {
    if (pubsub_ == nullptr) return ToGrpcStatus(NotConfigured());
    SubscriptionSpec spec;
    spec.pubsub_name = initial.pubsub_name();
    spec.topic = initial.topic();
    spec.metadata = ToStdMap(initial.metadata());
    if (initial.has_dead_letter_topic()) spec.dead_letter_topic = initial.dead_letter_topic();
    // daprd registers a streaming subscription with the default route "/".
    spec.rules.push_back({"", "/"});
    spec.source = "SubscribeTopicEventsAlpha1";
    std::weak_ptr<State> weak = state_;
    auto id = pubsub_->AddStreamingSubscription(
        std::move(spec), [weak](TopicEvent event, Callback<EventStatus> done) {
          std::shared_ptr<State> state = weak.lock();
          if (state == nullptr) {
            return std::move(done)(
                MakeStatus(absl::StatusCode::kUnavailable, "the streaming subscriber is gone"));
          }
          Response message;
          // The same mapping as the gRPC app channel's OnTopicEvent.
          ToTopicEventRequest(event, message.mutable_event_message());
          std::string id = message.event_message().id();
          state->Add(id, std::move(done));
          if (!state->Write(std::move(message))) {
            if (Callback<EventStatus> back = state->Take(id)) {
              std::move(back)(MakeStatus(absl::StatusCode::kUnavailable,
                                         "the streaming subscription is closing"));
            }
          }
        });
    if (!id.ok()) return ToGrpcStatus(id.status());
    subscription_id_ = *id;
    subscribed_ = true;
    if (api_logging_) {
      log::Info("gRPC streaming subscription to topic ", initial.topic(), " of pubsub ",
                initial.pubsub_name());
    }
    Response first;
    first.mutable_initial_response();
    state_->Write(std::move(first), /*front=*/true);
    state_->Release();
    return ::grpc::Status::OK;
  }

  void End(::grpc::Status status) { state_->RequestFinish(std::move(status)); }

  PubSubBlock* pubsub_;
  bool api_logging_;
  std::shared_ptr<State> state_;
  Request read_;
  bool subscribed_ = false;       // touched only by the read reactions, which are serial
  uint64_t subscription_id_ = 0;  // set before OnDone can run (a read is in flight)
};

}  // namespace

DaprService::Unary* DaprService::PublishEvent(Ctx* ctx, const v1::PublishEventRequest* req,
                                              Empty*) {
  Call* reactor;
  if (!Begin(ctx, "PublishEvent", &reactor)) return reactor;
  if (blocks_.pubsub == nullptr) {
    reactor->Finish(ToGrpcStatus(NotConfigured()));
    return reactor;
  }
  PublishEventRequest request;
  request.pubsub_name = req->pubsub_name();
  request.topic = req->topic();
  request.data = req->data();
  request.content_type = req->data_content_type();
  request.metadata = ToStdMap(req->metadata());
  request.traceparent = MetadataOf(*ctx, "traceparent");
  request.tracestate = MetadataOf(*ctx, "tracestate");
  blocks_.pubsub->Publish(std::move(request), [reactor](absl::Status status) {
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

// Entry failures are in the response with an OK status, as daprd answers partial failures (the
// response of a failed call would not reach the client).
DaprService::Unary* DaprService::BulkPublishEvent(Ctx* ctx, const v1::BulkPublishRequest* req,
                                                  v1::BulkPublishResponse* res) {
  Call* reactor;
  if (!Begin(ctx, "BulkPublishEvent", &reactor)) return reactor;
  if (blocks_.pubsub == nullptr) {
    reactor->Finish(ToGrpcStatus(NotConfigured()));
    return reactor;
  }
  blocks_.pubsub->BulkPublish(
      ToBulk(*ctx, *req), [reactor, res](absl::StatusOr<BulkPublishEventResult> result) {
        if (!result.ok()) return reactor->Finish(ToGrpcStatus(result.status()));
        for (BulkPublishEventResult::Failed& failed : result->failed) {
          v1::BulkPublishResponseFailedEntry* entry = res->add_failedentries();
          entry->set_entry_id(std::move(failed.entry_id));
          entry->set_error(std::move(failed.error));
        }
        reactor->Finish(::grpc::Status::OK);
      });
  return reactor;
}

DaprService::Unary* DaprService::BulkPublishEventAlpha1(Ctx* ctx, const v1::BulkPublishRequest* req,
                                                        v1::BulkPublishResponse* res) {
  return BulkPublishEvent(ctx, req, res);
}

::grpc::ServerBidiReactor<v1::SubscribeTopicEventsRequestAlpha1,
                          v1::SubscribeTopicEventsResponseAlpha1>*
DaprService::SubscribeTopicEventsAlpha1(Ctx* ctx) {
  using Reactor = ::grpc::ServerBidiReactor<Request, Response>;
  struct Refused final : Reactor {
    explicit Refused(::grpc::Status status) { Finish(std::move(status)); }
    void OnDone() override { delete this; }
  };
  if (::grpc::Status s = Authorize(*ctx); !s.ok()) return new Refused(std::move(s));
  if (draining_.load()) {
    return new Refused(::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "remorad is shutting down"));
  }
  if (api_logging_)
    log::Info("gRPC API Called: /dapr.proto.runtime.v1.Dapr/SubscribeTopicEventsAlpha1");
  return new SubscribeStream(blocks_.pubsub, api_logging_);
}

}  // namespace remora::runtime::grpc
