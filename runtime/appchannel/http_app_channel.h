#pragma once

// The sidecar → app channel over HTTP (contract §2.13), on the project's one HTTP client, to
// http://{--app-channel-address}:{--app-port}.
//
// ListSubscriptions: GET /dapr/subscribe with `dapr-app-id`. 200 + JSON array → the v1 (`route`)
// and v2 (`routes.rules` + `routes.default`) formats as SubscriptionSpecs; 404 → none. While the
// app is not reachable yet (connection refused, timeout) or answers 5xx, the call is retried with
// backoff (50 ms doubling to 1 s) until `subscribe_retry_for` has passed; then it fails with the
// last error. Any other status, or a body that is not a JSON array, fails at once.
//
// DeliverEvent: POST /<path> with the CloudEvent as `application/cloudevents+json`, headers
// `pubsubname`, every broker metadata key, `traceparent`/`tracestate` when the event carries
// them and `dapr-api-token` when APP_API_TOKEN is set. The answer:
//   2xx, empty or non-JSON body, or JSON without a string status → kSuccess
//   2xx {"status":"SUCCESS"|""} → kSuccess; "RETRY" → kRetry; "DROP" → kDrop; other → kRetry
//   404 → kDrop
//   any other status → an error (retriable), naming the status; transport failures likewise.
//
// Invoke: `<verb> /<method>?<query>` with the request's headers (hop-by-hop ones dropped),
// Content-Type, and `dapr-api-token` when APP_API_TOKEN is set, on the keep-alive pool. Every
// status the app answers is a response (status, headers minus hop-by-hop ones, body).
//
// CheckHealth: GET <health_check_path>; 2xx is healthy, anything else (or no answer within
// health_probe_timeout) is UNAVAILABLE.
//
// BulkDeliver (bulkSubscribe): POST /<path> with `application/json` and Dapr's bulk body
// {"id","type":"com.dapr.event.sent.bulk","topic","pubsubname","metadata":{},"entries":[{"entryId",
// "event","contentType","metadata"}]}, the same headers as DeliverEvent but the broker metadata
// (it is per entry, in the body). The answer:
//   2xx {"statuses":[{"entryId","status"}]} → per entry, statuses read as for one event ("" and
//       SUCCESS → kSuccess, DROP → kDrop, anything else → kRetry); entries not listed → kRetry
//   2xx with a body that is not such an object → an error (every entry retried)
//   404 → every entry kDrop; any other status → an error (every entry retried).
// One bulk request counts as one request for --app-max-concurrency.
//
// --app-max-concurrency: at most `max_concurrency` requests are in the app at once (<= 0: no
// limit); the rest wait in FIFO order inside the channel, without blocking any thread.
//
// Thread-safety: every method may be called from any thread; callbacks run on the io_context.
// Destroy the channel before its io_context; requests still in flight complete with CANCELLED.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "appchannel/app_channel.h"

namespace boost::asio {
class io_context;
}

namespace remora::runtime {

struct HttpAppChannelOptions {
  std::string host = "127.0.0.1";  // --app-channel-address
  uint16_t port = 0;               // --app-port
  std::string app_id;              // sent as dapr-app-id on GET /dapr/subscribe
  std::string app_api_token;       // APP_API_TOKEN; empty: no dapr-api-token header
  int max_concurrency = -1;        // --app-max-concurrency; <= 0: unlimited
  std::chrono::milliseconds subscribe_retry_for{30000};
  std::chrono::milliseconds subscribe_timeout{5000};
  // An app slower than this on one event counts as a failure (and the event is retried).
  std::chrono::milliseconds event_timeout{60000};
  // Service invocation: an app slower than this fails the call with DEADLINE_EXCEEDED.
  std::chrono::milliseconds invoke_timeout{60000};
  // App health probe (--app-health-check-path, --app-health-probe-timeout).
  std::string health_check_path = "/healthz";
  std::chrono::milliseconds health_probe_timeout{500};
};

// Parses the body of GET /dapr/subscribe. Items without pubsubname or topic are an error naming
// the item's index.
absl::StatusOr<std::vector<SubscriptionSpec>> ParseSubscribeResponse(const std::string& body);

// The app's answer to an event POST, mapped as described above.
absl::StatusOr<EventStatus> EventStatusFromResponse(int http_status, const std::string& body);

// The app's answer to a bulk POST for the entries `entry_ids`, mapped as described above.
absl::StatusOr<BulkEventStatuses> BulkStatusesFromResponse(
    int http_status, const std::string& body, const std::vector<std::string>& entry_ids);

class HttpAppChannel : public AppChannel {
 public:
  HttpAppChannel(boost::asio::io_context& io, HttpAppChannelOptions options);
  ~HttpAppChannel() override;

  void ListSubscriptions(Callback<std::vector<SubscriptionSpec>> done) override;
  void DeliverEvent(TopicEvent event, Callback<EventStatus> done) override;
  void BulkDeliver(BulkTopicEvent bulk, Callback<BulkEventStatuses> done) override;
  void Invoke(InvokeRequest request, Callback<InvokeResponse> done) override;
  void CheckHealth(DoneCallback done) override;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace remora::runtime
