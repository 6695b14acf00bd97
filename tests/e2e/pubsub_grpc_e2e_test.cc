// remorad's pub/sub over gRPC end to end: a gRPC subscriber app (tests/tools/grpc_test_app)
// serves AppCallback on --app-port with --app-protocol grpc; the test publishes through the gRPC
// API (PublishEvent, BulkPublishEvent, BulkPublishEventAlpha1) and checks what the app receives:
// programmatic and declarative subscriptions with routing rules, RETRY → redelivery, DROP and
// UNIMPLEMENTED → the dead-letter topic, the app token; the SubscribeTopicEventsAlpha1 streaming
// subscription (events, RETRY redelivered, protocol errors, removal at stream end); bad input with
// Dapr's codes. Then the gRPC app channel on its own against the same app (OnInvoke, health).

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "api/grpc/grpc_app_channel.h"
#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/tools/grpc_test_app.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

namespace v1 = ::dapr::proto::runtime::v1;
using nlohmann::json;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr char kAppToken[] = "app-token-7";

std::optional<std::string> ReasonOf(const ::grpc::Status& status) {
  google::rpc::Status details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) {
    return std::nullopt;
  }
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return info.reason();
  }
  return std::nullopt;
}

v1::TopicSubscription* Subscription(v1::ListTopicSubscriptionsResponse* subs,
                                    const std::string& topic, const std::string& route,
                                    const std::string& dead_letter = "") {
  v1::TopicSubscription* sub = subs->add_subscriptions();
  sub->set_pubsub_name("pubsub");
  sub->set_topic(topic);
  sub->mutable_routes()->set_default_(route);
  if (!dead_letter.empty()) sub->set_dead_letter_topic(dead_letter);
  return sub;
}

std::string Extension(const GrpcTestApp::Event& e, const std::string& name) {
  const auto& fields = e.request.extensions().fields();
  auto it = fields.find(name);
  return it == fields.end() ? "" : it->second.string_value();
}

class PubSubGrpcE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    v1::ListTopicSubscriptionsResponse subs;
    v1::TopicSubscription* orders = Subscription(&subs, "orders", "/orders", "dlq");
    v1::TopicRule* rule = orders->mutable_routes()->add_rules();
    rule->set_match("event.type == \"order.created\"");
    rule->set_path("/orders/created");
    Subscription(&subs, "flaky", "/flaky");
    Subscription(&subs, "drop", "/drop", "dlq");
    Subscription(&subs, "unimplemented", "/unimplemented", "dlq");
    Subscription(&subs, "dlq", "/dlq");
    Subscription(&subs, "bulk", "/bulk");
    v1::TopicSubscription* batched = Subscription(&subs, "batched", "/batched");
    batched->mutable_bulk_subscribe()->set_enabled(true);
    batched->mutable_bulk_subscribe()->set_max_messages_count(10);
    batched->mutable_bulk_subscribe()->set_max_await_duration_ms(50);
    auto app = GrpcTestApp::Start({.subscriptions = subs});
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = app->release();
    app_->SetPolicy([](const GrpcTestApp::Event& e) -> GrpcTestApp::Answer {
      const std::string& path = e.request.path();
      if (path == "/flaky") {
        return {e.attempt <= 2 ? v1::TopicEventResponse::RETRY : v1::TopicEventResponse::SUCCESS};
      }
      if (path == "/drop") return {v1::TopicEventResponse::DROP};
      if (path == "/batched" && e.request.data().find("retry") != std::string::npos) {
        return {e.attempt == 1 ? v1::TopicEventResponse::RETRY : v1::TopicEventResponse::SUCCESS};
      }
      if (path == "/unimplemented") {
        return {v1::TopicEventResponse::SUCCESS,
                ::grpc::Status(::grpc::StatusCode::UNIMPLEMENTED, "not here")};
      }
      return {};
    });
    std::string resources = R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: pubsub }
