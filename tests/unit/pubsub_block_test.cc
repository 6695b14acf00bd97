// The pub/sub building block over the real pubsub.in-memory broker and a scripted app channel:
// routing, dead-lettering, retries, drops, expiry, rawPayload, bulk entries, publish validation
// and, through a broker wrapper that records every ack, that the broker is acked only once the
// app answered (or the event is in the dead-letter topic).

#include "blocks/pubsub/pubsub_block.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "memory_pubsub.h"
#include "remora/components/common/context.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/asio.h"
#include "remora/runtime/errors.h"

namespace remora::runtime {
namespace {

namespace ps = components::pubsub;
namespace asio = boost::asio;
using nlohmann::json;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

bool HasCode(const absl::Status& s, errors::Code code) {
  errors::Code got;
  return errors::CodeOf(s, &got) && got == code;
}

template <typename Fn>
bool Eventually(Fn fn, milliseconds timeout = milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!fn()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

// Every ack the block gives the broker, by topic, in order.
struct AckLog {
  std::mutex mu;
  std::vector<std::pair<std::string, absl::Status>> acks;
  std::vector<absl::Status> For(const std::string& topic) {
    std::lock_guard lock(mu);
    std::vector<absl::Status> out;
    for (const auto& [t, s] : acks) {
      if (t == topic) out.push_back(s);
    }
    return out;
  }
};

// pubsub.in-memory with each handler's ack recorded on the way to the broker.
class RecordingPubSub : public ps::PubSub {
 public:
  RecordingPubSub(std::unique_ptr<ps::PubSub> inner, std::shared_ptr<AckLog> log)
      : inner_(std::move(inner)), log_(std::move(log)) {}
  std::vector<ps::Feature> Features() const override { return inner_->Features(); }
  void Publish(ps::PublishRequest request, DoneCallback done) override {
    inner_->Publish(std::move(request), std::move(done));
  }
  absl::StatusOr<std::unique_ptr<ps::Subscription>> Subscribe(ps::SubscribeRequest request,
                                                              ps::Handler handler) override {
    auto shared = std::make_shared<ps::Handler>(std::move(handler));
    return inner_->Subscribe(std::move(request), [shared, log = log_](ps::Message m, ps::Ack ack) {
      std::string topic = m.topic;
      (*shared)(std::move(m), [log, topic, ack = std::move(ack)](absl::Status s) mutable {
        {
          std::lock_guard lock(log->mu);
          log->acks.emplace_back(topic, s);
        }
        std::move(ack)(std::move(s));
      });
    });
  }

 private:
  std::unique_ptr<ps::PubSub> inner_;
  std::shared_ptr<AckLog> log_;
};

// The app, scripted: answers each event through `answer` (attempt counts deliveries of one event
// id to one path), or holds the answer when `hold` is set.
class FakeChannel : public AppChannel {
 public:
  std::function<absl::StatusOr<EventStatus>(const TopicEvent&, int attempt)> answer;
  std::vector<SubscriptionSpec> subscriptions;

  void ListSubscriptions(Callback<std::vector<SubscriptionSpec>> done) override {
    std::move(done)(subscriptions);
  }
  // The pub/sub block never invokes or probes the app.
  void Invoke(InvokeRequest, Callback<InvokeResponse> done) override {
    std::move(done)(absl::UnimplementedError("FakeChannel has no methods"));
  }
  void CheckHealth(DoneCallback done) override { std::move(done)(absl::OkStatus()); }
  void DeliverEvent(TopicEvent event, Callback<EventStatus> done) override {
    int attempt;
    {
      std::lock_guard lock(mu_);
      attempt = ++attempts_[event.path + " " + event.cloud_event.value("id", "")];
      events_.push_back(event);
      if (hold_) {
        held_.push_back(std::move(done));
        return;
      }
    }
    std::move(done)(answer ? answer(event, attempt) : EventStatus::kSuccess);
  }
  std::vector<TopicEvent> Events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::vector<TopicEvent> EventsOn(const std::string& path) {
    std::vector<TopicEvent> out;
    for (auto& e : Events()) {
      if (e.path == path) out.push_back(std::move(e));
    }
    return out;
  }
  void Hold() {
    std::lock_guard lock(mu_);
    hold_ = true;
  }
  void ReleaseAll(absl::StatusOr<EventStatus> status) {
    std::vector<Callback<EventStatus>> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
      hold_ = false;
    }
    for (auto& done : held) std::move(done)(status);
  }

 private:
  std::mutex mu_;
  bool hold_ = false;
  std::vector<Callback<EventStatus>> held_;
  std::vector<TopicEvent> events_;
  std::map<std::string, int> attempts_;
};

RetryPolicy Fast(int max_retries) {
  RetryPolicy p;
  p.kind = RetryPolicy::Kind::kConstant;
  p.duration = milliseconds(10);
  p.max_retries = max_retries;
  return p;
}

class PubSubBlockTest : public ::testing::Test {
 protected:
  PubSubBlockTest() : guard_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~PubSubBlockTest() override {
    block_.reset();
    guard_.reset();
    io_.stop();
    thread_.join();
  }

