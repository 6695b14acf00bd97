#pragma once

// The sidecar → app channel (contract §1.4, §2.13): how the runtime asks the app for its
// subscriptions, delivers events and (later) invokes methods. Two implementations: HTTP
// (runtime/appchannel/http_app_channel, on the one HTTP client) and gRPC AppCallback (inside the
// gRPC module, runtime/api/grpc). Building blocks only see this interface.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"
#include "remora/components/common/callback.h"
#include "remora/components/common/strings.h"

namespace remora::runtime {

// One subscription, whatever its source (contract §2.13, §4.2, metadata PubsubSubscription).
struct SubscriptionSpec {
  enum class Type { kDeclarative, kProgrammatic, kStreaming };
  struct Rule {
    std::string match;  // CEL subset (blocks/pubsub/routing.h); empty = always
    std::string path;
  };
  struct Bulk {
    bool enabled = false;
    int max_messages_count = 100;
    int max_await_duration_ms = 1000;
  };
  std::string pubsub_name;
  std::string topic;
  std::map<std::string, std::string> metadata;  // rawPayload, ...
  std::vector<Rule> rules;                      // in order; the default route comes last
  std::string dead_letter_topic;
  Bulk bulk;
  Type type = Type::kProgrammatic;
  std::vector<std::string> scopes;  // declarative only; empty = every app
  std::string source;               // where it came from, for errors ("subs.yaml (document 1)")
};

// One event for the app.
struct TopicEvent {
  nlohmann::json cloud_event;  // the CloudEvent (object)
  std::string pubsub_name;
  std::string topic;
  std::string path;                             // the matched route
  std::map<std::string, std::string> metadata;  // broker metadata: HTTP headers / gRPC metadata
};

enum class EventStatus { kSuccess, kRetry, kDrop };

// Several events of one subscription for one route, delivered in one call when the subscription
// has bulkSubscribe enabled (contract §2.13 "Bulk delivery").
struct BulkTopicEvent {
  struct Entry {
    std::string entry_id;      // unique within the batch; the app answers per entry id
    nlohmann::json event;      // the CloudEvent (object)
    std::string content_type;  // of `event`: application/cloudevents+json for CloudEvents
    std::map<std::string, std::string> metadata;  // the entry's broker metadata
  };
  std::string pubsub_name;
  std::string topic;
  std::string path;  // the route every entry matched
  std::vector<Entry> entries;
};

// The app's answer per entry id. An entry the map leaves out counts as kRetry.
using BulkEventStatuses = std::map<std::string, EventStatus>;

// One service-invocation call for the local app (contract §1.4 OnInvoke, §2.1). The same shape
// whether it came from the local HTTP/gRPC API or from another sidecar.
struct InvokeRequest {
  std::string method;         // without the leading '/', may contain '/'
  std::string verb = "POST";  // HTTP verb; a gRPC caller's NONE arrives as POST
  std::string query;          // raw query string without '?'
  std::string content_type;
  std::string data;
  // Headers (HTTP) / metadata (gRPC) to pass to the app, lower-case names, in order.
  std::vector<std::pair<std::string, std::string>> headers;
};

struct InvokeResponse {
  int http_status = 200;  // HTTP app: its status; gRPC app: 200 for OK, else from grpc_code
  int grpc_code = 0;      // gRPC app: its status code (0 = OK); HTTP app: 0
  std::string grpc_message;
  std::string content_type;
  std::string data;
  std::vector<std::pair<std::string, std::string>> headers;  // response headers / metadata
};

class AppChannel {
 public:
  virtual ~AppChannel() = default;

  // Programmatic subscriptions: GET /dapr/subscribe (404 = none) or ListTopicSubscriptions.
  virtual void ListSubscriptions(Callback<std::vector<SubscriptionSpec>> done) = 0;

  // Delivers one event. The app's answer as a status (HTTP: 2xx + body status, 404 → kDrop;
  // gRPC: TopicEventResponse, UNIMPLEMENTED → kDrop). A transport failure or another HTTP status is
  // an error: retriable.
  virtual void DeliverEvent(TopicEvent event, Callback<EventStatus> done) = 0;

  // Delivers a batch (bulkSubscribe). HTTP: one POST with Dapr's bulk body, the app answers
  // statuses per entryId (404 → every entry kDrop). gRPC: OnBulkTopicEvent. The callback's error
  // means "every entry failed" (retriable). The default delivers entry by entry through
  // DeliverEvent, concurrently, and answers once all have answered (an entry's error → kRetry):
  // for channels without a bulk call.
  virtual void BulkDeliver(BulkTopicEvent bulk, Callback<BulkEventStatuses> done);

  // Calls a method of the app. Any answer the app gives, error statuses included, is a response;
  // the callback's error is for a transport failure (app not listening, timeout): UNAVAILABLE or
  // DEADLINE_EXCEEDED with a message naming the app's address.
  virtual void Invoke(InvokeRequest request, Callback<InvokeResponse> done) = 0;

  // One app health probe (--enable-app-health-check): HTTP GET of the health path, 2xx = healthy;
  // gRPC AppCallbackHealthCheck.HealthCheck. OK when healthy.
  virtual void CheckHealth(DoneCallback done) = 0;
};

inline void AppChannel::BulkDeliver(BulkTopicEvent bulk, Callback<BulkEventStatuses> done) {
  struct Collect {
    std::mutex mu;
    BulkEventStatuses statuses;
    size_t left = 0;
    Callback<BulkEventStatuses> done;
  };
  if (bulk.entries.empty()) return std::move(done)(BulkEventStatuses());
  auto collect = std::make_shared<Collect>();
  collect->left = bulk.entries.size();
  collect->done = std::move(done);
  for (BulkTopicEvent::Entry& entry : bulk.entries) {
    TopicEvent event;
    event.cloud_event = std::move(entry.event);
    event.pubsub_name = bulk.pubsub_name;
    event.topic = bulk.topic;
    event.path = bulk.path;
    event.metadata = std::move(entry.metadata);
    DeliverEvent(std::move(event),
                 [collect, id = std::move(entry.entry_id)](absl::StatusOr<EventStatus> status) {
                   Callback<BulkEventStatuses> finished;
                   {
                     std::lock_guard lock(collect->mu);
                     collect->statuses[id] = status.ok() ? *status : EventStatus::kRetry;
                     if (--collect->left == 0) finished = std::move(collect->done);
                   }
                   if (finished) std::move(finished)(std::move(collect->statuses));
                 });
  }
}

}  // namespace remora::runtime
