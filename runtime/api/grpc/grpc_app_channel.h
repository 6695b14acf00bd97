#pragma once

// The sidecar → app channel over gRPC (--app-protocol grpc; contract §1.4): a client of the app's
// `dapr.proto.runtime.v1.AppCallback` and `AppCallbackHealthCheck` services at host:port, on
// gRPC's callback API (no thread of its own). Lives inside the gRPC module; the runtime gets it
// through Api::CreateAppChannel.
//
// ListSubscriptions: ListTopicSubscriptions, waiting for the app to listen for up to
// `subscribe_wait` (gRPC's wait-for-ready, reconnecting every ≤ 1 s). Each TopicSubscription
// becomes a SubscriptionSpec: routes.rules in order, then routes.default as the catch-all rule;
// deadLetterTopic, metadata and bulkSubscribe copied. UNIMPLEMENTED → no subscriptions.
//
// DeliverEvent: OnTopicEvent with the CloudEvent mapped to TopicEventRequest (data_base64 decoded,
// text data as its bytes, JSON data re-serialized; every other attribute in `extensions`), the
// broker metadata as gRPC metadata (keys that are not valid metadata names are left out), plus
// `traceparent`/`tracestate` from the event and `dapr-api-token`. The answer: SUCCESS (also
// unset) → kSuccess, RETRY → kRetry, DROP → kDrop, another value → kRetry; UNIMPLEMENTED → kDrop;
// any other error → the error (retriable).
//
// BulkDeliver (bulkSubscribe): one OnBulkTopicEvent (OnBulkTopicEventAlpha1 when the app answers
// UNIMPLEMENTED, entry by entry through OnTopicEvent when it answers that too) with every entry
// as a TopicEventCERequest; the answer's statuses per entry id (an entry left out is retried).
//
// Invoke: OnInvoke. The request's headers go as gRPC metadata (names gRPC reserves left out); any
// status the app answers is a response (grpc_code, grpc_message, http_status per Dapr's gRPC→HTTP
// table, headers = the app's initial and trailing metadata), except UNAVAILABLE and
// DEADLINE_EXCEEDED, which are the callback's error naming the app's address (app not
// listening, timeout).
//
// CheckHealth: AppCallbackHealthCheck.HealthCheck within `health_timeout`; OK when it answers OK.
//
// --app-max-concurrency: at most `max_concurrency` OnTopicEvent/OnInvoke calls are in the app at
// once; the rest wait in FIFO order inside the channel, without blocking any thread.
//
// Thread-safety: every method may be called from any thread; callbacks run on gRPC's threads.
// The destructor cancels the calls in flight, fails the queued ones with CANCELLED and waits until
// every callback has run: do not destroy the channel from one of its callbacks.

#include <memory>

#include "api/grpc/api.h"
#include "appchannel/app_channel.h"

namespace dapr::proto::runtime::v1 {
class TopicEventRequest;
}

namespace remora::runtime::grpc {

// The event as a TopicEventRequest (see DeliverEvent above): what OnTopicEvent and the
// SubscribeTopicEventsAlpha1 stream send.
void ToTopicEventRequest(const TopicEvent& event,
                         ::dapr::proto::runtime::v1::TopicEventRequest* out);

// A TopicEventResponseStatus (its wire value), as the app or a streaming subscriber answered it:
// SUCCESS and DROP as such, RETRY and any value this build does not know as kRetry (as daprd).
EventStatus EventStatusOf(int topic_event_response_status);

class GrpcAppChannel final : public AppChannel {
 public:
  explicit GrpcAppChannel(AppChannelConfig config);
  ~GrpcAppChannel() override;
  GrpcAppChannel(const GrpcAppChannel&) = delete;
  GrpcAppChannel& operator=(const GrpcAppChannel&) = delete;

  void ListSubscriptions(Callback<std::vector<SubscriptionSpec>> done) override;
  void DeliverEvent(TopicEvent event, Callback<EventStatus> done) override;
  void BulkDeliver(BulkTopicEvent bulk, Callback<BulkEventStatuses> done) override;
  void Invoke(InvokeRequest request, Callback<InvokeResponse> done) override;
  void CheckHealth(DoneCallback done) override;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Dapr's gRPC→HTTP status mapping (contract §1.5): OK 200, INVALID_ARGUMENT 400, ... else 500.
int HttpStatusFromGrpcCode(int grpc_code);

}  // namespace remora::runtime::grpc