  void Make(std::map<std::string, std::string> component_metadata = {},
            RetryPolicy retry = Fast(3)) {
    PubSubBlock::Options options;
    options.app_id = "app";
    options.io = &io_;
    options.default_retry = retry;
    block_ = std::make_unique<PubSubBlock>(std::move(options));
    components::ComponentContext context;
    context.name = "pubsub";
    context.type = "pubsub.in-memory";
    context.io_context = &io_;
    auto inner = ps::memory::Create(context);
    ASSERT_TRUE(inner.ok()) << inner.status();
    block_->AddComponent(
        "pubsub", "pubsub.in-memory", "v1",
        PubSubBlock::PrepareMetadata(components::Metadata(std::move(component_metadata)), "app"),
        std::make_unique<RecordingPubSub>(*std::move(inner), acks_));
  }

  absl::Status Declare(std::string topic, std::vector<SubscriptionResource::Rule> rules,
                       std::string dead_letter = "",
                       std::map<std::string, std::string> metadata = {}) {
    SubscriptionResource sub;
    sub.name = topic + "-sub";
    sub.pubsub_name = "pubsub";
    sub.topic = std::move(topic);
    sub.rules = std::move(rules);
    sub.dead_letter_topic = std::move(dead_letter);
    sub.metadata = std::move(metadata);
    sub.source = {"subs.yaml", 1};
    return block_->AddDeclarativeSubscription(sub);
  }

  // Records what reaches `topic` through a streaming subscription (SUCCESS).
  std::shared_ptr<std::vector<TopicEvent>> Observe(const std::string& topic) {
    auto seen = std::make_shared<std::vector<TopicEvent>>();
    auto mu = std::make_shared<std::mutex>();
    SubscriptionSpec spec;
    spec.pubsub_name = "pubsub";
    spec.topic = topic;
    auto id = block_->AddStreamingSubscription(
        spec, [seen, mu](TopicEvent e, Callback<EventStatus> done) {
          {
            std::lock_guard lock(*mu);
            seen->push_back(std::move(e));
          }
          std::move(done)(EventStatus::kSuccess);
        });
    EXPECT_TRUE(id.ok()) << id.status();
    observed_mu_ = mu;
    return seen;
  }
  size_t Count(const std::shared_ptr<std::vector<TopicEvent>>& seen) {
    std::lock_guard lock(*observed_mu_);
    return seen->size();
  }

