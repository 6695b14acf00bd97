// remorad's pub/sub end to end over HTTP, on pubsub.in-memory and on pubsub.redis against a real
// redis-server: a subscriber app (tests/tools/test_app) serves /dapr/subscribe and answers events
// per route; the test publishes through the HTTP API and checks what the app receives: routing
// rules (programmatic and declarative), RETRY then SUCCESS, DROP, 404, used-up retries into the
// dead-letter topic, rawPayload, --app-max-concurrency, the metadata API's subscriptions, and the
// errors for bad input (including start-up errors naming the file).

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
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
using ::testing::HasSubstr;

constexpr char kAppToken[] = "app-token-1";

std::string PubsubComponent(const std::string& broker, int redis_port) {
  if (broker == "redis") {
    return StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: pubsub }
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - { name: redisHost, value: "127.0.0.1:)",
                  redis_port, R"(" }
)");
  }
  return R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: pubsub }
spec: { type: pubsub.in-memory, version: v1 }
)";
}

class PubSubHttpE2eTest : public ::testing::TestWithParam<std::string> {
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

  // Topic names unique per test, so Redis streams left by one test never reach another.
  std::string T(const std::string& name) const { return StrCat(prefix_, name); }

  void SetUp() override {
    static std::atomic<int> run{0};
    prefix_ = StrCat("t", ::getpid(), "-", run.fetch_add(1), "-");
    json subs = json::array({
        {{"pubsubname", "pubsub"},
         {"topic", T("orders")},
         {"routes",
          {{"rules", {{{"match", "event.type == \"order.created\""}, {"path", "/orders/created"}}}},
           {"default", "/orders"}}},
         {"deadLetterTopic", T("dlq")}},
        {{"pubsubname", "pubsub"}, {"topic", T("flaky")}, {"route", "/flaky"}},
        {{"pubsubname", "pubsub"},
         {"topic", T("drop")},
         {"route", "/drop"},
         {"deadLetterTopic", T("dlq")}},
        {{"pubsubname", "pubsub"},
         {"topic", T("gone")},
         {"route", "/gone"},
         {"deadLetterTopic", T("dlq")}},
        {{"pubsubname", "pubsub"},
         {"topic", T("poison")},
         {"route", "/poison"},
         {"deadLetterTopic", T("dlq")}},
        {{"pubsubname", "pubsub"}, {"topic", T("dlq")}, {"route", "/dlq"}},
        {{"pubsubname", "pubsub"},
         {"topic", T("raw")},
         {"route", "/raw"},
         {"metadata", {{"rawPayload", "true"}}}},
        {{"pubsubname", "pubsub"}, {"topic", T("burst")}, {"route", "/burst"}},
    });
    auto app = TestApp::Start({.subscribe_body = subs.dump()});
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = *std::move(app);
    app_->SetPolicy([](const TestApp::Event& e) -> TestApp::Answer {
      if (e.path == "/flaky") {
        return {200, e.attempt <= 2 ? R"({"status":"RETRY"})" : R"({"status":"SUCCESS"})"};
      }
      if (e.path == "/drop") return {200, R"({"status":"DROP"})"};
      if (e.path == "/gone") return {404, "no such route"};
      if (e.path == "/poison") return {500, "boom"};
      if (e.path == "/burst") return {200, "", milliseconds(20)};
      return {200, ""};
    });
    std::string resources = StrCat(PubsubComponent(GetParam(), redis_->port()), R"(---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: decl }
spec:
  pubsubname: pubsub
  topic: )",
                                   T("decl"), R"(
  routes:
    rules:
    - { match: 'event.data.kind == "special"', path: /decl/special }
    default: /decl
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: fast }
spec:
  policies:
    retries:
      quick: { policy: constant, duration: 20ms, maxRetries: 3 }
  targets:
    components:
      pubsub: { inbound: { retry: quick } }
)");
    auto rd = StartRemorad(
        {"--app-id", "subscriber", "--app-port", StrCat(app_->port()), "--app-max-concurrency", "4",
         "--resources-path", WriteTempFile("pubsub.yaml", resources)},
        {{"APP_API_TOKEN", kAppToken}});
    ASSERT_TRUE(rd.ok()) << rd.status();
    rd_ = *std::move(rd);
    // Programmatic subscriptions load in the background: wait until the metadata API lists them.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (Metadata().value("subscriptions", json::array()).size() < 9) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << Metadata().dump() << "\n"
                                                            << rd_.process->Output();
      std::this_thread::sleep_for(milliseconds(5));
    }
  }

  json Metadata() {
    auto r = HttpCall("127.0.0.1", rd_.http_port, "GET", "/v1.0/metadata");
    return r.ok() ? json::parse(r->body, nullptr, false) : json();
  }
  http::Response Post(const std::string& target, const std::string& body,
                      const std::string& content_type = "application/json") {
    auto r = HttpCall("127.0.0.1", rd_.http_port, "POST", target, body,
                      {{"Content-Type", content_type}});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : http::Response{};
  }
  // Publishes and returns the CloudEvent id the test chose.
  std::string Publish(const std::string& topic, const json& data, std::string query = "") {
    static std::atomic<int> n{0};
    std::string id = StrCat(prefix_, "e", n.fetch_add(1));
    http::Response r = Post(StrCat("/v1.0/publish/pubsub/", topic, "?metadata.cloudevent.id=", id,
                                   query.empty() ? "" : "&", query),
                            data.dump());
    EXPECT_EQ(r.status, 204) << r.body;
    return id;
  }
  static std::vector<TestApp::Event> WithId(const std::vector<TestApp::Event>& events,
                                            const std::string& id) {
    std::vector<TestApp::Event> out;
    for (const auto& e : events) {
      if (e.json.is_object() && e.json.value("id", "") == id) out.push_back(e);
    }
    return out;
  }
  bool Arrives(const std::string& path, const std::string& id, size_t count = 1) {
    return app_->WaitFor(
        [&](const auto& events) {
          size_t n = 0;
          for (const auto& e : events) {
            if (e.path == path && e.json.is_object() && e.json.value("id", "") == id) ++n;
          }
          return n >= count;
        },
        std::chrono::seconds(10));
  }

  static RedisServer* redis_;
  std::string prefix_;
  std::unique_ptr<TestApp> app_;
  Remorad rd_;
};

