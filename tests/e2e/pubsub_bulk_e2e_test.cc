// Bulk subscribe delivery end to end (contract §2.13 "Bulk delivery"): remorad on pubsub.in-memory
// and pubsub.redis delivers a bulkSubscribe subscription to the HTTP app in batches (one POST with
// Dapr's bulk body), at most maxMessagesCount entries each, a partial batch after
// maxAwaitDurationMs, and follows the app's answer per entry: SUCCESS acks, RETRY (or an entry
// left out of the answer) delivers it again in a later batch, DROP sends it to the dead-letter
// topic. Programmatic (GET /dapr/subscribe) and declarative (Subscription YAML) both count.

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/tools/redis_server.h"
#include "tests/tools/test_app.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The sequence number the test put in an event's data: -1 when `cloud_event` has none.
int N(const json& cloud_event) {
  if (!cloud_event.is_object()) return -1;
  auto data = cloud_event.find("data");
  if (data == cloud_event.end() || !data->is_object()) return -1;
  return data->value("n", -1);
}

// The entries of a bulk POST body (empty for anything else).
json Entries(const json& body) {
  if (!body.is_object()) return json::array();
  auto entries = body.find("entries");
  return entries != body.end() && entries->is_array() ? *entries : json::array();
}

class PubSubBulkE2eTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    auto redis = RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = redis->release();
  }
  static void TearDownTestSuite() {
    delete redis_;
    redis_ = nullptr;
  }

  std::string T(const std::string& name) const { return StrCat(prefix_, name); }

  void SetUp() override {
    static std::atomic<int> run{0};
    prefix_ = StrCat("b", ::getpid(), "-", run.fetch_add(1), "-");
    json subs = json::array({
        {{"pubsubname", "pubsub"},
         {"topic", T("batched")},
         {"route", "/batched"},
         {"bulkSubscribe",
          {{"enabled", true}, {"maxMessagesCount", 10}, {"maxAwaitDurationMs", 100}}}},
        {{"pubsubname", "pubsub"},
         {"topic", T("mixed")},
         {"route", "/mixed"},
         {"deadLetterTopic", T("dlq")},
         {"bulkSubscribe",
          {{"enabled", true}, {"maxMessagesCount", 50}, {"maxAwaitDurationMs", 100}}}},
        {{"pubsubname", "pubsub"}, {"topic", T("dlq")}, {"route", "/dlq"}},
    });
    auto app = TestApp::Start({.subscribe_body = subs.dump()});
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = *std::move(app);
    app_->SetPolicy([this](const TestApp::Event& e) { return Answer(e); });
    std::string component = GetParam() == "redis" ? StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: pubsub }
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - { name: redisHost, value: "127.0.0.1:)",
                                                           redis_->port(), R"(" }
  - { name: concurrency, value: "100" }
)")
                                                  : std::string(R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: pubsub }
spec: { type: pubsub.in-memory, version: v1 }
)");
    std::string resources = StrCat(component, R"(---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: decl }
spec:
  pubsubname: pubsub
  topic: )",
                                   T("decl"), R"(
  routes: { default: /decl }
  bulkSubscribe: { enabled: true, maxMessagesCount: 1000, maxAwaitDurationMs: 300 }
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: fast }
spec:
  policies:
    retries:
      quick: { policy: constant, duration: 20ms, maxRetries: 5 }
  targets:
    components:
      pubsub: { inbound: { retry: quick } }
)");
    auto rd = StartRemorad({"--app-id", "bulk-subscriber", "--app-port", StrCat(app_->port()),
                            "--resources-path", WriteTempFile("pubsub.yaml", resources)});
    ASSERT_TRUE(rd.ok()) << rd.status();
    rd_ = *std::move(rd);
    auto deadline = std::chrono::steady_clock::now() + seconds(10);
    while (true) {
      auto r = HttpCall("127.0.0.1", rd_.http_port, "GET", "/v1.0/metadata");
      json md = r.ok() ? json::parse(r->body, nullptr, false) : json();
      if (md.is_object() && md.value("subscriptions", json::array()).size() >= 4) break;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << rd_.process->Output();
      std::this_thread::sleep_for(milliseconds(5));
    }
  }

  // The app: on /mixed, n % 5 == 1 answers RETRY the first time, n % 5 == 2 is left out of the
  // answer the first time, n % 5 == 3 answers DROP; everything else SUCCESS.
  TestApp::Answer Answer(const TestApp::Event& e) {
    if (!e.json.is_object() || !e.json.contains("entries")) return {200, ""};
    json statuses = json::array();
    std::lock_guard lock(mu_);
    for (const json& entry : Entries(e.json)) {
      int n = N(entry.value("event", json()));
      int seen = ++seen_[{e.path, n}];
      std::string status = "SUCCESS";
      if (e.path == "/mixed") {
        if (n % 5 == 1 && seen == 1) status = "RETRY";
        if (n % 5 == 2 && seen == 1) continue;
        if (n % 5 == 3) status = "DROP";
      }
      statuses.push_back({{"entryId", entry.value("entryId", "")}, {"status", status}});
    }
    return {200, json{{"statuses", statuses}}.dump()};
  }

  void BulkPublish(const std::string& topic, int count) {
    json entries = json::array();
    for (int n = 0; n < count; ++n) {
      entries.push_back(
          {{"entryId", StrCat(n)}, {"event", {{"n", n}}}, {"contentType", "application/json"}});
    }
    auto r = HttpCall("127.0.0.1", rd_.http_port, "POST",
                      StrCat("/v1.0-alpha1/publish/bulk/pubsub/", topic), entries.dump(),
                      {{"Content-Type", "application/json"}});
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, 204) << r->body;
  }

  // The distinct `n`s delivered on `path` (bulk bodies and single events alike).
  static std::set<int> Delivered(const std::vector<TestApp::Event>& events,
                                 const std::string& path) {
    std::set<int> out;
    for (const auto& e : events) {
      if (e.path != path || !e.json.is_object()) continue;
      if (e.json.contains("entries")) {
        for (const json& entry : Entries(e.json)) out.insert(N(entry.value("event", json())));
      } else {
        out.insert(N(e.json));
      }
    }
    return out;
  }

  static RedisServer* redis_;
  std::string prefix_;
  std::unique_ptr<TestApp> app_;
  Remorad rd_;
  std::mutex mu_;
  std::map<std::pair<std::string, int>, int> seen_;
};

