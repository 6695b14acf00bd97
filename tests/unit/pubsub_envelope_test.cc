// The CloudEvents envelope (contract §3) and the routing-rule subset of CEL.

#include "blocks/pubsub/cloudevents.h"
#include "blocks/pubsub/routing.h"

#include "gtest/gtest.h"
#include "remora/runtime/errors.h"

namespace remora::runtime::pubsub {
namespace {

using nlohmann::json;

EnvelopeInput Input(std::string data, std::string content_type) {
  EnvelopeInput in;
  in.data = std::move(data);
  in.content_type = std::move(content_type);
  in.topic = "orders";
  in.pubsub_name = "pubsub";
  in.app_id = "checkout";
  in.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  in.now = std::chrono::system_clock::from_time_t(1700000000);
  return in;
}

TEST(Envelope, JsonBodyIsEmbeddedVerbatimWithDaprFields) {
  auto env = BuildEnvelope(Input(R"({"orderId": 12345678901234567890, "price": 1.10})",
                                 "application/json; charset=utf-8"));
  ASSERT_TRUE(env.ok()) << env.status();
  // Numbers exactly as published (no float re-formatting).
  EXPECT_NE(env->find(R"("data":{"orderId": 12345678901234567890, "price": 1.10})"),
            std::string::npos)
      << *env;
  json e = json::parse(*env);
  EXPECT_EQ(e["source"], "checkout");
  EXPECT_EQ(e["type"], "com.dapr.event.sent");
  EXPECT_EQ(e["specversion"], "1.0");
  EXPECT_EQ(e["topic"], "orders");
  EXPECT_EQ(e["pubsubname"], "pubsub");
  EXPECT_EQ(e["datacontenttype"], "application/json; charset=utf-8");
  EXPECT_EQ(e["traceid"], e["traceparent"]);
  EXPECT_EQ(e["tracestate"], "");
  EXPECT_EQ(e["time"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(e["id"].get<std::string>().size(), 36u);
  EXPECT_FALSE(e.contains("expiration"));
  EXPECT_FALSE(e.contains("subject"));
}

TEST(Envelope, TextInvalidJsonAndBinaryBodies) {
  json text = json::parse(*BuildEnvelope(Input("hello \"world\"", "")));
  EXPECT_EQ(text["data"], "hello \"world\"");
  EXPECT_EQ(text["datacontenttype"], "text/plain");

  json broken = json::parse(*BuildEnvelope(Input("{not json", "application/json")));
  EXPECT_EQ(broken["data"], "{not json");

  json binary = json::parse(
      *BuildEnvelope(Input(std::string("\x00\x01\xff", 3), "application/octet-stream")));
  EXPECT_EQ(binary["data_base64"], "AAH/");
  EXPECT_FALSE(binary.contains("data"));
}

TEST(Envelope, MetadataOverridesAndTtl) {
  EnvelopeInput in = Input("1", "application/json");
  in.metadata = {{"cloudevent.ID", "fixed-id"},
                 {"cloudevent.source", "src"},
                 {"cloudevent.type", "order.created"},
                 {"cloudevent.subject", "s"},
                 {"cloudevent.traceid", "t1"},
                 {"cloudevent.traceparent", "t2"},
                 {"ttlInSeconds", "60"}};
  json e = json::parse(*BuildEnvelope(in));
  EXPECT_EQ(e["id"], "fixed-id");
  EXPECT_EQ(e["source"], "src");
  EXPECT_EQ(e["type"], "order.created");
  EXPECT_EQ(e["subject"], "s");
  EXPECT_EQ(e["traceid"], "t2");  // traceparent wins over traceid
  EXPECT_EQ(e["expiration"], "2023-11-14T22:14:20Z");

  in.broker_has_message_ttl = true;
  EXPECT_FALSE(json::parse(*BuildEnvelope(in)).contains("expiration"));

  in.metadata = {{"ttlInSeconds", "soon"}};
  auto bad = BuildEnvelope(in);
  errors::Code code;
  ASSERT_TRUE(errors::CodeOf(bad.status(), &code));
  EXPECT_EQ(code, errors::Code::kPubsubRequestMetadata);
}

TEST(Envelope, UserCloudEventIsKeptButReaddressed) {
  auto env = BuildEnvelope(Input(
      R"({"id":"mine","source":"s","type":"t","specversion":"1.0","topic":"wrong","data":{"a":1}})",
      "application/cloudevents+json"));
  ASSERT_TRUE(env.ok());
  json e = json::parse(*env);
  EXPECT_EQ(e["id"], "mine");
  EXPECT_EQ(e["topic"], "orders");
  EXPECT_EQ(e["pubsubname"], "pubsub");
  EXPECT_EQ(e["data"]["a"], 1);
  EXPECT_TRUE(e.contains("time"));
  EXPECT_FALSE(BuildEnvelope(Input("[1,2]", "application/cloudevents+json")).ok());
}

TEST(Envelope, SubscriberSideReading) {
  auto raw = ReadEvent("plain bytes", true, "t", "p");
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ((*raw)["data_base64"], "cGxhaW4gYnl0ZXM=");
  EXPECT_EQ((*raw)["datacontenttype"], "application/octet-stream");
  EXPECT_EQ((*raw)["source"], "Dapr");
  EXPECT_FALSE(ReadEvent("plain bytes", false, "t", "p").ok());

  auto now = std::chrono::system_clock::from_time_t(1700000000);
  EXPECT_TRUE(Expired(json{{"expiration", "2023-11-14T22:13:19Z"}}, now));
  EXPECT_FALSE(Expired(json{{"expiration", "2023-11-14T22:13:21Z"}}, now));
  EXPECT_FALSE(Expired(json{{"id", "x"}}, now));

  EXPECT_TRUE(*RawPayload({{"rawPayload", "TRUE"}}));
  EXPECT_FALSE(*RawPayload({}));
  EXPECT_FALSE(RawPayload({{"rawPayload", "maybe"}}).ok());
}

json Event() {
  return json::parse(R"({"type":"order.created","source":"checkout",
      "data":{"total":250,"region":"eu","vip":true,"items":{"count":3}}})");
}

bool Match(std::string_view rule) {
  auto e = Expression::Parse(rule);
  EXPECT_TRUE(e.ok()) << rule << ": " << e.status();
  return e.ok() && e->Matches(Event());
}

TEST(Routing, TheSubsetDaprUsersWrite) {
  EXPECT_TRUE(Match(R"(event.type == "order.created")"));
  EXPECT_TRUE(Match(R"(event.type == 'order.created' && event.source == "checkout")"));
  EXPECT_FALSE(Match(R"(event.type != "order.created")"));
  EXPECT_TRUE(Match(R"(event.data.total > 100 && event.data.total <= 250)"));
  EXPECT_TRUE(Match(R"(event.data.items.count == 3)"));
  EXPECT_TRUE(
      Match(R"((event.data.region == "us" || event.data.region == "eu") && event.data.vip)"));
  EXPECT_TRUE(Match(R"(!(event.data.region == "us"))"));
  EXPECT_TRUE(Match(""));  // the default route
}

TEST(Routing, MissingFieldsBehaveAsCelErrors) {
  EXPECT_FALSE(Match(R"(event.data.missing == 1)"));
  EXPECT_FALSE(Match(R"(event.data.missing != 1)"));
  EXPECT_FALSE(Match(R"(!(event.data.missing == 1))"));
  EXPECT_TRUE(Match(R"(event.data.missing == 1 || event.type == "order.created")"));
  EXPECT_FALSE(Match(R"(event.data.missing == 1 && event.type == "order.created")"));
}

TEST(Routing, ExpressionsOutsideTheSubsetAreLoadErrors) {
  for (std::string_view bad :
       {R"(event.type.startsWith("order"))", R"(event.data["x"] == 1)", R"(size(event.data) > 1)",
        R"(event.type == )", R"((event.type == "a")", R"(event.type == "a" extra)",
        R"(event.type in ["a"])", R"(other.type == "a")"}) {
    auto e = Expression::Parse(bad);
    EXPECT_FALSE(e.ok()) << bad;
    if (!e.ok()) {
      EXPECT_NE(e.status().message().find("routing rule"), absl::string_view::npos);
    }
  }
}

TEST(Routing, FirstMatchingRuleWins) {
  std::vector<Rule> rules;
  rules.push_back({*Expression::Parse(R"(event.type == "order.cancelled")"), "/cancelled"});
  rules.push_back({*Expression::Parse(R"(event.data.total > 100)"), "/big"});
  rules.push_back({*Expression::Parse(""), "/default"});
  EXPECT_EQ(SelectRoute(rules, Event())->path, "/big");
  rules.erase(rules.begin() + 1);
  EXPECT_EQ(SelectRoute(rules, Event())->path, "/default");
  rules.pop_back();
  EXPECT_EQ(SelectRoute(rules, Event()), nullptr);
}

}  // namespace
}  // namespace remora::runtime::pubsub