RedisServer* PubSubHttpE2eTest::redis_ = nullptr;

TEST_P(PubSubHttpE2eTest, ProgrammaticRoutingRulesAndTheDefaultRoute) {
  std::string created =
      Publish(T("orders"), {{"order", 1}}, "metadata.cloudevent.type=order.created");
  std::string other = Publish(T("orders"), {{"order", 2}});
  ASSERT_TRUE(Arrives("/orders/created", created));
  ASSERT_TRUE(Arrives("/orders", other));
  TestApp::Event e = WithId(app_->EventsOn("/orders"), other).at(0);
  EXPECT_EQ(e.headers.at("content-type"), "application/cloudevents+json");
  EXPECT_EQ(e.headers.at("pubsubname"), "pubsub");
  EXPECT_EQ(e.headers.at("dapr-api-token"), kAppToken);
  EXPECT_EQ(e.json["data"], json({{"order", 2}}));
  EXPECT_EQ(e.json["datacontenttype"], "application/json");
  EXPECT_EQ(e.json["type"], "com.dapr.event.sent");
  EXPECT_EQ(e.json["source"], "subscriber");
  EXPECT_EQ(e.json["topic"], T("orders"));
  EXPECT_EQ(e.json["pubsubname"], "pubsub");
  EXPECT_TRUE(WithId(app_->EventsOn("/orders"), created).empty());
}

TEST_P(PubSubHttpE2eTest, DeclarativeSubscriptionWithRules) {
  std::string special = Publish(T("decl"), {{"kind", "special"}});
  std::string plain = Publish(T("decl"), {{"kind", "plain"}});
  ASSERT_TRUE(Arrives("/decl/special", special));
  ASSERT_TRUE(Arrives("/decl", plain));
}

TEST_P(PubSubHttpE2eTest, RetryThenSuccessDeliversUntilTheAppSucceedsAndNoMore) {
  std::string id = Publish(T("flaky"), {{"n", 1}});
  ASSERT_TRUE(Arrives("/flaky", id, 3));
  // A later event's success on the same topic means the first one is settled by then.
  std::string marker = Publish(T("flaky"), {{"n", 2}});
  ASSERT_TRUE(Arrives("/flaky", marker, 3));
  EXPECT_EQ(WithId(app_->EventsOn("/flaky"), id).size(), 3u);
}