  absl::Status Publish(PublishEventRequest request) {
    std::promise<absl::Status> done;
    block_->Publish(std::move(request), [&](absl::Status s) { done.set_value(s); });
    return done.get_future().get();
  }
  absl::Status PublishJson(std::string topic, std::string data,
                           std::map<std::string, std::string> metadata = {}) {
    PublishEventRequest r;
    r.pubsub_name = "pubsub";
    r.topic = std::move(topic);
    r.data = std::move(data);
    r.content_type = "application/json";
    r.metadata = std::move(metadata);
    return Publish(std::move(r));
  }
  absl::StatusOr<BulkPublishEventResult> Bulk(BulkPublishEventRequest request) {
    std::promise<absl::StatusOr<BulkPublishEventResult>> done;
    block_->BulkPublish(std::move(request),
                        [&](absl::StatusOr<BulkPublishEventResult> r) { done.set_value(r); });
    return done.get_future().get();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  std::shared_ptr<AckLog> acks_ = std::make_shared<AckLog>();
  FakeChannel channel_;
  std::unique_ptr<PubSubBlock> block_;
  std::shared_ptr<std::mutex> observed_mu_;
};

TEST_F(PubSubBlockTest, RulesPickTheRouteInOrderAndTheDefaultCatchesTheRest) {
  Make();
  ASSERT_TRUE(Declare("orders", {{"event.type == \"order.created\"", "/created"},
                                 {"event.data.total > 100", "/big"},
                                 {"", "/orders"}})
                  .ok());
  block_->Start(&channel_);
  ASSERT_TRUE(
      PublishJson("orders", R"({"total": 500})", {{"cloudevent.type", "order.created"}}).ok());
  ASSERT_TRUE(PublishJson("orders", R"({"total": 500})").ok());
  ASSERT_TRUE(PublishJson("orders", R"({"total": 5})").ok());
  ASSERT_TRUE(Eventually([&] { return acks_->For("orders").size() == 3; }));
  EXPECT_EQ(channel_.EventsOn("/created").size(), 1u);
  ASSERT_EQ(channel_.EventsOn("/big").size(), 1u);
  EXPECT_EQ(channel_.EventsOn("/big")[0].cloud_event["data"]["total"], 500);
  EXPECT_EQ(channel_.EventsOn("/orders").size(), 1u);
  for (const auto& s : acks_->For("orders")) EXPECT_TRUE(s.ok()) << s;
  // The app sees the envelope daprd builds, addressed to this topic and pubsub.
  TopicEvent e = channel_.EventsOn("/orders")[0];
  EXPECT_EQ(e.cloud_event["topic"], "orders");
  EXPECT_EQ(e.cloud_event["pubsubname"], "pubsub");
  EXPECT_EQ(e.cloud_event["source"], "app");
  EXPECT_EQ(e.pubsub_name, "pubsub");
}

TEST_F(PubSubBlockTest, AnEventNoRuleMatchesIsDroppedToTheDeadLetterTopic) {
  Make();
  ASSERT_TRUE(Declare("orders", {{"event.type == \"wanted\"", "/wanted"}}, "dead").ok());
  block_->Start(&channel_);
  auto dead = Observe("dead");
  ASSERT_TRUE(PublishJson("orders", R"({"n":1})", {{"cloudevent.type", "other"}}).ok());
  ASSERT_TRUE(Eventually([&] { return Count(dead) == 1; }));
  EXPECT_EQ((*dead)[0].cloud_event["type"], "other");
  ASSERT_TRUE(Eventually([&] { return acks_->For("orders").size() == 1; }));
  EXPECT_TRUE(acks_->For("orders")[0].ok());
  EXPECT_TRUE(channel_.Events().empty());
}

TEST_F(PubSubBlockTest, RetryThenSuccessAcksOnceAfterTheSuccessfulAttempt) {
  Make();
  channel_.answer = [](const TopicEvent&, int attempt) -> absl::StatusOr<EventStatus> {
    if (attempt == 1) return EventStatus::kRetry;
    if (attempt == 2) return absl::UnavailableError("app down");
    return EventStatus::kSuccess;
  };
  ASSERT_TRUE(Declare("orders", {{"", "/orders"}}).ok());
  block_->Start(&channel_);
  ASSERT_TRUE(PublishJson("orders", "{}").ok());
  ASSERT_TRUE(Eventually([&] { return acks_->For("orders").size() == 1; }));
  EXPECT_TRUE(acks_->For("orders")[0].ok());
  EXPECT_EQ(channel_.Events().size(), 3u);
  EXPECT_EQ(block_->in_flight(), 0);
}

TEST_F(PubSubBlockTest, TheBrokerIsNotAckedWhileTheAppHasNotAnswered) {
  Make();
  channel_.Hold();
  ASSERT_TRUE(Declare("orders", {{"", "/orders"}}).ok());
  block_->Start(&channel_);
  ASSERT_TRUE(PublishJson("orders", "{}").ok());
  ASSERT_TRUE(Eventually([&] { return channel_.Events().size() == 1; }));
  EXPECT_TRUE(acks_->For("orders").empty());
  EXPECT_EQ(block_->in_flight(), 1);
  channel_.ReleaseAll(EventStatus::kSuccess);
  ASSERT_TRUE(Eventually([&] { return acks_->For("orders").size() == 1; }));
  EXPECT_TRUE(acks_->For("orders")[0].ok());
  EXPECT_EQ(block_->in_flight(), 0);
}

TEST_F(PubSubBlockTest, UsedUpRetriesWithoutDeadLetterTopicNackSoTheBrokerRedelivers) {
  Make({}, Fast(2));
  channel_.answer = [](const TopicEvent&, int) -> absl::StatusOr<EventStatus> {
    return absl::UnavailableError("app answered 500");
  };
  ASSERT_TRUE(Declare("orders", {{"", "/orders"}}).ok());
  block_->Start(&channel_);
  ASSERT_TRUE(PublishJson("orders", "{}").ok());
  ASSERT_TRUE(Eventually([&] { return !acks_->For("orders").empty(); }));
  EXPECT_FALSE(acks_->For("orders")[0].ok());
  EXPECT_GE(channel_.Events().size(), 3u);  // the first delivery and two retries
  // pubsub.in-memory redelivers a nacked message: the block tries again.
  ASSERT_TRUE(Eventually([&] { return channel_.Events().size() >= 4; }));
}

TEST_F(PubSubBlockTest, UsedUpRetriesGoToTheDeadLetterTopicAndOnlyThenAck) {
  Make({}, Fast(1));
  channel_.answer = [](const TopicEvent&, int) { return EventStatus::kRetry; };
  ASSERT_TRUE(Declare("orders", {{"", "/orders"}}, "dead").ok());
  block_->Start(&channel_);
  auto dead = Observe("dead");
  ASSERT_TRUE(PublishJson("orders", R"({"id":7})").ok());
  ASSERT_TRUE(Eventually([&] { return Count(dead) == 1; }));
  EXPECT_EQ((*dead)[0].cloud_event["data"]["id"], 7);
  ASSERT_TRUE(Eventually([&] { return acks_->For("orders").size() == 1; }));
  EXPECT_TRUE(acks_->For("orders")[0].ok());
  EXPECT_EQ(channel_.Events().size(), 2u);
}

TEST_F(PubSubBlockTest, DropAcksWithoutRetryAndFeedsTheDeadLetterTopic) {
  Make();
  channel_.answer = [](const TopicEvent& e, int) {
    return e.topic == "plain" || e.topic == "orders" ? EventStatus::kDrop : EventStatus::kSuccess;
  };
  ASSERT_TRUE(Declare("plain", {{"", "/plain"}}).ok());
  ASSERT_TRUE(Declare("orders", {{"", "/orders"}}, "dead").ok());
  block_->Start(&channel_);
  auto dead = Observe("dead");
  ASSERT_TRUE(PublishJson("plain", "{}").ok());
  ASSERT_TRUE(PublishJson("orders", "{}").ok());
  ASSERT_TRUE(Eventually([&] { return Count(dead) == 1; }));
  ASSERT_TRUE(Eventually(
      [&] { return acks_->For("plain").size() == 1 && acks_->For("orders").size() == 1; }));
  EXPECT_TRUE(acks_->For("plain")[0].ok());
  EXPECT_TRUE(acks_->For("orders")[0].ok());
  EXPECT_EQ(channel_.EventsOn("/plain").size(), 1u);
  EXPECT_EQ(channel_.EventsOn("/orders").size(), 1u);
}

TEST_F(PubSubBlockTest, ExpiredEventsAreDroppedBeforeDelivery) {
  Make();
  ASSERT_TRUE(Declare("orders", {{"", "/orders"}}).ok());
  block_->Start(&channel_);
  PublishEventRequest r;
  r.pubsub_name = "pubsub";
  r.topic = "orders";
  r.content_type = "application/cloudevents+json";
  r.data = R"({"id":"old","specversion":"1.0","type":"t","source":"s",)"
           R"("expiration":"2000-01-01T00:00:00Z","data":{}})";
  ASSERT_TRUE(Publish(r).ok());
  r.data = R"({"id":"fresh","specversion":"1.0","type":"t","source":"s","data":{}})";
  ASSERT_TRUE(Publish(r).ok());
  ASSERT_TRUE(Eventually([&] { return acks_->For("orders").size() == 2; }));
  ASSERT_EQ(channel_.Events().size(), 1u);
  EXPECT_EQ(channel_.Events()[0].cloud_event["id"], "fresh");
  // A ttl on publish writes `expiration` into the envelope (the in-memory broker has no TTL).
  ASSERT_TRUE(PublishJson("orders", "{}", {{"ttlInSeconds", "60"}}).ok());
  ASSERT_TRUE(Eventually([&] { return channel_.Events().size() == 2; }));
  EXPECT_TRUE(channel_.Events()[1].cloud_event.contains("expiration"));
}

TEST_F(PubSubBlockTest, RawPayloadPublishesBytesAndRawSubscriptionsWrapThem) {
  Make();
  ASSERT_TRUE(Declare("raw", {{"", "/raw"}}, "", {{"rawPayload", "true"}}).ok());
  ASSERT_TRUE(Declare("cloud", {{"", "/cloud"}}).ok());
  block_->Start(&channel_);
  const std::string bytes("\x00\x01hi\xff", 5);
  PublishEventRequest r;
  r.pubsub_name = "pubsub";
  r.topic = "raw";
  r.data = bytes;
  r.content_type = "application/octet-stream";
  r.metadata = {{"rawPayload", "true"}};
  ASSERT_TRUE(Publish(r).ok());
  ASSERT_TRUE(Eventually([&] { return channel_.EventsOn("/raw").size() == 1; }));
  const json e = channel_.EventsOn("/raw")[0].cloud_event;
  EXPECT_EQ(e["data_base64"], absl::Base64Escape(Sv(bytes)));
  EXPECT_EQ(e["datacontenttype"], "application/octet-stream");
  EXPECT_EQ(e["source"], "Dapr");

  // Without rawPayload on the subscription, bytes that are not a CloudEvent are not delivered:
  // nacked, so the broker keeps them.
  r.topic = "cloud";
  r.data = "not json";
  ASSERT_TRUE(Publish(r).ok());
  ASSERT_TRUE(Eventually([&] { return !acks_->For("cloud").empty(); }));
  EXPECT_FALSE(acks_->For("cloud")[0].ok());
  EXPECT_TRUE(channel_.EventsOn("/cloud").empty());

  r.metadata = {{"rawPayload", "maybe"}};
  EXPECT_TRUE(HasCode(Publish(r), errors::Code::kPubsubRequestMetadata));
}

TEST_F(PubSubBlockTest, BulkPublishChecksEntryIdsThenPublishesEachEntryInItsOwnEnvelope) {
  Make();
  ASSERT_TRUE(Declare("orders", {{"", "/orders"}}).ok());
  block_->Start(&channel_);
  BulkPublishEventRequest r;
  r.pubsub_name = "pubsub";
  r.topic = "orders";
  r.entries = {{"1", R"({"n":1})", "application/json", {}}, {"", "x", "text/plain", {}}};
  EXPECT_TRUE(HasCode(Bulk(r).status(), errors::Code::kPubsubMarshalEvents));
  r.entries = {{"1", R"({"n":1})", "application/json", {}}, {"1", "x", "text/plain", {}}};
  auto dup = Bulk(r);
  EXPECT_TRUE(HasCode(dup.status(), errors::Code::kPubsubMarshalEvents));
  EXPECT_THAT(MessageOf(dup.status()), HasSubstr("duplicated"));
  r.entries = {{"1", "{broken", "application/cloudevents+json", {}}};
  EXPECT_TRUE(HasCode(Bulk(r).status(), errors::Code::kPubsubCloudEventsSer));
  EXPECT_TRUE(channel_.Events().empty());

  r.entries = {{"a", R"({"n":1})", "application/json", {{"cloudevent.type", "first"}}},
               {"b", "hello", "text/plain", {}},
               {"c", R"({"n":3})", "application/json", {}}};
  r.metadata = {{"cloudevent.type", "bulk"}};
  auto result = Bulk(r);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->failed.empty());
  ASSERT_TRUE(Eventually([&] { return channel_.Events().size() == 3; }));
  std::set<std::string> types, ids;
  for (const auto& e : channel_.Events()) {
    types.insert(e.cloud_event["type"]);
    ids.insert(e.cloud_event["id"]);
  }
  EXPECT_EQ(types, (std::set<std::string>{"first", "bulk"}));  // entry metadata overrides
  EXPECT_EQ(ids.size(), 3u);
}

TEST_F(PubSubBlockTest, PublishValidationUsesDaprsCodes) {
  PubSubBlock::Options options;
  options.io = &io_;
  PubSubBlock empty(options);
  std::promise<absl::Status> p;
  empty.Publish({.pubsub_name = "pubsub", .topic = "t"}, [&](absl::Status s) { p.set_value(s); });
  EXPECT_TRUE(HasCode(p.get_future().get(), errors::Code::kPubsubNotConfigured));

  Make({{"allowedTopics", "orders, returns,app/x"},
        {"publishingScopes", "app=orders,app/x;other=returns"}});
  EXPECT_TRUE(HasCode(Publish({.pubsub_name = "", .topic = "t"}), errors::Code::kPubsubEmpty));
  EXPECT_TRUE(
      HasCode(Publish({.pubsub_name = "nope", .topic = "t"}), errors::Code::kPubsubNotFound));
  EXPECT_TRUE(
      HasCode(Publish({.pubsub_name = "pubsub", .topic = ""}), errors::Code::kTopicNameEmpty));
  // Not in allowedTopics, and not in this app's publishing scope.
  EXPECT_TRUE(HasCode(Publish({.pubsub_name = "pubsub", .topic = "other"}),
                      errors::Code::kPubsubForbidden));
  EXPECT_TRUE(HasCode(Publish({.pubsub_name = "pubsub", .topic = "returns"}),
                      errors::Code::kPubsubForbidden));
  EXPECT_TRUE(Publish({.pubsub_name = "pubsub", .topic = "orders"}).ok());
  EXPECT_TRUE(Publish({.pubsub_name = "pubsub", .topic = "app/x"}).ok());
  EXPECT_TRUE(HasCode(PublishJson("orders", "{}", {{"ttlInSeconds", "soon"}}),
                      errors::Code::kPubsubRequestMetadata));
}

TEST_F(PubSubBlockTest, DeclarativeSubscriptionsFailOnBadRulesAndSkipUnknownPubsubs) {
  Make({{"subscriptionScopes", "app=orders"}});
  absl::Status bad = Declare("orders", {{"event.type ==", "/x"}});
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(MessageOf(bad), HasSubstr("subs.yaml (document 1)"));
  absl::Status bad_raw = Declare("orders", {{"", "/x"}}, "", {{"rawPayload", "sometimes"}});
  EXPECT_THAT(MessageOf(bad_raw), HasSubstr("subs.yaml (document 1)"));

  SubscriptionResource other;
  other.pubsub_name = "elsewhere";
  other.topic = "t";
  other.rules = {{"", "/t"}};
  EXPECT_TRUE(block_->AddDeclarativeSubscription(other).ok());
  EXPECT_TRUE(Declare("forbidden", {{"", "/f"}}).ok());  // subscriptionScopes: skipped
  EXPECT_TRUE(Declare("orders", {{"", "/orders"}}).ok());
  EXPECT_TRUE(Declare("orders", {{"", "/again"}}).ok());  // duplicate: skipped
  auto subs = block_->Subscriptions();
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0].topic, "orders");
  EXPECT_EQ(subs[0].type, SubscriptionSpec::Type::kDeclarative);
}

