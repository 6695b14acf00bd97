// The HTTP app channel against a real HTTP app (tests/tools/test_app): subscription formats and
// retries, the event POST's headers and body, the answer mapping of contract §2.13, and
// --app-max-concurrency.

#include "appchannel/http_app_channel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "remora/runtime/asio.h"
#include "tests/tools/test_app.h"

namespace remora::runtime {
namespace {

namespace asio = boost::asio;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TestApp;

TEST(EventStatusFromResponseTest, MapsTheAppsAnswerAsDaprDoes) {
  auto is = [](int status, const std::string& body) {
    return EventStatusFromResponse(status, body);
  };
  EXPECT_EQ(*is(200, ""), EventStatus::kSuccess);
  EXPECT_EQ(*is(204, ""), EventStatus::kSuccess);
  EXPECT_EQ(*is(200, "ok"), EventStatus::kSuccess);  // not JSON
  EXPECT_EQ(*is(200, "[1,2]"), EventStatus::kSuccess);
  EXPECT_EQ(*is(200, R"({"status":"SUCCESS"})"), EventStatus::kSuccess);
  EXPECT_EQ(*is(200, R"({"status":""})"), EventStatus::kSuccess);
  EXPECT_EQ(*is(200, R"({"status":7})"), EventStatus::kSuccess);
  EXPECT_EQ(*is(200, R"({"status":"RETRY"})"), EventStatus::kRetry);
  EXPECT_EQ(*is(201, R"({"status":"DROP"})"), EventStatus::kDrop);
  EXPECT_EQ(*is(200, R"({"status":"whatever"})"), EventStatus::kRetry);
  EXPECT_EQ(*is(404, "no such route"), EventStatus::kDrop);
  EXPECT_FALSE(is(500, "boom").ok());
  EXPECT_THAT(std::string(is(503, "busy").status().message()), HasSubstr("503"));
  EXPECT_FALSE(is(400, R"({"status":"SUCCESS"})").ok());
}

TEST(ParseSubscribeResponseTest, V1AndV2Formats) {
  auto subs = ParseSubscribeResponse(R"([
    {"pubsubname":"p","topic":"a","route":"/a","metadata":{"rawPayload":"true","n":3}},
    {"pubsubname":"p","topic":"b","deadLetterTopic":"dlq",
     "routes":{"rules":[{"match":"event.type == \"x\"","path":"/x"}],"default":"/b"},
     "bulkSubscribe":{"enabled":true,"maxMessagesCount":10}},
    {"pubsubname":"p","topic":"c","route":"/ignored","routes":{"default":"/c"}}
  ])");
  ASSERT_TRUE(subs.ok()) << subs.status();
  ASSERT_EQ(subs->size(), 3u);
  const auto& a = (*subs)[0];
  ASSERT_EQ(a.rules.size(), 1u);
  EXPECT_EQ(a.rules[0].path, "/a");
  EXPECT_EQ(a.rules[0].match, "");
  EXPECT_EQ(a.metadata.at("rawPayload"), "true");
  EXPECT_EQ(a.metadata.at("n"), "3");
  EXPECT_EQ(a.type, SubscriptionSpec::Type::kProgrammatic);
  const auto& b = (*subs)[1];
  ASSERT_EQ(b.rules.size(), 2u);
  EXPECT_EQ(b.rules[0].match, "event.type == \"x\"");
  EXPECT_EQ(b.rules[1].path, "/b");
  EXPECT_EQ(b.dead_letter_topic, "dlq");
  EXPECT_TRUE(b.bulk.enabled);
  EXPECT_EQ(b.bulk.max_messages_count, 10);
  ASSERT_EQ((*subs)[2].rules.size(), 1u);
  EXPECT_EQ((*subs)[2].rules[0].path, "/c");  // routes.default wins over route

  EXPECT_TRUE(ParseSubscribeResponse("")->empty());
  EXPECT_FALSE(ParseSubscribeResponse("{}").ok());
  auto missing = ParseSubscribeResponse(R"([{"pubsubname":"p","route":"/a"}])");
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("item 0: \"topic\" is required"));
}

class HttpAppChannelTest : public ::testing::Test {
 protected:
  HttpAppChannelTest() : guard_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~HttpAppChannelTest() override {
    channel_.reset();
    guard_.reset();
    thread_.join();
  }