spec: { type: pubsub.in-memory, version: v1 }
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: decl }
spec:
  pubsubname: pubsub
  topic: decl
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
)";
    auto rd = StartRemorad(
        {"--app-id", "grpc-subscriber", "--app-protocol", "grpc", "--app-port",
         StrCat(app_->port()), "--resources-path", WriteTempFile("pubsub.yaml", resources)},
        {{"APP_API_TOKEN", kAppToken}});
    ASSERT_TRUE(rd.ok()) << rd.status();
    rd_ = new Remorad(*std::move(rd));
    channel_ = new std::shared_ptr<::grpc::Channel>(::grpc::CreateChannel(
        StrCat("127.0.0.1:", rd_->grpc_port), ::grpc::InsecureChannelCredentials()));
    stub_ = v1::Dapr::NewStub(*channel_).release();
    // The app's subscriptions load in the background: wait until the metadata API lists them.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (Subscriptions().size() < 8) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << rd_->process->Output();
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete channel_;
    delete rd_;
    delete app_;
  }

  static json Subscriptions() {
    auto r = HttpCall("127.0.0.1", rd_->http_port, "GET", "/v1.0/metadata");
    if (!r.ok()) return json::array();
    json m = json::parse(r->body, nullptr, false);
    return m.is_object() ? m.value("subscriptions", json::array()) : json::array();
  }

  static size_t StreamingSubscriptions(const std::string& topic) {
    size_t n = 0;
    for (const json& s : Subscriptions()) {
      n += s.value("type", "") == "STREAMING" && s.value("topic", "") == topic;
    }
    return n;
  }

  static std::unique_ptr<::grpc::ClientContext> Context(milliseconds timeout = milliseconds(5000)) {
    auto ctx = std::make_unique<::grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    return ctx;
  }

  // Publishes `data` as JSON with a chosen CloudEvent id; returns the id.
  static std::string Publish(const std::string& topic, const json& data,
                             const std::string& type = "") {
    static std::atomic<int> n{0};
    std::string id = StrCat("g", n.fetch_add(1));
    v1::PublishEventRequest req;
    req.set_pubsub_name("pubsub");
    req.set_topic(topic);
    req.set_data(data.dump());
    req.set_data_content_type("application/json");
    (*req.mutable_metadata())["cloudevent.id"] = id;
    if (!type.empty()) (*req.mutable_metadata())["cloudevent.type"] = type;
    google::protobuf::Empty res;
    ::grpc::Status s = stub_->PublishEvent(Context().get(), req, &res);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return id;
  }

  static bool Arrives(const std::string& path, const std::string& id, size_t count = 1) {
    return app_->WaitFor([&](const std::vector<GrpcTestApp::Event>& events) {
      size_t n = 0;
      for (const auto& e : events) n += e.request.path() == path && e.request.id() == id;
      return n >= count;
    });
  }

  static std::vector<GrpcTestApp::Event> WithId(const std::vector<GrpcTestApp::Event>& events,
                                                const std::string& id) {
    std::vector<GrpcTestApp::Event> out;
    for (const auto& e : events) {
      if (e.request.id() == id) out.push_back(e);
    }
    return out;
  }

  static GrpcTestApp* app_;
  static Remorad* rd_;
  static std::shared_ptr<::grpc::Channel>* channel_;
  static v1::Dapr::Stub* stub_;
};

GrpcTestApp* PubSubGrpcE2eTest::app_ = nullptr;
Remorad* PubSubGrpcE2eTest::rd_ = nullptr;
std::shared_ptr<::grpc::Channel>* PubSubGrpcE2eTest::channel_ = nullptr;
v1::Dapr::Stub* PubSubGrpcE2eTest::stub_ = nullptr;

TEST_F(PubSubGrpcE2eTest, PublishedEventReachesTheAppOnTheRuleItMatches) {
  std::string created = Publish("orders", {{"n", 1}}, "order.created");
  std::string other = Publish("orders", {{"n", 2}}, "order.updated");
  ASSERT_TRUE(Arrives("/orders/created", created));
  ASSERT_TRUE(Arrives("/orders", other));

  auto events = WithId(app_->Events(), created);
  ASSERT_EQ(events.size(), 1u);
  const GrpcTestApp::Event& e = events.front();
  EXPECT_EQ(e.request.topic(), "orders");
  EXPECT_EQ(e.request.pubsub_name(), "pubsub");
  EXPECT_EQ(e.request.type(), "order.created");
  EXPECT_EQ(e.request.source(), "grpc-subscriber");
  EXPECT_EQ(e.request.spec_version(), "1.0");
  EXPECT_EQ(e.request.data_content_type(), "application/json");
  EXPECT_EQ(json::parse(e.request.data(), nullptr, false), json({{"n", 1}}));
  // Attributes other than the core ones travel as extensions.
  EXPECT_EQ(Extension(e, "topic"), "orders");
  EXPECT_EQ(Extension(e, "pubsubname"), "pubsub");
  ASSERT_EQ(e.metadata.count("dapr-api-token"), 1u);
  EXPECT_EQ(e.metadata.at("dapr-api-token"), kAppToken);
}

