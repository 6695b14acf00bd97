#pragma once

// remora::App: the app side of Dapr for C++ functions. It serves Dapr's AppCallback gRPC services
// (AppCallback, AppCallbackHealthCheck, AppCallbackAlpha) so that a sidecar started with
// `--app-protocol grpc --app-port <port>` delivers pub/sub events and service invocations to
// plain C++ handlers.
//
// Example:
//
//   remora::App app;  // port: $APP_PORT
//   app.Subscribe({.pubsub = "pubsub", .topic = "orders"},
//                 [](const remora::TopicEvent& event) {
//                   auto order = event.Json();
//                   if (!order.ok()) return remora::TopicResult::kDrop;
//                   return Handle(*order) ? remora::TopicResult::kSuccess
//                                         : remora::TopicResult::kRetry;
//                 });
//   app.OnInvoke("echo", [](const remora::InvocationRequest& in)
//                            -> absl::StatusOr<remora::InvocationResponse> {
//     return remora::InvocationResponse{.data = in.data, .content_type = in.content_type};
//   });
//   absl::Status s = app.Run();  // until SIGINT/SIGTERM or app.Stop()
//
// What the sidecar sees:
//   ListTopicSubscriptions  one TopicSubscription per (pubsub, topic); each Subscribe call is a
//                           route: the one without `match` is the default route, those with a
//                           `match` (a CEL expression) become routing rules in registration order.
//   OnTopicEvent            the handler of the route the sidecar matched (TopicEventRequest.path);
//                           kSuccess acks, kRetry has it redelivered, kDrop drops it (to the
//                           dead-letter topic when one is set). An event for a route nobody
//                           registered is answered UNIMPLEMENTED, which Dapr treats as a drop.
//   OnBulkTopicEvent(+Alpha1)  calls the route's handler once per entry, answers per entry.
//   OnInvoke                the handler registered for the method; an unknown method is
//                           UNIMPLEMENTED; an error Status from a handler goes back as the gRPC
//                           status (code and message).
//   HealthCheck             OK while serving (or the health handler's status, see OnHealthCheck).
//   ListInputBindings       none; OnBindingEvent and OnJobEvent: UNIMPLEMENTED.
//
// Thread-safety and lifetime: register handlers (Subscribe, OnInvoke, OnHealthCheck) before
// Start()/Run(); registering later is allowed and thread-safe, but a sidecar asks for the
// subscriptions only once, at its own start-up. Handlers run on the gRPC server's threads, several
// at once (different events and invocations concurrently): they must be thread-safe. Stop() and
// the destructor wait for running handlers to return; a handler must not call Stop() itself (hand
// that to another thread). An App serves once: Start()/Run() after Stop() fail.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "remora/client.h"  // Metadata

namespace remora {

// The app's verdict on one event (Dapr's TopicEventResponseStatus).
enum class TopicResult { kSuccess, kRetry, kDrop };

// One pub/sub event as the sidecar delivers it (a CloudEvent mapped onto fields).
struct TopicEvent {
  std::string id{};
  std::string source{};
  std::string type{};
  std::string spec_version{};
  std::string data_content_type{};
  // The payload: base64 data decoded, text as its bytes, JSON as JSON text. With rawPayload the
  // bytes the publisher sent.
  std::string data{};
  std::string topic{};
  std::string pubsub{};
  std::string path{};           // the route the sidecar matched
  nlohmann::json extensions{};  // every other CloudEvent attribute (an object; may be null)
  Metadata metadata{};          // the message's metadata (gRPC metadata of the delivery)

  // data parsed as JSON; INVALID_ARGUMENT when it is not JSON.
  absl::StatusOr<nlohmann::json> Json() const;
};

using TopicHandler = std::function<TopicResult(const TopicEvent& event)>;

struct BulkSubscribeOptions {
  bool enabled = false;
  int max_messages_count = 0;     // 0: the sidecar's default (100)
  int max_await_duration_ms = 0;  // 0: the sidecar's default (1000)
};

// One route of a subscription.
struct Subscription {
  std::string pubsub{};
  std::string topic{};
  // The path the sidecar sends matched events to. "" → "/<pubsub>/<topic>" for the default route,
  // "/<pubsub>/<topic>/<n>" for the n-th rule. Only needs setting to share it with other SDKs.
  std::string route{};
  // A CEL expression over the event (e.g. `event.type == "order.created"`); "" = default route.
  std::string match{};
  std::string dead_letter_topic{};  // per (pubsub, topic): the first non-empty one counts
  Metadata metadata{};              // per (pubsub, topic), e.g. rawPayload=true; merged
  BulkSubscribeOptions bulk{};      // per (pubsub, topic): the first enabled one counts
};

// One service invocation delivered to the app.
struct InvocationRequest {
  std::string method{};
  std::string verb{};  // the caller's HTTP verb ("GET", "POST", ...); "" when it came over gRPC
  std::string data{};
  std::string content_type{};
  std::string query{};  // "a=1&b=2"
  Metadata metadata{};  // the caller's headers / gRPC metadata as the sidecar forwarded them

  absl::StatusOr<nlohmann::json> Json() const;
};

struct InvocationResponse {
  std::string data{};
  std::string content_type{};  // "" → the sidecar's default
};

using InvokeHandler =
    std::function<absl::StatusOr<InvocationResponse>(const InvocationRequest& request)>;

struct AppOptions {
  // The port to serve on. nullopt: $APP_PORT, and 50051 when it is unset; 0: a free port chosen by
  // the system (read it with App::port() after Start()).
  std::optional<int> port{};
  // The address to bind. The sidecar calls the app on 127.0.0.1 unless told otherwise.
  std::string host = "127.0.0.1";
  // When non-empty, every call must carry gRPC metadata `dapr-api-token: <token>` (the sidecar
  // sends $APP_API_TOKEN); others are answered UNAUTHENTICATED. nullopt: $APP_API_TOKEN.
  std::optional<std::string> api_token{};
};

class App {
 public:
  explicit App(AppOptions options = {});
  ~App();  // Stop()

  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Registers a route. A second default route (or the same route path twice) for one
  // (pubsub, topic) makes Start() fail with INVALID_ARGUMENT; so do an empty pubsub or topic.
  void Subscribe(Subscription subscription, TopicHandler handler);
  // Registers the handler of `method` (exact match, no leading "/"). Registering a method twice
  // makes Start() fail with INVALID_ARGUMENT.
  void OnInvoke(std::string method, InvokeHandler handler);
  // What HealthCheck answers; default OK. A non-OK status is returned as the gRPC status.
  void OnHealthCheck(std::function<absl::Status()> handler);

  // Starts serving and returns: the sidecar can call the app once this returned OK.
  // FAILED_PRECONDITION when already started or stopped; UNAVAILABLE when the port cannot be
  // bound; INVALID_ARGUMENT for bad registrations or $APP_PORT.
  absl::Status Start();
  // Start(), then blocks until Stop() (from another thread) or SIGINT/SIGTERM arrive. While it
  // runs, those signals are blocked in the calling thread and the server's threads and taken by
  // Run itself; the signal mask is restored before it returns.
  absl::Status Run();
  // Stops serving: in-flight calls finish (their handlers return), new ones are refused. Safe to
  // call more than once and from any thread but a handler's.
  void Stop();

  // The bound port (after Start() returned OK), 0 before.
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace remora