TEST_P(PubSubHttpE2eTest, DropAnd404AreNotRetriedAndGoToTheDeadLetterTopic) {
  std::string dropped = Publish(T("drop"), {{"n", 1}});
  std::string gone = Publish(T("gone"), {{"n", 2}});
  ASSERT_TRUE(Arrives("/dlq", dropped));
  ASSERT_TRUE(Arrives("/dlq", gone));
  EXPECT_EQ(WithId(app_->EventsOn("/drop"), dropped).size(), 1u);
  EXPECT_EQ(WithId(app_->EventsOn("/gone"), gone).size(), 1u);
  // The dead-letter topic gets the original event, addressed to its original topic.
  TestApp::Event dead = WithId(app_->EventsOn("/dlq"), gone).at(0);
  EXPECT_EQ(dead.json["topic"], T("gone"));
  EXPECT_EQ(dead.json["data"]["n"], 2);
}

TEST_P(PubSubHttpE2eTest, UsedUpRetriesGoToTheDeadLetterTopic) {
  std::string id = Publish(T("poison"), {{"n", 1}});
  ASSERT_TRUE(Arrives("/dlq", id));
  // The Resiliency policy: the first delivery and 3 retries.
  EXPECT_EQ(WithId(app_->EventsOn("/poison"), id).size(), 4u);
}

TEST_P(PubSubHttpE2eTest, RawPayloadIsPublishedAsIsAndWrappedForTheSubscriber) {
  const std::string bytes("\x01\x02 raw \xfe", 8);
  http::Response r = Post(StrCat("/v1.0/publish/pubsub/", T("raw"), "?metadata.rawPayload=true"),
                          bytes, "application/octet-stream");
  ASSERT_EQ(r.status, 204) << r.body;
  ASSERT_TRUE(app_->WaitFor([](const auto& events) {
    for (const auto& e : events) {
      if (e.path == "/raw") return true;
    }
    return false;
  }));
  TestApp::Event e = app_->EventsOn("/raw").at(0);
  EXPECT_EQ(e.json["data_base64"], absl::Base64Escape(Sv(bytes)));
  EXPECT_EQ(e.json["datacontenttype"], "application/octet-stream");
}

TEST_P(PubSubHttpE2eTest, MaxConcurrencyCapsCallsIntoTheApp) {
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(Publish(T("burst"), {{"i", i}}));
  for (const std::string& id : ids) ASSERT_TRUE(Arrives("/burst", id));
  EXPECT_LE(app_->max_concurrent(), 4);
}

TEST_P(PubSubHttpE2eTest, BulkPublishEntriesAndTheirErrors) {
  json entries = json::array({
      {{"entryId", "1"}, {"event", {{"a", 1}}}, {"contentType", "application/json"}},
      {{"entryId", "2"}, {"event", "hello"}, {"contentType", "text/plain"}},
  });
  for (const char* prefix : {"/v1.0/publish/bulk/pubsub/", "/v1.0-alpha1/publish/bulk/pubsub/"}) {
    http::Response ok = Post(StrCat(prefix, T("orders")), entries.dump());
    EXPECT_EQ(ok.status, 204) << ok.body;
  }
  ASSERT_TRUE(app_->WaitFor([](const auto& events) {
    int plain = 0;
    for (const auto& e : events) {
      if (e.path == "/orders" && e.json["datacontenttype"] == "text/plain" &&
          e.json["data"] == "hello") {
        ++plain;
      }
    }
    return plain == 2;
  }));

  json duplicate = entries;
  duplicate[1]["entryId"] = "1";
  http::Response dup = Post(StrCat("/v1.0/publish/bulk/pubsub/", T("orders")), duplicate.dump());
  EXPECT_EQ(dup.status, 400);
  EXPECT_EQ(json::parse(dup.body)["errorCode"], "ERR_PUBSUB_EVENTS_SER");
  json bad_type = json::array({{{"entryId", "1"}, {"event", 5}, {"contentType", "image/png"}}});
  http::Response unsupported =
      Post(StrCat("/v1.0/publish/bulk/pubsub/", T("orders")), bad_type.dump());
  EXPECT_EQ(unsupported.status, 400);
  EXPECT_THAT(unsupported.body, HasSubstr("image/png"));
  http::Response not_array = Post(StrCat("/v1.0/publish/bulk/pubsub/", T("orders")), "{}");
  EXPECT_EQ(not_array.status, 400);
  EXPECT_EQ(json::parse(not_array.body)["errorCode"], "ERR_PUBSUB_EVENTS_SER");
}