TEST_F(PubSubGrpcE2eTest, TextDataArrivesAsItsBytes) {
  v1::PublishEventRequest req;
  req.set_pubsub_name("pubsub");
  req.set_topic("bulk");
  req.set_data("plain words");
  req.set_data_content_type("text/plain");
  (*req.mutable_metadata())["cloudevent.id"] = "text-1";
  google::protobuf::Empty res;
  ::grpc::Status s = stub_->PublishEvent(Context().get(), req, &res);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Arrives("/bulk", "text-1"));
  EXPECT_EQ(WithId(app_->Events(), "text-1").front().request.data(), "plain words");
}

TEST_F(PubSubGrpcE2eTest, DeclarativeSubscriptionRoutesByData) {
  std::string special = Publish("decl", {{"kind", "special"}});
  std::string plain = Publish("decl", {{"kind", "plain"}});
  EXPECT_TRUE(Arrives("/decl/special", special));
  EXPECT_TRUE(Arrives("/decl", plain));
}

TEST_F(PubSubGrpcE2eTest, RetryIsRedeliveredUntilSuccess) {
  std::string id = Publish("flaky", {{"x", 1}});
  ASSERT_TRUE(Arrives("/flaky", id, 3));
  std::vector<int> attempts;
  for (const auto& e : WithId(app_->EventsOn("/flaky"), id)) attempts.push_back(e.attempt);
  EXPECT_EQ(attempts, (std::vector<int>{1, 2, 3}));
}

TEST_F(PubSubGrpcE2eTest, DropAndUnimplementedGoToTheDeadLetterTopic) {
  std::string dropped = Publish("drop", {{"x", 1}});
  std::string unimplemented = Publish("unimplemented", {{"x", 2}});
  ASSERT_TRUE(Arrives("/dlq", dropped));
  ASSERT_TRUE(Arrives("/dlq", unimplemented));
  // Dropped once, not retried.
  EXPECT_EQ(WithId(app_->EventsOn("/drop"), dropped).size(), 1u);
  EXPECT_EQ(WithId(app_->EventsOn("/unimplemented"), unimplemented).size(), 1u);
}

TEST_F(PubSubGrpcE2eTest, BulkPublishDeliversEveryEntry) {
  for (bool alpha : {false, true}) {
    v1::BulkPublishRequest req;
    req.set_pubsub_name("pubsub");
    req.set_topic("bulk");
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
      v1::BulkPublishRequestEntry* entry = req.add_entries();
      std::string entry_id = StrCat(alpha ? "a" : "s", i);
      entry->set_entry_id(entry_id);
      entry->set_event(json({{"i", i}}).dump());
      entry->set_content_type("application/json");
      (*entry->mutable_metadata())["cloudevent.id"] = StrCat("bulk-", entry_id);
      ids.push_back(StrCat("bulk-", entry_id));
    }
    v1::BulkPublishResponse res;
    ::grpc::Status s = alpha ? stub_->BulkPublishEventAlpha1(Context().get(), req, &res)
                             : stub_->BulkPublishEvent(Context().get(), req, &res);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(res.failedentries_size(), 0);
    for (const std::string& id : ids) EXPECT_TRUE(Arrives("/bulk", id)) << id;
  }
}

TEST_F(PubSubGrpcE2eTest, BulkSubscriptionGetsBatchesThroughOnBulkTopicEvent) {
  v1::BulkPublishRequest req;
  req.set_pubsub_name("pubsub");
  req.set_topic("batched");
  for (const char* word : {"one", "two", "retry"}) {
    v1::BulkPublishRequestEntry* entry = req.add_entries();
    entry->set_entry_id(word);
    entry->set_event(json({{"w", word}}).dump());
    entry->set_content_type("application/json");
    (*entry->mutable_metadata())["cloudevent.id"] = StrCat("batched-", word);
  }
  v1::BulkPublishResponse res;
  ::grpc::Status s = stub_->BulkPublishEvent(Context().get(), req, &res);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Arrives("/batched", "batched-one"));
  ASSERT_TRUE(Arrives("/batched", "batched-two"));
  // The entry answered RETRY comes again in a later batch.
  ASSERT_TRUE(Arrives("/batched", "batched-retry", 2));
  for (const auto& e : app_->EventsOn("/batched")) {
    EXPECT_TRUE(e.bulk) << e.request.id();
    EXPECT_EQ(e.request.topic(), "batched");
    EXPECT_EQ(e.metadata.count("dapr-api-token"), 1u);
  }
  auto one = WithId(app_->EventsOn("/batched"), "batched-one");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(json::parse(one[0].request.data(), nullptr, false), json({{"w", "one"}}));
}

