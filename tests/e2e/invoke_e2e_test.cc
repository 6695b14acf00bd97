// Service invocation end to end over the real binary: two sidecars and two HTTP apps calling each
// other by app id through the shared-directory name resolver (contract §2.1, §1.5 InvokeService):
// every verb, path, query and headers through; the app's status and body back; Dapr's errors for
// a missing app id, an unknown app id, a callee whose app is down, and a callee that has shut down.

#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/tools/test_app.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

namespace v1 = ::dapr::proto::runtime::v1;
using nlohmann::json;
using ::testing::HasSubstr;

// An app that echoes what it received as JSON, answering the status asked for by ?status=N.
TestApp::Answer Echo(const TestApp::Event& e) {
  json out = {{"method", e.method}, {"path", e.path}, {"query", e.query}, {"body", e.body}};
  for (const char* h :
       {"x-custom", "content-type", "dapr-caller-app-id", "dapr-callee-app-id", "dapr-api-token"}) {
    auto it = e.headers.find(h);
    if (it != e.headers.end()) out["headers"][h] = it->second;
  }
  int status = 200;
  if (auto pos = e.query.find("status="); pos != std::string::npos) {
    status = std::atoi(e.query.c_str() + pos + 7);
  }
  if (e.path == "/missing") status = 404;
  return {status, out.dump()};
}

class InvokeE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = WriteTempFile("placeholder", "");
    config_ = WriteTempFile("config.yaml", StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: { name: invoke }
spec:
  nameResolution:
    component: directory
    configuration:
      path: )",
                                                  registry_, R"(/apps
      heartbeatInterval: 200ms
)"));
    for (auto* app : {&app_a_, &app_b_}) {
      auto started = TestApp::Start({});
      ASSERT_TRUE(started.ok()) << started.status();
      *app = *std::move(started);
      (*app)->SetPolicy(Echo);
    }
    auto a = Sidecar("a", app_a_->port(), {{"APP_API_TOKEN", "app-token"}});
    ASSERT_TRUE(a.ok()) << a.status();
    a_ = *std::move(a);
    auto b = Sidecar("b", app_b_->port());
    ASSERT_TRUE(b.ok()) << b.status();
    b_ = *std::move(b);
  }

  absl::StatusOr<Remorad> Sidecar(const std::string& app_id, int app_port,
                                  std::map<std::string, std::string> env = {}) {
    return StartRemorad({"--app-id", app_id, "--app-port", std::to_string(app_port), "--config",
                         config_ + "/config.yaml"},
                        env);
  }

  absl::StatusOr<http::Response> Call(
      const Remorad& sidecar, const std::string& method, const std::string& target,
      const std::string& body = "", std::vector<std::pair<std::string, std::string>> headers = {}) {
    return HttpCall("127.0.0.1", sidecar.http_port, method, target, body, headers);
  }

  std::string registry_;
  std::string config_;
  std::unique_ptr<TestApp> app_a_;
  std::unique_ptr<TestApp> app_b_;
  Remorad a_;
  Remorad b_;
};