TEST_F(PubSubBlockTest, ProgrammaticSubscriptionsLoadFromTheAppAndReachTheListener) {
  Make();
  ASSERT_TRUE(Declare("orders", {{"", "/orders"}}).ok());
  SubscriptionSpec mine;
  mine.pubsub_name = "pubsub";
  mine.topic = "mine";
  mine.rules = {{"", "/mine"}};
  SubscriptionSpec duplicate = mine;
  duplicate.topic = "orders";
  SubscriptionSpec broken = mine;
  broken.topic = "broken";
  broken.rules = {{"size(event.data) > 1", "/b"}};
  channel_.subscriptions = {mine, duplicate, broken};
  std::mutex mu;
  std::vector<std::vector<SubscriptionSpec>> seen;
  block_->SetSubscriptionsListener([&](std::vector<SubscriptionSpec> subs) {
    std::lock_guard lock(mu);
    seen.push_back(std::move(subs));
  });
  block_->Start(&channel_);
  ASSERT_TRUE(Eventually([&] { return block_->programmatic_loaded(); }));
  std::vector<std::string> topics;
  for (const auto& s : block_->Subscriptions()) {
    topics.push_back(s.topic + ":" + std::string(SubscriptionTypeName(s.type)));
  }
  EXPECT_THAT(topics, ElementsAre("orders:DECLARATIVE", "mine:PROGRAMMATIC"));
  {
    std::lock_guard lock(mu);
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back().size(), 2u);
  }
  ASSERT_TRUE(PublishJson("mine", "{}").ok());
  ASSERT_TRUE(Eventually([&] { return channel_.EventsOn("/mine").size() == 1; }));
}