TEST_F(PubSubGrpcE2eTest, BadPublishRequestsGetDaprCodes) {
  google::protobuf::Empty res;
  v1::PublishEventRequest req;
  req.set_pubsub_name("nope");
  req.set_topic("t");
  ::grpc::Status s = stub_->PublishEvent(Context().get(), req, &res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ReasonOf(s), "DAPR_PUBSUB_NOT_FOUND");

  req.set_pubsub_name("pubsub");
  req.set_topic("");
  s = stub_->PublishEvent(Context().get(), req, &res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ReasonOf(s), "DAPR_PUBSUB_TOPIC_NAME_EMPTY");

  req.set_pubsub_name("");
  req.set_topic("t");
  s = stub_->PublishEvent(Context().get(), req, &res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ReasonOf(s), "DAPR_PUBSUB_NAME_EMPTY");

  req.set_pubsub_name("pubsub");
  (*req.mutable_metadata())["rawPayload"] = "maybe";
  s = stub_->PublishEvent(Context().get(), req, &res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ReasonOf(s), "DAPR_PUBSUB_METADATA_DESERIALIZATION");

  // A bulk entry without an id fails the whole request before anything is published.
  v1::BulkPublishRequest bulk;
  bulk.set_pubsub_name("pubsub");
  bulk.set_topic("bulk");
  bulk.add_entries()->set_event("x");
  v1::BulkPublishResponse bulk_res;
  s = stub_->BulkPublishEvent(Context().get(), bulk, &bulk_res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();

  bulk.set_pubsub_name("nope");
  bulk.mutable_entries(0)->set_entry_id("1");
  s = stub_->BulkPublishEvent(Context().get(), bulk, &bulk_res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ReasonOf(s), "DAPR_PUBSUB_NOT_FOUND");
}

// ---- SubscribeTopicEventsAlpha1 ----------------------------------------------------------------

using Stream = ::grpc::ClientReaderWriter<v1::SubscribeTopicEventsRequestAlpha1,
                                          v1::SubscribeTopicEventsResponseAlpha1>;

v1::SubscribeTopicEventsRequestAlpha1 Initial(const std::string& pubsub, const std::string& topic) {
  v1::SubscribeTopicEventsRequestAlpha1 req;
  req.mutable_initial_request()->set_pubsub_name(pubsub);
  req.mutable_initial_request()->set_topic(topic);
  return req;
}

v1::SubscribeTopicEventsRequestAlpha1 Processed(
    const std::string& id, v1::TopicEventResponse::TopicEventResponseStatus s) {
  v1::SubscribeTopicEventsRequestAlpha1 req;
  req.mutable_event_processed()->set_id(id);
  req.mutable_event_processed()->mutable_status()->set_status(s);
  return req;
}

TEST_F(PubSubGrpcE2eTest, StreamingSubscriptionReceivesEventsAndRetriesThem) {
  auto ctx = Context(milliseconds(15000));
  std::unique_ptr<Stream> stream = stub_->SubscribeTopicEventsAlpha1(ctx.get());
  ASSERT_TRUE(stream->Write(Initial("pubsub", "stream")));
  v1::SubscribeTopicEventsResponseAlpha1 msg;
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_initial_response()) << msg.DebugString();
  EXPECT_EQ(StreamingSubscriptions("stream"), 1u);

  std::string id = Publish("stream", {{"s", 1}});
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_event_message()) << msg.DebugString();
  EXPECT_EQ(msg.event_message().id(), id);
  EXPECT_EQ(msg.event_message().topic(), "stream");
  EXPECT_EQ(msg.event_message().pubsub_name(), "pubsub");
  EXPECT_EQ(json::parse(msg.event_message().data(), nullptr, false), json({{"s", 1}}));

  // RETRY: the same event comes again (the component's 20 ms inbound policy).
  ASSERT_TRUE(stream->Write(Processed(id, v1::TopicEventResponse::RETRY)));
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_event_message());
  EXPECT_EQ(msg.event_message().id(), id);
  ASSERT_TRUE(stream->Write(Processed(id, v1::TopicEventResponse::SUCCESS)));

  // A second event after the first was acknowledged.
  std::string next = Publish("stream", {{"s", 2}});
  ASSERT_TRUE(stream->Read(&msg));
  EXPECT_EQ(msg.event_message().id(), next);
  ASSERT_TRUE(stream->Write(Processed(next, v1::TopicEventResponse::SUCCESS)));

  // The client ends the stream: the subscription goes away, and the topic can be subscribed
  // again.
  ASSERT_TRUE(stream->WritesDone());
  while (stream->Read(&msg)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (StreamingSubscriptions("stream") != 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(milliseconds(5));
  }
  auto again_ctx = Context();
  auto again = stub_->SubscribeTopicEventsAlpha1(again_ctx.get());
  ASSERT_TRUE(again->Write(Initial("pubsub", "stream")));
  ASSERT_TRUE(again->Read(&msg));
  EXPECT_TRUE(msg.has_initial_response());
  again_ctx->TryCancel();
  while (again->Read(&msg)) {
  }
  again->Finish();
}