TEST_F(InvokeE2E, OwnAppThroughItsSidecar) {
  auto r = Call(a_, "POST", "/v1.0/invoke/a/method/orders/new?x=1&y=two", R"({"n":1})",
                {{"Content-Type", "application/json"}, {"X-Custom", "v1"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200) << r->body;
  json got = json::parse(r->body);
  EXPECT_EQ(got["method"], "POST");
  EXPECT_EQ(got["path"], "/orders/new");
  EXPECT_EQ(got["query"], "x=1&y=two");
  EXPECT_EQ(got["body"], R"({"n":1})");
  EXPECT_EQ(got["headers"]["x-custom"], "v1");
  EXPECT_EQ(got["headers"]["content-type"], "application/json");
  EXPECT_EQ(got["headers"]["dapr-caller-app-id"], "a");
  EXPECT_EQ(got["headers"]["dapr-callee-app-id"], "a");
  EXPECT_EQ(got["headers"]["dapr-api-token"], "app-token");  // APP_API_TOKEN
}

TEST_F(InvokeE2E, OtherAppEveryVerbThroughTwoSidecars) {
  for (const char* verb : {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    SCOPED_TRACE(verb);
    auto r = Call(a_, verb, "/v1.0/invoke/b/method/items/42?status=201&q=a%20b", "payload",
                  {{"X-Custom", "from-a"}, {"Content-Type", "text/plain"}});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 201) << r->body;
    json got = json::parse(r->body);
    EXPECT_EQ(got["method"], verb);
    EXPECT_EQ(got["path"], "/items/42");
    EXPECT_EQ(got["query"], "status=201&q=a%20b");
    EXPECT_EQ(got["body"], "payload");
    EXPECT_EQ(got["headers"]["x-custom"], "from-a");
    EXPECT_EQ(got["headers"]["content-type"], "text/plain");
    EXPECT_EQ(got["headers"]["dapr-caller-app-id"], "a");
    EXPECT_EQ(got["headers"]["dapr-callee-app-id"], "b");
    // b's sidecar has no APP_API_TOKEN: a's token must not leak to b's app.
    EXPECT_FALSE(got["headers"].contains("dapr-api-token"));
  }
  // And back: b calls a.
  auto r = Call(b_, "GET", "/v1.0/invoke/a/method/ping");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["headers"]["dapr-caller-app-id"], "b");
}

TEST_F(InvokeE2E, AppIdHeaderOnAnyPath) {
  auto r = Call(a_, "PUT", "/some/path/here?k=v", "x", {{"dapr-app-id", "b"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200) << r->body;
  json got = json::parse(r->body);
  EXPECT_EQ(got["method"], "PUT");
  EXPECT_EQ(got["path"], "/some/path/here");
  EXPECT_EQ(got["query"], "k=v");
  EXPECT_EQ(got["headers"]["dapr-callee-app-id"], "b");
}

TEST_F(InvokeE2E, AppStatusesPassThrough) {
  auto r = Call(a_, "GET", "/v1.0/invoke/b/method/missing");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["path"], "/missing");  // the app's body, not an error body
  r = Call(a_, "POST", "/v1.0/invoke/b/method/fail?status=503");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 503);
}

TEST_F(InvokeE2E, Errors) {
  auto r = Call(a_, "GET", "/not/a/route");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["errorCode"], "ERR_DIRECT_INVOKE");
  EXPECT_THAT(r->body, HasSubstr("failed getting app id either from the URL path or the header"));

  r = Call(a_, "GET", "/v1.0/invoke/nope/method/x");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 500);
  json err = json::parse(r->body);
  EXPECT_EQ(err["errorCode"], "ERR_DIRECT_INVOKE");
  EXPECT_THAT(err["message"].get<std::string>(), HasSubstr("failed to invoke, id: nope, err: "));

  // c's sidecar runs, its app does not.
  auto c = Sidecar("c", FreePort());
  ASSERT_TRUE(c.ok()) << c.status();
  r = Call(a_, "POST", "/v1.0/invoke/c/method/x", "body");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 500) << r->body;
  err = json::parse(r->body);
  EXPECT_EQ(err["errorCode"], "ERR_DIRECT_INVOKE");
  EXPECT_THAT(err["message"].get<std::string>(), HasSubstr("failed to invoke, id: c, err: "));

  // b shuts down gracefully: it withdraws its record, and a's calls fail at once.
  b_.process->Signal(SIGTERM);
  ASSERT_TRUE(b_.process->Wait(std::chrono::seconds(10)).has_value());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (true) {
    r = Call(a_, "GET", "/v1.0/invoke/b/method/x");
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->status == 500 || std::chrono::steady_clock::now() > deadline) break;
  }
  EXPECT_EQ(r->status, 500) << r->body;
  EXPECT_EQ(json::parse(r->body)["errorCode"], "ERR_DIRECT_INVOKE");
}

