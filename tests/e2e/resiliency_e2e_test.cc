// Resiliency and tracing end to end against the real remorad and an HTTP app
// (tests/tools/test_app): W3C trace context on publish (the CloudEvent continues the caller's
// trace or starts a new one) and on service invocation (the app gets a child span, the caller gets
// the traceparent back); Resiliency app targets on invocation: retries counted at the app, a
// timeout, and a circuit breaker that opens, fails fast and closes again.

#include <atomic>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/tools/test_app.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr char kTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";

constexpr char kPubsub[] = R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: pubsub }
spec: { type: pubsub.in-memory, version: v1 }
)";

bool IsTraceparent(const std::string& s) {
  if (s.size() != 55 || s.compare(0, 3, "00-") != 0 || s[35] != '-' || s[52] != '-') return false;
  return s.find_first_not_of("0123456789abcdef-") == std::string::npos;
}

std::string TraceIdOf(const std::string& traceparent) { return traceparent.substr(3, 32); }
std::string SpanIdOf(const std::string& traceparent) { return traceparent.substr(36, 16); }

class ResiliencyE2eTest : public ::testing::Test {
 protected:
  // Starts the app and remorad (app id "self") with `resources` (YAML documents).
  void Start(const std::string& resources, const std::string& subscribe_body = "[]") {
    auto app = TestApp::Start({.subscribe_body = subscribe_body});
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = std::move(*app);
    auto rd = StartRemorad({"--app-id", "self", "--app-port", StrCat(app_->port()),
                            "--resources-path", WriteTempFile("resources.yaml", resources)});
    ASSERT_TRUE(rd.ok()) << rd.status();
    rd_ = std::move(*rd);
  }

  http::Response Call(const std::string& method, const std::string& target,
                      const std::string& body = "",
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto r = HttpCall("127.0.0.1", rd_.http_port, method, target, body, headers,
                      std::chrono::seconds(10));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : http::Response{};
  }

  static std::string HeaderOf(const http::Response& r, std::string_view name) {
    for (const auto& [k, v] : r.headers) {
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(),
                     [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
        return v;
      }
    }
    return "";
  }

  int AppCalls(const std::string& path) const { return app_->EventsOn(path).size(); }

  std::unique_ptr<TestApp> app_;
  Remorad rd_;
};

TEST_F(ResiliencyE2eTest, PublishedEventsCarryTheCallersTraceOrANewOne) {
  Start(kPubsub, R"([{"pubsubname":"pubsub","topic":"traced","route":"/traced"}])");
  auto r = Call("POST", "/v1.0/publish/pubsub/traced", R"({"n":1})",
                {{"Content-Type", "application/json"},
                 {"traceparent", kTraceparent},
                 {"tracestate", "congo=t61rcWkgMzE"}});
  ASSERT_EQ(r.status, 204) << r.body;
  r = Call("POST", "/v1.0/publish/pubsub/traced", R"({"n":2})",
           {{"Content-Type", "application/json"}});
  ASSERT_EQ(r.status, 204) << r.body;
  ASSERT_TRUE(app_->WaitFor([](const auto& events) { return events.size() >= 2; }));

  for (const TestApp::Event& e : app_->EventsOn("/traced")) {
    std::string traceparent = e.json.value("traceparent", "");
    ASSERT_TRUE(IsTraceparent(traceparent)) << e.body;
    EXPECT_EQ(e.json.value("traceid", ""), traceparent);
    // The app gets the event's trace context as headers too.
    EXPECT_EQ(e.headers.count("traceparent") ? e.headers.at("traceparent") : "", traceparent);
    if (e.json["data"]["n"] == 1) {
      // The publish span continues the caller's trace under a span id of its own.
      EXPECT_EQ(TraceIdOf(traceparent), kTraceId);
      EXPECT_NE(SpanIdOf(traceparent), "00f067aa0ba902b7");
      EXPECT_EQ(e.json.value("tracestate", ""), "congo=t61rcWkgMzE");
    } else {
      EXPECT_NE(TraceIdOf(traceparent), kTraceId);
    }
  }
}

// A Resiliency file for app "self" with `policies` (YAML lines under spec.policies) and the app
// target `target` (a flow mapping).
std::string SelfResiliency(const std::string& policies, const std::string& target) {
  return StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: res }
spec:
  policies:
)",
                policies, R"(
  targets:
    apps:
      self: )",
                target, "\n");
}

