#pragma once

// A small gRPC subscriber app for pub/sub tests, in the test's own process: it serves Dapr's
// AppCallback (ListTopicSubscriptions with a fixed answer, OnTopicEvent, OnBulkTopicEvent whose
// entries are recorded and answered one by one like events, OnInvoke) and
// AppCallbackHealthCheck on a free loopback port, records every event with the metadata it came
// with, and answers each through a policy the test sets.
//
//   v1::ListTopicSubscriptionsResponse subs;  // ... fill ...
//   auto app = GrpcTestApp::Start({.subscriptions = subs});
//   app->SetPolicy([](const GrpcTestApp::Event& e) { return GrpcTestApp::Answer{}; });
//   ... start remorad with --app-protocol grpc --app-port app->port() ...
//   ASSERT_TRUE(app->WaitFor([](const auto& events) { return events.size() == 1; }));
//
// gRPC's thread pool runs the handlers (and the policy). Nothing sleeps for a fixed time: WaitFor
// polls against a deadline.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/support/status.h>

#include "absl/status/statusor.h"
#include "dapr/proto/common/v1/common.pb.h"
#include "dapr/proto/runtime/v1/appcallback.pb.h"

namespace remora::testing {

class GrpcTestApp {
 public:
  using TopicEventRequest = ::dapr::proto::runtime::v1::TopicEventRequest;
  using EventStatus = ::dapr::proto::runtime::v1::TopicEventResponse::TopicEventResponseStatus;

  struct Options {
    ::dapr::proto::runtime::v1::ListTopicSubscriptionsResponse subscriptions{};
    bool subscriptions_unimplemented = false;  // ListTopicSubscriptions answers UNIMPLEMENTED
  };
  struct Event {
    TopicEventRequest request;
    std::map<std::string, std::string> metadata;  // the call's client metadata
    int attempt = 1;    // how many times this path has seen this event id, this one included
    bool bulk = false;  // an entry of an OnBulkTopicEvent call (request rebuilt from the entry)
  };
  struct Answer {
    EventStatus status = ::dapr::proto::runtime::v1::TopicEventResponse::SUCCESS;
    ::grpc::Status error = ::grpc::Status::OK;  // not OK: the call fails with it
    std::chrono::milliseconds delay{0};         // answer after this long
  };
  using Policy = std::function<Answer(const Event&)>;

  struct Invocation {
    ::dapr::proto::common::v1::InvokeRequest request;
    std::map<std::string, std::string> metadata;
  };

  static absl::StatusOr<std::unique_ptr<GrpcTestApp>> Start(Options options);
  ~GrpcTestApp();
  GrpcTestApp(const GrpcTestApp&) = delete;
  GrpcTestApp& operator=(const GrpcTestApp&) = delete;

  int port() const;
  // Default: SUCCESS.
  void SetPolicy(Policy policy);
  // Every OnTopicEvent call and bulk entry, in arrival order.
  std::vector<Event> Events() const;
  std::vector<Event> EventsOn(const std::string& path) const;
  // Polls until `done(Events())` or the timeout; false on timeout.
  bool WaitFor(const std::function<bool(const std::vector<Event>&)>& done,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  int list_calls() const;
  // The most OnTopicEvent calls the app was answering at the same time.
  int max_concurrent() const;
  // OnInvoke answers "<method>:<data>" as text/plain with response metadata `x-echo: <method>`;
  // method "fail" answers NOT_FOUND "no such method".
  std::vector<Invocation> Invocations() const;
  int health_checks() const;

  struct Impl;

 private:
  GrpcTestApp() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace remora::testing