TEST_F(PubSubBlockTest, StreamingSubscriptionsAreExclusivePerTopicAndStopOnRemove) {
  Make();
  block_->Start(nullptr);
  std::atomic<int> calls{0};
  SubscriptionSpec spec;
  spec.pubsub_name = "pubsub";
  spec.topic = "s";
  auto id = block_->AddStreamingSubscription(spec, [&](TopicEvent, Callback<EventStatus> done) {
    ++calls;
    std::move(done)(EventStatus::kSuccess);
  });
  ASSERT_TRUE(id.ok()) << id.status();
  auto again = block_->AddStreamingSubscription(spec, [](TopicEvent, Callback<EventStatus>) {});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  spec.pubsub_name = "nope";
  EXPECT_TRUE(HasCode(
      block_->AddStreamingSubscription(spec, [](TopicEvent, Callback<EventStatus>) {}).status(),
      errors::Code::kPubsubNotFound));
  ASSERT_TRUE(PublishJson("s", "{}").ok());
  ASSERT_TRUE(Eventually([&] { return calls.load() == 1; }));
  EXPECT_EQ(block_->Subscriptions().size(), 1u);
  block_->RemoveStreamingSubscription(*id);
  EXPECT_TRUE(block_->Subscriptions().empty());
  // The topic is free again; what is published now reaches the new subscriber, not the old one.
  std::atomic<int> later{0};
  spec.pubsub_name = "pubsub";
  auto next = block_->AddStreamingSubscription(spec, [&](TopicEvent, Callback<EventStatus> done) {
    ++later;
    std::move(done)(EventStatus::kSuccess);
  });
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(PublishJson("s", "{}").ok());
  ASSERT_TRUE(Eventually([&] { return later.load() == 1; }));
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(PubSubBlockTest, ShutdownNacksMessagesWaitingForARetry) {
  RetryPolicy slow = Fast(5);
  slow.duration = std::chrono::hours(1);
  Make({}, slow);
  channel_.answer = [](const TopicEvent&, int) { return EventStatus::kRetry; };
  ASSERT_TRUE(Declare("orders", {{"", "/orders"}}).ok());
  block_->Start(&channel_);
  ASSERT_TRUE(PublishJson("orders", "{}").ok());
  ASSERT_TRUE(Eventually([&] { return channel_.Events().size() == 1; }));
  ASSERT_TRUE(Eventually([&] { return block_->in_flight() == 1; }));
  block_->Shutdown(std::chrono::steady_clock::now() + std::chrono::seconds(5));
  EXPECT_EQ(block_->in_flight(), 0);
  ASSERT_EQ(acks_->For("orders").size(), 1u);
  EXPECT_FALSE(acks_->For("orders")[0].ok());
  // Publishing still works after the subscriptions stopped.
  EXPECT_TRUE(PublishJson("orders", "{}").ok());
}

TEST(RetryPolicyTest, ConstantAndExponentialDelays) {
  RetryPolicy constant;
  constant.duration = milliseconds(250);
  constant.max_retries = 2;
  EXPECT_EQ(constant.Delay(0, 0.9), milliseconds(250));
  EXPECT_EQ(constant.Delay(5, 0.1), milliseconds(250));
  EXPECT_FALSE(constant.Exhausted(1));
  EXPECT_TRUE(constant.Exhausted(2));
  RetryPolicy forever;
  EXPECT_FALSE(forever.Exhausted(1000000));

  RetryPolicy exp;
  exp.kind = RetryPolicy::Kind::kExponential;
  exp.initial_interval = milliseconds(100);
  exp.multiplier = 2;
  exp.max_interval = milliseconds(1000);
  exp.randomization = 0.5;
  EXPECT_EQ(exp.Delay(0, 0.5), milliseconds(100));  // the middle of the jitter window
  EXPECT_EQ(exp.Delay(2, 0.5), milliseconds(400));
  EXPECT_EQ(exp.Delay(10, 0.5), milliseconds(1000));  // capped
  EXPECT_EQ(exp.Delay(0, 0.0), milliseconds(50));
  EXPECT_EQ(PubSubBlock::DefaultRetryPolicy().Delay(0, 0.3), std::chrono::seconds(1));
  EXPECT_EQ(PubSubBlock::DefaultRetryPolicy().max_retries, 3);
}

TEST(PrepareMetadataTest, DefaultsConsumerIdToTheAppIdAndMarksRuntimeKeysUsed) {
  components::Metadata in(
      std::map<std::string, std::string>{{"publishingScopes", "a=b"}, {"redisHost", "h"}});
  components::Metadata out = PubSubBlock::PrepareMetadata(in, "orders");
  EXPECT_EQ(out.GetString("consumerID"), "orders");
  EXPECT_THAT(out.Unused(), ElementsAre("redisHost"));
  components::Metadata kept = PubSubBlock::PrepareMetadata(
      components::Metadata(std::map<std::string, std::string>{{"consumerid", "group"}}), "orders");
  EXPECT_EQ(kept.GetString("consumerID"), "group");
}

}  // namespace
}  // namespace remora::runtime
