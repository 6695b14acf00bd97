#pragma once

// The sidecar → app channel (contract §1.4, §2.13): how the runtime asks the app for its
// subscriptions, delivers events and (later) invokes methods. Two implementations: HTTP
// (runtime/appchannel/http_app_channel, on the one HTTP client) and gRPC AppCallback (inside the
// gRPC module, runtime/api/grpc). Building blocks only see this interface.

#include <map>
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

  // Calls a method of the app. Any answer the app gives, error statuses included, is a response;
  // the callback's error is for a transport failure (app not listening, timeout): UNAVAILABLE or
  // DEADLINE_EXCEEDED with a message naming the app's address.
  // The default is for channels that only deliver events (test fakes).
  virtual void Invoke(InvokeRequest request, Callback<InvokeResponse> done) {
    (void)request;
    std::move(done)(MakeStatus(absl::StatusCode::kUnimplemented,
                               "this app channel does not support service invocation"));
  }

  // One app health probe (--enable-app-health-check): HTTP GET of the health path, 2xx = healthy;
  // gRPC AppCallbackHealthCheck.HealthCheck. OK when healthy.
  virtual void CheckHealth(DoneCallback done) { std::move(done)(absl::OkStatus()); }
};

}  // namespace remora::runtime