TEST_F(PubSubGrpcE2eTest, StreamingProtocolErrorsEndTheStream) {
  v1::SubscribeTopicEventsResponseAlpha1 msg;
  {
    // A second initial request.
    auto ctx = Context();
    auto stream = stub_->SubscribeTopicEventsAlpha1(ctx.get());
    ASSERT_TRUE(stream->Write(Initial("pubsub", "stream2")));
    ASSERT_TRUE(stream->Read(&msg));
    stream->Write(Initial("pubsub", "stream2"));
    while (stream->Read(&msg)) {
    }
    ::grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("initial_request"));
  }
  {
    // An acknowledgement for an event that was never sent.
    auto ctx = Context();
    auto stream = stub_->SubscribeTopicEventsAlpha1(ctx.get());
    ASSERT_TRUE(stream->Write(Initial("pubsub", "stream3")));
    ASSERT_TRUE(stream->Read(&msg));
    stream->Write(Processed("never-sent", v1::TopicEventResponse::SUCCESS));
    while (stream->Read(&msg)) {
    }
    ::grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("never-sent"));
  }
  {
    // Unknown pubsub, and a topic the app already subscribes to.
    for (const auto& [pubsub, topic, code] :
         std::vector<std::tuple<std::string, std::string, ::grpc::StatusCode>>{
             {"nope", "t", ::grpc::StatusCode::INVALID_ARGUMENT},
             {"pubsub", "orders", ::grpc::StatusCode::ALREADY_EXISTS}}) {
      auto ctx = Context();
      auto stream = stub_->SubscribeTopicEventsAlpha1(ctx.get());
      stream->Write(Initial(pubsub, topic));
      EXPECT_FALSE(stream->Read(&msg)) << msg.DebugString();
      EXPECT_EQ(stream->Finish().error_code(), code) << pubsub << " " << topic;
    }
  }
}

// ---- the gRPC app channel on its own ------------------------------------------------------------