TEST_F(ResiliencyE2eTest, InvocationContinuesTheTraceAndReturnsTraceparent) {
  Start(kPubsub);
  auto r = Call("POST", "/v1.0/invoke/self/method/hello", "hi",
                {{"traceparent", kTraceparent}, {"tracestate", "k=v"}});
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(AppCalls("/hello"), 1);
  TestApp::Event e = app_->EventsOn("/hello").at(0);
  ASSERT_TRUE(e.headers.count("traceparent"));
  std::string to_app = e.headers.at("traceparent");
  EXPECT_TRUE(IsTraceparent(to_app)) << to_app;
  EXPECT_EQ(TraceIdOf(to_app), kTraceId);
  EXPECT_NE(SpanIdOf(to_app), "00f067aa0ba902b7");
  EXPECT_EQ(e.headers.count("tracestate") ? e.headers.at("tracestate") : "", "k=v");
  std::string back = HeaderOf(r, "traceparent");
  EXPECT_TRUE(IsTraceparent(back)) << back;
  EXPECT_EQ(TraceIdOf(back), kTraceId);

  // Without a traceparent the call starts a trace, and the caller learns it.
  r = Call("GET", "/v1.0/invoke/self/method/hello");
  ASSERT_EQ(r.status, 200) << r.body;
  back = HeaderOf(r, "traceparent");
  ASSERT_TRUE(IsTraceparent(back)) << back;
  EXPECT_NE(TraceIdOf(back), kTraceId);
  ASSERT_EQ(AppCalls("/hello"), 2);
  e = app_->EventsOn("/hello").at(1);
  EXPECT_EQ(TraceIdOf(e.headers["traceparent"]), TraceIdOf(back));
}

TEST_F(ResiliencyE2eTest, RetriesAreCountedAtTheApp) {
  Start(
      SelfResiliency("    retries:\n      three: { policy: constant, duration: 20ms, "
                     "maxRetries: 3 }",
                     "{ retry: three }"));
  std::atomic<int> flaky_calls = 0;
  app_->SetPolicy([&](const TestApp::Event& e) {
    if (e.path == "/flaky" && ++flaky_calls <= 2) return TestApp::Answer{.status = 503};
    if (e.path == "/broken") return TestApp::Answer{.status = 500, .body = "broken"};
    return TestApp::Answer{.status = 200, .body = "fine"};
  });
  // Two failures, then success: the caller sees the success, the app saw three calls.
  auto r = Call("POST", "/v1.0/invoke/self/method/flaky", "x");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "fine");
  EXPECT_EQ(AppCalls("/flaky"), 3);
  // Always failing: the call and 3 retries, then the app's own last answer.
  r = Call("POST", "/v1.0/invoke/self/method/broken", "x");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, "broken");
  EXPECT_EQ(AppCalls("/broken"), 4);
  // A success is not retried.
  r = Call("GET", "/v1.0/invoke/self/method/ok");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(AppCalls("/ok"), 1);
}

TEST_F(ResiliencyE2eTest, TimeoutFailsTheCallWithDirectInvokeError) {
  Start(
      SelfResiliency("    timeouts: { quick: 150ms }\n    retries:\n      none: { maxRetries: 0 }",
                     "{ timeout: quick, retry: none }"));
  app_->SetPolicy([](const TestApp::Event& e) {
    if (e.path == "/slow") return TestApp::Answer{.status = 200, .delay = milliseconds(1500)};
    return TestApp::Answer{.status = 200};
  });
  auto start = std::chrono::steady_clock::now();
  auto r = Call("POST", "/v1.0/invoke/self/method/slow", "x");
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1200));
  EXPECT_EQ(r.status, 500) << r.body;
  json body = json::parse(r.body, nullptr, false);
  EXPECT_EQ(body.value("errorCode", ""), "ERR_DIRECT_INVOKE") << r.body;
  EXPECT_THAT(body.value("message", ""), HasSubstr("failed to invoke, id: self"));
  EXPECT_THAT(body.value("message", ""), HasSubstr("timeout"));
  EXPECT_EQ(Call("GET", "/v1.0/invoke/self/method/fast").status, 200);
}

TEST_F(ResiliencyE2eTest, CircuitBreakerOpensFailsFastAndCloses) {
  Start(
      SelfResiliency("    retries:\n      none: { maxRetries: 0 }\n    circuitBreakers:\n"
                     "      cb: { maxRequests: 1, timeout: 500ms, trip: consecutiveFailures >= 3 }",
                     "{ retry: none, circuitBreaker: cb }"));
  std::atomic<bool> healthy = false;
  app_->SetPolicy(
      [&](const TestApp::Event&) { return TestApp::Answer{.status = healthy ? 200 : 500}; });
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Call("POST", "/v1.0/invoke/self/method/m", "x").status, 500);
  }
  EXPECT_EQ(AppCalls("/m"), 3);
  // Open: the call fails fast without reaching the app.
  healthy = true;
  auto r = Call("POST", "/v1.0/invoke/self/method/m", "x");
  EXPECT_EQ(r.status, 500);
  EXPECT_THAT(r.body, HasSubstr("circuit breaker is open"));
  EXPECT_THAT(r.body, HasSubstr("ERR_DIRECT_INVOKE"));
  EXPECT_EQ(AppCalls("/m"), 3);
  // After the breaker's timeout one call goes through; its success closes the breaker.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    status = Call("POST", "/v1.0/invoke/self/method/m", "x").status;
    if (status == 200) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(status, 200);
  EXPECT_EQ(AppCalls("/m"), 4);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Call("POST", "/v1.0/invoke/self/method/m", "x").status, 200);
  }
  EXPECT_EQ(AppCalls("/m"), 7);
}

}  // namespace
}  // namespace remora::testing
