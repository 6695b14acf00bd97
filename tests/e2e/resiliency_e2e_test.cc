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

}  // namespace
}  // namespace remora::testing