TEST(GrpcAppChannelTest, InvokeHealthAndSubscriptionsAgainstTheApp) {
  auto app = GrpcTestApp::Start({.subscriptions_unimplemented = true});
  ASSERT_TRUE(app.ok()) << app.status();
  runtime::grpc::AppChannelConfig config;
  config.port = (*app)->port();
  config.app_api_token = "t0k";
  runtime::grpc::GrpcAppChannel channel(config);

  std::promise<absl::StatusOr<runtime::InvokeResponse>> invoked;
  runtime::InvokeRequest request;
  request.method = "echo/me";
  request.verb = "PUT";
  request.query = "a=1";
  request.data = "hi";
  request.content_type = "text/plain";
  request.headers = {{"x-custom", "v"}, {"Content-Type", "text/plain"}};
  channel.Invoke(
      request, [&](absl::StatusOr<runtime::InvokeResponse> r) { invoked.set_value(std::move(r)); });
  auto response = invoked.get_future().get();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->grpc_code, 0);
  EXPECT_EQ(response->http_status, 200);
  EXPECT_EQ(response->data, "echo/me:hi");
  EXPECT_EQ(response->content_type, "text/plain");
  EXPECT_THAT(response->headers,
              ::testing::Contains(std::pair<std::string, std::string>("x-echo", "echo/me")));
  auto calls = (*app)->Invocations();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].request.http_extension().verb(),
            ::dapr::proto::common::v1::HTTPExtension::PUT);
  EXPECT_EQ(calls[0].request.http_extension().querystring(), "a=1");
  EXPECT_EQ(calls[0].metadata["x-custom"], "v");
  EXPECT_EQ(calls[0].metadata["dapr-api-token"], "t0k");

  // An error status of the app is a response, not a transport failure.
  std::promise<absl::StatusOr<runtime::InvokeResponse>> failed;
  request.method = "fail";
  channel.Invoke(
      request, [&](absl::StatusOr<runtime::InvokeResponse> r) { failed.set_value(std::move(r)); });
  auto failure = failed.get_future().get();
  ASSERT_TRUE(failure.ok()) << failure.status();
  EXPECT_EQ(failure->grpc_code, static_cast<int>(::grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(failure->http_status, 404);
  EXPECT_EQ(failure->grpc_message, "no such method");

  std::promise<absl::Status> healthy;
  channel.CheckHealth([&](absl::Status s) { healthy.set_value(s); });
  EXPECT_TRUE(healthy.get_future().get().ok());
  EXPECT_EQ((*app)->health_checks(), 1);

  // UNIMPLEMENTED ListTopicSubscriptions: no subscriptions, not an error.
  std::promise<absl::StatusOr<std::vector<runtime::SubscriptionSpec>>> listed;
  channel.ListSubscriptions([&](absl::StatusOr<std::vector<runtime::SubscriptionSpec>> r) {
    listed.set_value(std::move(r));
  });
  auto specs = listed.get_future().get();
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_TRUE(specs->empty());
}

TEST(GrpcAppChannelTest, MaxConcurrencyLimitsTheEventsInTheApp) {
  auto app = GrpcTestApp::Start({});
  ASSERT_TRUE(app.ok()) << app.status();
  (*app)->SetPolicy(
      [](const GrpcTestApp::Event&) { return GrpcTestApp::Answer{.delay = milliseconds(30)}; });
  runtime::grpc::AppChannelConfig config;
  config.port = (*app)->port();
  config.max_concurrency = 2;
  runtime::grpc::GrpcAppChannel channel(config);
  constexpr int kEvents = 8;
  std::atomic<int> succeeded{0};
  std::atomic<int> done{0};
  std::promise<void> all;
  for (int i = 0; i < kEvents; ++i) {
    runtime::TopicEvent event;
    event.cloud_event = {{"id", StrCat("c", i)}, {"specversion", "1.0"}, {"data", "x"}};
    event.pubsub_name = "pubsub";
    event.topic = "t";
    event.path = "/c";
    channel.DeliverEvent(std::move(event), [&](absl::StatusOr<runtime::EventStatus> s) {
      if (s.ok() && *s == runtime::EventStatus::kSuccess) ++succeeded;
      if (++done == kEvents) all.set_value();
    });
  }
  ASSERT_EQ(all.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(succeeded.load(), kEvents);
  EXPECT_EQ((*app)->Events().size(), static_cast<size_t>(kEvents));
  EXPECT_EQ((*app)->max_concurrent(), 2);
}

TEST(GrpcAppChannelTest, AnAppThatIsNotListeningIsATransportError) {
  runtime::grpc::AppChannelConfig config;
  config.port = FreePort();
  runtime::grpc::GrpcAppChannel channel(config);
  std::promise<absl::StatusOr<runtime::InvokeResponse>> invoked;
  channel.Invoke(
      {}, [&](absl::StatusOr<runtime::InvokeResponse> r) { invoked.set_value(std::move(r)); });
  auto response = invoked.get_future().get();
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(MessageOf(response.status())),
              HasSubstr(StrCat("127.0.0.1:", config.port)));

  std::promise<absl::Status> healthy;
  channel.CheckHealth([&](absl::Status s) { healthy.set_value(s); });
  EXPECT_FALSE(healthy.get_future().get().ok());
}

}  // namespace
}  // namespace remora::testing
