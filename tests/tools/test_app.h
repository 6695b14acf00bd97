#pragma once

// A small HTTP subscriber app for pub/sub tests, in the test's own process: it serves
// GET /dapr/subscribe with a fixed answer and records every other request (the sidecar's event
// POSTs), answering each through a policy the test sets.
//
//   auto app = TestApp::Start({.subscribe_body = R"([{"pubsubname":"pubsub","topic":"t",
//                                                    "route":"/t"}])"});
//   app->SetPolicy([](const TestApp::Event& e) { return TestApp::Answer{.status = 200}; });
//   ... start remorad with --app-port app->port() ...
//   ASSERT_TRUE(app->WaitFor([](const auto& events) { return events.size() == 1; }));
//
// One thread runs the server; the policy runs on it (answers may be delayed without blocking it).
// Nothing sleeps for a fixed time: WaitFor polls against a deadline.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace remora::testing {

class TestApp {
 public:
  struct Options {
    int port = 0;  // 0: a free one
    int subscribe_status = 200;
    std::string subscribe_body = "[]";
    int subscribe_failures = 0;  // the first N GET /dapr/subscribe answer 503 (an app starting)
  };
  struct Event {
    std::string method;
    std::string path;
    // The query string, raw, without '?'.
    std::string query;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
    nlohmann::json json;  // the body parsed, or null when it is not JSON
    int attempt = 1;      // how many times this path has seen this CloudEvent id, this one included
  };
  struct Answer {
    int status = 200;
    std::string body{};
    std::chrono::milliseconds delay{0};  // answer after this long
  };
  using Policy = std::function<Answer(const Event&)>;

  static absl::StatusOr<std::unique_ptr<TestApp>> Start(Options options);
  ~TestApp();
  TestApp(const TestApp&) = delete;
  TestApp& operator=(const TestApp&) = delete;

  int port() const;
  // Default: 200 with an empty body (SUCCESS).
  void SetPolicy(Policy policy);
  // Every request but GET /dapr/subscribe, in arrival order.
  std::vector<Event> Events() const;
  std::vector<Event> EventsOn(const std::string& path) const;
  // Polls until `done(Events())` or the timeout; false on timeout.
  bool WaitFor(const std::function<bool(const std::vector<Event>&)>& done,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  int subscribe_calls() const;
  // The most requests the app was answering at the same time.
  int max_concurrent() const;

  struct Impl;

 private:
  TestApp() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace remora::testing