// Resiliency (contract §4.3, targets.apps) on the caller's sidecar, and W3C trace context.
TEST_F(InvokeE2E, ResiliencyRetriesTimeoutAndTracing) {
  std::string resources = WriteTempFile("resiliency.yaml", R"(apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: invoke }
spec:
  policies:
    timeouts: { short: 300ms }
    retries:
      twice: { policy: constant, duration: 10ms, maxRetries: 2 }
  targets:
    apps:
      b: { timeout: short, retry: twice }
)");
  auto r = StartRemorad(
      {"--app-id", "r", "--resources-path", resources, "--config", config_ + "/config.yaml"});
  ASSERT_TRUE(r.ok()) << r.status();
  app_b_->SetPolicy([](const TestApp::Event& e) -> TestApp::Answer {
    if (e.path == "/flaky" && e.attempt <= 2) return {503, "not yet"};
    if (e.path == "/slow") return {200, "late", std::chrono::milliseconds(3000)};
    return Echo(e);
  });
  // Two 503s, then 200: the caller sees only the success, the app saw three calls.
  auto res = Call(*r, "POST", "/v1.0/invoke/b/method/flaky", "x");
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(app_b_->EventsOn("/flaky").size(), 3u);

  // Every attempt times out after 300 ms: ERR_DIRECT_INVOKE long before the app answers.
  auto started = std::chrono::steady_clock::now();
  res = Call(*r, "GET", "/v1.0/invoke/b/method/slow");
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->status, 500) << res->body;
  EXPECT_EQ(json::parse(res->body)["errorCode"], "ERR_DIRECT_INVOKE");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(2500));

  // The caller's trace goes on to the app as a child span, and comes back.
  const std::string parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  res = Call(*r, "GET", "/v1.0/invoke/b/method/traced", "", {{"traceparent", parent}});
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->status, 200);
  auto traced = app_b_->EventsOn("/traced");
  ASSERT_EQ(traced.size(), 1u);
  std::string seen = traced[0].headers["traceparent"];
  ASSERT_EQ(seen.size(), parent.size()) << seen;
  EXPECT_EQ(seen.substr(0, 36), parent.substr(0, 36));    // same trace id
  EXPECT_NE(seen.substr(36, 16), parent.substr(36, 16));  // a new span id
  EXPECT_EQ(res->Header("traceparent").substr(0, 36), parent.substr(0, 36));
}

// --enable-app-health-check: after the threshold of failed probes invocations of the app fail
// without reaching it; the first good probe lets them through again.
TEST_F(InvokeE2E, AppHealthCheckGatesInvocation) {
  auto healthy = std::make_shared<std::atomic<bool>>(true);
  app_a_->SetPolicy([healthy](const TestApp::Event& e) -> TestApp::Answer {
    if (e.path == "/healthz") return {healthy->load() ? 200 : 503, ""};
    return Echo(e);
  });
  auto h = StartRemorad({"--app-id", "h", "--app-port", std::to_string(app_a_->port()),
                         "--enable-app-health-check", "--app-health-probe-interval", "1",
                         "--app-health-threshold", "1", "--config", config_ + "/config.yaml"});
  ASSERT_TRUE(h.ok()) << h.status();
  auto status_until = [&](int want) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(6);
    absl::StatusOr<http::Response> r;
    do {
      r = Call(*h, "GET", "/v1.0/invoke/h/method/work");
      if (r.ok() && r->status == want) return r;
    } while (std::chrono::steady_clock::now() < deadline);
    return r;
  };
  auto r = status_until(200);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  healthy->store(false);
  r = status_until(500);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 500) << r->body;
  EXPECT_THAT(r->body, HasSubstr("app is not healthy"));
  healthy->store(true);
  r = status_until(200);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200) << r->body;
}