TEST_P(PubSubHttpE2eTest, BadPublishRequestsGetDaprsCodes) {
  http::Response unknown = Post("/v1.0/publish/nope/orders", "{}");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(json::parse(unknown.body)["errorCode"], "ERR_PUBSUB_NOT_FOUND");
  http::Response no_topic = Post("/v1.0/publish/pubsub", "{}");
  EXPECT_EQ(no_topic.status, 404);
  EXPECT_EQ(json::parse(no_topic.body)["errorCode"], "ERR_TOPIC_NAME_EMPTY");
  http::Response raw =
      Post(StrCat("/v1.0/publish/pubsub/", T("orders"), "?metadata.rawPayload=perhaps"), "{}");
  EXPECT_EQ(raw.status, 400);
  EXPECT_EQ(json::parse(raw.body)["errorCode"], "ERR_PUBSUB_REQUEST_METADATA");
  http::Response ttl =
      Post(StrCat("/v1.0/publish/pubsub/", T("orders"), "?metadata.ttlInSeconds=later"), "{}");
  EXPECT_EQ(ttl.status, 400);
  http::Response envelope =
      Post(StrCat("/v1.0/publish/pubsub/", T("orders")), "[1,2]", "application/cloudevents+json");
  EXPECT_EQ(envelope.status, 500);
  EXPECT_EQ(json::parse(envelope.body)["errorCode"], "ERR_PUBSUB_CLOUD_EVENTS_SER");
  // A topic with slashes is one topic.
  std::string id = Publish(T("orders") + "/eu/west", {{"x", 1}});
  EXPECT_FALSE(id.empty());
}

TEST_P(PubSubHttpE2eTest, MetadataListsEverySubscriptionWithItsType) {
  json subs = Metadata()["subscriptions"];
  std::map<std::string, json> by_topic;
  for (const json& s : subs) by_topic[s["topic"]] = s;
  ASSERT_TRUE(by_topic.count(T("decl")));
  EXPECT_EQ(by_topic[T("decl")]["type"], "DECLARATIVE");
  EXPECT_EQ(by_topic[T("decl")]["rules"],
            json::parse(R"([{"match":"event.data.kind == \"special\"","path":"/decl/special"},
                            {"path":"/decl"}])"));
  ASSERT_TRUE(by_topic.count(T("orders")));
  const json& orders = by_topic[T("orders")];
  EXPECT_EQ(orders["type"], "PROGRAMMATIC");
  EXPECT_EQ(orders["pubsubname"], "pubsub");
  EXPECT_EQ(orders["deadLetterTopic"], T("dlq"));
  EXPECT_EQ(orders["rules"].size(), 2u);
  EXPECT_EQ(by_topic[T("raw")]["metadata"]["rawPayload"], "true");
  EXPECT_FALSE(by_topic[T("flaky")].contains("deadLetterTopic"));
}

INSTANTIATE_TEST_SUITE_P(Brokers, PubSubHttpE2eTest, ::testing::Values("in-memory", "redis"),
                         [](const auto& info) {
                           return info.param == "in-memory" ? std::string("InMemory")
                                                            : std::string("Redis");
                         });

// Start-up errors: remorad exits non-zero naming the file.
std::string StartupError(const std::string& yaml) {
  std::string dir =
      WriteTempFile("subs.yaml", StrCat(PubsubComponent("in-memory", 0), "---\n", yaml));
  auto rd = StartRemorad({"--app-id", "a", "--resources-path", dir});
  EXPECT_FALSE(rd.ok()) << "remorad started with:\n" << yaml;
  return rd.ok() ? "" : std::string(rd.status().message());
}

TEST(PubSubStartupTest, MalformedSubscriptionYamlNamesTheFile) {
  std::string error = StartupError(R"(apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: s }
spec: { pubsubname: pubsub, routes: { default: /x } }
)");
  EXPECT_THAT(error, HasSubstr("subs.yaml (document 2): spec.topic is required"));
}

TEST(PubSubStartupTest, AnUnparsableRoutingRuleNamesTheFile) {
  std::string error = StartupError(R"(apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: s }
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules:
    - { match: 'has(event.data.x)', path: /x }
)");
  EXPECT_THAT(error, HasSubstr("subs.yaml (document 2)"));
  EXPECT_THAT(error, HasSubstr("routing rule 'has(event.data.x)'"));
}

TEST(PubSubStartupTest, AResiliencyTargetNamingAnUnknownPolicyNamesTheFile) {
  std::string error = StartupError(R"(apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: r }
spec:
  targets:
    components:
      pubsub: { inbound: { retry: missing } }
)");
  EXPECT_THAT(error, HasSubstr("subs.yaml (document 2)"));
  EXPECT_THAT(error, HasSubstr("\"missing\""));
}

}  // namespace
}  // namespace remora::testing