RedisServer* PubSubBulkE2eTest::redis_ = nullptr;

TEST_P(PubSubBulkE2eTest, DeliversBatchesOfAtMostMaxMessagesCountInDaprsBulkFormat) {
  BulkPublish(T("batched"), 45);
  ASSERT_TRUE(app_->WaitFor(
      [](const auto& events) { return Delivered(events, "/batched").size() == 45; }, seconds(10)))
      << rd_.process->Output();
  std::vector<TestApp::Event> posts = app_->EventsOn("/batched");
  size_t largest = 0;
  for (const auto& e : posts) {
    EXPECT_EQ(e.method, "POST");
    EXPECT_EQ(e.headers.at("content-type"), "application/json");
    EXPECT_EQ(e.headers.at("pubsubname"), "pubsub");
    ASSERT_TRUE(e.json.is_object()) << e.body;
    EXPECT_EQ(e.json.value("type", ""), "com.dapr.event.sent.bulk");
    EXPECT_EQ(e.json.value("topic", ""), T("batched"));
    EXPECT_EQ(e.json.value("pubsubname", ""), "pubsub");
    EXPECT_FALSE(e.json.value("id", "").empty());
    json entries = Entries(e.json);
    ASSERT_FALSE(entries.empty()) << e.body;
    EXPECT_LE(entries.size(), 10u);
    largest = std::max(largest, entries.size());
    for (const json& entry : entries) {
      EXPECT_FALSE(entry.value("entryId", "").empty());
      EXPECT_EQ(entry.value("contentType", ""), "application/cloudevents+json");
      ASSERT_TRUE(entry.value("event", json()).is_object()) << entry.dump();
      EXPECT_EQ(entry["event"].value("topic", ""), T("batched"));  // the CloudEvent itself
      EXPECT_TRUE(entry.value("metadata", json()).is_object());
    }
  }
  // 45 events published at once travel in a handful of requests, not 45.
  EXPECT_EQ(largest, 10u);
  EXPECT_LE(posts.size(), 9u);
}

TEST_P(PubSubBulkE2eTest, APartialBatchGoesAfterMaxAwaitDuration) {
  BulkPublish(T("decl"), 3);  // far below the declarative maxMessagesCount of 1000
  ASSERT_TRUE(app_->WaitFor(
      [](const auto& events) { return Delivered(events, "/decl").size() == 3; }, seconds(10)))
      << rd_.process->Output();
  for (const auto& e : app_->EventsOn("/decl")) {
    EXPECT_EQ(e.json.value("type", ""), "com.dapr.event.sent.bulk");
  }
}

TEST_P(PubSubBulkE2eTest, FollowsTheAppsAnswerPerEntry) {
  BulkPublish(T("mixed"), 40);
  // Everything but the DROPs is eventually answered SUCCESS; the DROPs land in the dead-letter
  // topic (as single events: that subscription is not bulk).
  ASSERT_TRUE(app_->WaitFor(
      [](const auto& events) { return Delivered(events, "/dlq").size() == 8; }, seconds(10)))
      << rd_.process->Output();
  std::set<int> dlq = Delivered(app_->Events(), "/dlq");
  for (int n : dlq) EXPECT_EQ(n % 5, 3) << n;
  auto retried = [this] {
    std::lock_guard lock(mu_);
    for (int n = 0; n < 40; ++n) {
      if ((n % 5 == 1 || n % 5 == 2) && seen_[{"/mixed", n}] < 2) return false;
    }
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (!retried() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  std::lock_guard lock(mu_);
  for (int n = 0; n < 40; ++n) {
    int seen = seen_[{"/mixed", n}];
    if (n % 5 == 1 || n % 5 == 2) {
      EXPECT_EQ(seen, 2) << "event " << n << " (RETRY / not answered) must come back once";
    } else {
      EXPECT_EQ(seen, 1) << "event " << n << " was answered SUCCESS or DROP";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Brokers, PubSubBulkE2eTest, ::testing::Values("memory", "redis"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace remora::testing