// While the app is unhealthy pub/sub deliveries are held back, not lost: an event published then
// reaches the app only once a probe succeeds again.
TEST_F(InvokeE2E, AppHealthCheckHoldsBackEvents) {
  auto healthy = std::make_shared<std::atomic<bool>>(true);
  auto started = TestApp::Start(
      {.subscribe_body = R"([{"pubsubname":"pubsub","topic":"orders","route":"/orders"}])"});
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<TestApp> app = *std::move(started);
  app->SetPolicy([healthy](const TestApp::Event& e) -> TestApp::Answer {
    if (e.path == "/healthz") return {healthy->load() ? 200 : 503, ""};
    return {200, R"({"status":"SUCCESS"})"};
  });
  auto h = StartRemorad({"--app-id", "held", "--app-port", std::to_string(app->port()),
                         "--enable-app-health-check", "--app-health-probe-interval", "1",
                         "--app-health-threshold", "1", "--config", config_ + "/config.yaml"});
  ASSERT_TRUE(h.ok()) << h.status();
  auto orders_with = [&](const std::string& id) {
    return [id](const std::vector<TestApp::Event>& events) {
      for (const auto& e : events) {
        if (e.path == "/orders" && e.json.is_object() && e.json.value("data", json()) == id) {
          return true;
        }
      }
      return false;
    };
  };
  auto publish = [&](const std::string& id) {
    return Call(*h, "POST", "/v1.0/publish/pubsub/orders", json(id).dump(),
                {{"Content-Type", "application/json"}});
  };
  // Subscriptions load in the background: publish until the first event arrives.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool delivered = false;
  while (!delivered && std::chrono::steady_clock::now() < deadline) {
    auto p = publish("before");
    ASSERT_TRUE(p.ok()) << p.status();
    delivered = app->WaitFor(orders_with("before"), std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(delivered);

  healthy->store(false);
  // Unhealthy once invocations of the app are refused (the same monitor gates both).
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(6);
  absl::StatusOr<http::Response> r;
  do {
    r = Call(*h, "GET", "/v1.0/invoke/held/method/work");
  } while (r.ok() && r->status != 500 && std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 500) << r->body;

  auto p = publish("while-down");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->status, 204) << p->body;
  EXPECT_FALSE(app->WaitFor(orders_with("while-down"), std::chrono::milliseconds(1500)))
      << "an event reached the app while it was unhealthy";
  healthy->store(true);
  EXPECT_TRUE(app->WaitFor(orders_with("while-down"), std::chrono::seconds(20)))
      << "the held-back event never arrived after the app recovered";
}

// A sidecar killed without a graceful shutdown leaves its record behind; on the same host the
// resolver notices the dead pid at once, so callers get ERR_DIRECT_INVOKE, not a hang.
TEST_F(InvokeE2E, KilledSidecarDropsOut) {
  b_.process->Signal(SIGKILL);
  ASSERT_TRUE(b_.process->Wait(std::chrono::seconds(5)).has_value());
  auto started = std::chrono::steady_clock::now();
  auto r = Call(a_, "GET", "/v1.0/invoke/b/method/x");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 500) << r->body;
  EXPECT_EQ(json::parse(r->body)["errorCode"], "ERR_DIRECT_INVOKE");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

TEST_F(InvokeE2E, GrpcInvokeService) {
  auto stub = v1::Dapr::NewStub(::grpc::CreateChannel(StrCat("127.0.0.1:", a_.grpc_port),
                                                      ::grpc::InsecureChannelCredentials()));
  auto invoke = [&](const std::string& id, const std::string& method, v1::InvokeServiceRequest* req,
                    ::dapr::proto::common::v1::InvokeResponse* res,
                    std::multimap<std::string, std::string>* server_md = nullptr) {
    req->set_id(id);
    req->mutable_message()->set_method(method);
    ::grpc::ClientContext ctx;
    ctx.AddMetadata("x-custom", "grpc-md");
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ::grpc::Status s = stub->InvokeService(&ctx, *req, res);
    if (server_md) {
      for (const auto& [k, v] : ctx.GetServerInitialMetadata()) {
        server_md->emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
      }
    }
    return s;
  };
  v1::InvokeServiceRequest req;
  req.mutable_message()->mutable_data()->set_value("grpc-body");
  req.mutable_message()->set_content_type("text/plain");
  req.mutable_message()->mutable_http_extension()->set_verb(
      ::dapr::proto::common::v1::HTTPExtension::PUT);
  req.mutable_message()->mutable_http_extension()->set_querystring("a=1");
  ::dapr::proto::common::v1::InvokeResponse res;
  std::multimap<std::string, std::string> md;
  ::grpc::Status s = invoke("b", "grpc/method", &req, &res, &md);
  ASSERT_TRUE(s.ok()) << s.error_message();
  json got = json::parse(res.data().value());
  EXPECT_EQ(got["method"], "PUT");
  EXPECT_EQ(got["path"], "/grpc/method");
  EXPECT_EQ(got["query"], "a=1");
  EXPECT_EQ(got["body"], "grpc-body");
  EXPECT_EQ(got["headers"]["x-custom"], "grpc-md");
  EXPECT_EQ(got["headers"]["content-type"], "text/plain");
  ASSERT_EQ(md.count("dapr-http-status"), 1u);
  EXPECT_EQ(md.find("dapr-http-status")->second, "200");

  v1::InvokeServiceRequest missing;
  s = invoke("b", "missing", &missing, &res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);

  v1::InvokeServiceRequest unknown;
  s = invoke("nope", "x", &unknown, &res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INTERNAL);
  EXPECT_THAT(s.error_message(), HasSubstr("failed to invoke, id: nope"));
}

}  // namespace
}  // namespace remora::testing