  void Connect(const TestApp& app, HttpAppChannelOptions options = {}) {
    options.port = static_cast<uint16_t>(app.port());
    options.app_id = "checkout";
    channel_ = std::make_unique<HttpAppChannel>(io_, std::move(options));
  }
  absl::StatusOr<std::vector<SubscriptionSpec>> List() {
    std::promise<absl::StatusOr<std::vector<SubscriptionSpec>>> p;
    channel_->ListSubscriptions([&](auto r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
  absl::StatusOr<EventStatus> Deliver(TopicEvent e) {
    std::promise<absl::StatusOr<EventStatus>> p;
    channel_->DeliverEvent(std::move(e), [&](auto r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
  static TopicEvent Event(std::string path) {
    TopicEvent e;
    e.cloud_event = {{"id", "e1"},
                     {"type", "t"},
                     {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                     {"data", {{"n", 1}}}};
    e.pubsub_name = "pubsub";
    e.topic = "orders";
    e.path = std::move(path);
    e.metadata = {{"__key", "k1"}, {"bad header", "x"}, {"content-type", "text/evil"}};
    return e;
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  std::unique_ptr<HttpAppChannel> channel_;
};

TEST_F(HttpAppChannelTest, SubscribeIsRetriedWhileTheAppStartsAnd404MeansNone) {
  auto app = TestApp::Start({.subscribe_body = R"([{"pubsubname":"p","topic":"t","route":"/t"}])",
                             .subscribe_failures = 2});
  ASSERT_TRUE(app.ok()) << app.status();
  Connect(**app);
  auto subs = List();
  ASSERT_TRUE(subs.ok()) << subs.status();
  ASSERT_EQ(subs->size(), 1u);
  EXPECT_EQ((*subs)[0].topic, "t");
  EXPECT_EQ((*app)->subscribe_calls(), 3);

  auto none = TestApp::Start({.subscribe_status = 404, .subscribe_body = "not found"});
  ASSERT_TRUE(none.ok());
  Connect(**none);
  auto empty = List();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());

  auto bad = TestApp::Start({.subscribe_status = 401, .subscribe_body = "no"});
  ASSERT_TRUE(bad.ok());
  Connect(**bad);
  EXPECT_FALSE(List().ok());
  EXPECT_EQ((*bad)->subscribe_calls(), 1);  // not retried
}

TEST_F(HttpAppChannelTest, SubscribeGivesUpAfterItsDeadlineWhenNoAppListens) {
  auto app = TestApp::Start({});
  ASSERT_TRUE(app.ok());
  int port = (*app)->port();
  app->reset();  // nothing listens on `port` any more
  HttpAppChannelOptions options;
  options.port = static_cast<uint16_t>(port);
  options.subscribe_retry_for = std::chrono::milliseconds(300);
  channel_ = std::make_unique<HttpAppChannel>(io_, options);
  auto started = std::chrono::steady_clock::now();
  auto subs = List();
  EXPECT_FALSE(subs.ok());
  EXPECT_THAT(std::string(subs.status().message()), HasSubstr("attempts"));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
}

TEST_F(HttpAppChannelTest, EventPostCarriesTheCloudEventAndDaprsHeaders) {
  auto app = TestApp::Start({});
  ASSERT_TRUE(app.ok());
  HttpAppChannelOptions options;
  options.app_api_token = "app-secret";
  Connect(**app, options);
  auto status = Deliver(Event("orders/new"));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, EventStatus::kSuccess);
  auto events = (*app)->Events();
  ASSERT_EQ(events.size(), 1u);
  const TestApp::Event& e = events[0];
  EXPECT_EQ(e.method, "POST");
  EXPECT_EQ(e.path, "/orders/new");
  EXPECT_EQ(e.headers.at("content-type"), "application/cloudevents+json");
  EXPECT_EQ(e.headers.at("pubsubname"), "pubsub");
  EXPECT_EQ(e.headers.at("dapr-api-token"), "app-secret");
  EXPECT_EQ(e.headers.at("__key"), "k1");
  EXPECT_EQ(e.headers.at("traceparent"), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(e.headers.count("bad header"), 0u);
  EXPECT_EQ(e.json["data"]["n"], 1);
  EXPECT_EQ(e.json["id"], "e1");
}

TEST_F(HttpAppChannelTest, AnswersMapToStatuses) {
  auto app = TestApp::Start({});
  ASSERT_TRUE(app.ok());
  (*app)->SetPolicy([](const TestApp::Event& e) -> TestApp::Answer {
    if (e.path == "/retry") return {200, R"({"status":"RETRY"})"};
    if (e.path == "/drop") return {200, R"({"status":"DROP"})"};
    if (e.path == "/fail") return {500, "boom"};
    if (e.path == "/gone") return {404, ""};
    return {200, R"({"status":"SUCCESS"})"};
  });
  Connect(**app);
  EXPECT_EQ(*Deliver(Event("/ok")), EventStatus::kSuccess);
  EXPECT_EQ(*Deliver(Event("/retry")), EventStatus::kRetry);
  EXPECT_EQ(*Deliver(Event("/drop")), EventStatus::kDrop);
  EXPECT_EQ(*Deliver(Event("/gone")), EventStatus::kDrop);
  auto failed = Deliver(Event("/fail"));
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("POST /fail"));
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("500"));
}

TEST_F(HttpAppChannelTest, MaxConcurrencyCapsRequestsInTheApp) {
  auto app = TestApp::Start({});
  ASSERT_TRUE(app.ok());
  (*app)->SetPolicy([](const TestApp::Event&) {
    return TestApp::Answer{200, "", std::chrono::milliseconds(30)};
  });
  HttpAppChannelOptions options;
  options.max_concurrency = 2;
  Connect(**app, options);
  constexpr int kEvents = 8;
  std::atomic<int> done{0}, ok{0};
  for (int i = 0; i < kEvents; ++i) {
    TopicEvent e = Event("/slow");
    e.cloud_event["id"] = i;
    channel_->DeliverEvent(std::move(e), [&](absl::StatusOr<EventStatus> s) {
      if (s.ok() && *s == EventStatus::kSuccess) ++ok;
      ++done;
    });
  }
  ASSERT_TRUE((*app)->WaitFor([](const auto& e) { return e.size() == kEvents; }));
  while (done.load() < kEvents) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(ok.load(), kEvents);
  EXPECT_EQ((*app)->max_concurrent(), 2);
}

}  // namespace
}  // namespace remora::runtime
