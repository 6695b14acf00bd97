#include "tests/conformance/pubsub/pubsub_conformance.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include <gmock/gmock.h>

#include "remora/components/common/strings.h"

namespace remora::conformance::pubsub {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using ::testing::Contains;
using ::testing::Each;
using ::testing::IsEmpty;
using ::testing::Pair;

// Unique per process run, so names never collide with an earlier run against the same backend.
const std::string& RunId() {
  static const std::string id = [] {
    std::random_device rd;
    uint64_t v = (uint64_t{rd()} << 32) ^ rd();
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 10; ++i) out.push_back(kHex[(v >> (4 * i)) & 0xF]);
    return out;
  }();
  return id;
}

// Waits for an asynchronous call's callback (which may run inline or on any thread) for at most
// `timeout`; DEADLINE_EXCEEDED otherwise. The callback may still run later without harm.
template <typename R>
R Await(absl::AnyInvocable<void(absl::AnyInvocable<void(R) &&>)> start, milliseconds timeout,
        CallLog& log, std::string what) {
  struct Slot {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<R> result;
  };
  auto slot = std::make_shared<Slot>();
  std::shared_ptr<CallLog::Entry> entry = log.Add(std::move(what));
  start([slot, entry](R result) {
    {
      std::lock_guard lock(entry->mu);
      ++entry->calls;
    }
    std::lock_guard lock(slot->mu);
    if (!slot->result) slot->result.emplace(std::move(result));
    slot->cv.notify_all();
  });
  std::unique_lock lock(slot->mu);
  if (!slot->cv.wait_for(lock, timeout, [&] { return slot->result.has_value(); })) {
    return R(absl::DeadlineExceededError("the broker did not complete the call in time"));
  }
  return std::move(*slot->result);
}

std::string BinaryPayload() {
  std::string out;
  for (int round = 0; round < 4; ++round) {
    for (int c = 0; c < 256; ++c) out.push_back(static_cast<char>(c));
  }
  return out;
}

}  // namespace

// ---- Inbox ----

Inbox::~Inbox() {
  std::vector<cp::Ack> held = TakeHeld();  // destroyed outside the lock: brokers may post work
}

cp::Handler Inbox::Handler() {
  return [this](cp::Message message, cp::Ack ack) {
    int delivery;
    {
      std::lock_guard lock(mu_);
      delivery = ++counts_[message.data];
    }
    const Action action = policy_ ? policy_(message, delivery) : Action::kAck;
    {
      std::lock_guard lock(mu_);
      messages_.push_back(message);
      if (action == Action::kHold) held_.push_back(std::move(ack));
      cv_.notify_all();
    }
    if (action == Action::kAck) std::move(ack)(absl::OkStatus());
    if (action == Action::kFail) {
      std::move(ack)(absl::UnavailableError("conformance: the handler fails on purpose"));
    }
  };
}

std::vector<cp::Message> Inbox::Messages() const {
  std::lock_guard lock(mu_);
  return messages_;
}

size_t Inbox::Size() const {
  std::lock_guard lock(mu_);
  return messages_.size();
}

int Inbox::CountLocked(const std::string& data) const {
  auto it = counts_.find(data);
  return it == counts_.end() ? 0 : it->second;
}

int Inbox::Count(const std::string& data) const {
  std::lock_guard lock(mu_);
  return CountLocked(data);
}

std::set<std::string> Inbox::Distinct() const {
  std::lock_guard lock(mu_);
  std::set<std::string> out;
  for (const auto& [data, n] : counts_) out.insert(data);
  return out;
}

int Inbox::Duplicates() const {
  std::lock_guard lock(mu_);
  int dups = 0;
  for (const auto& [data, n] : counts_) dups += n - 1;
  return dups;
}

bool Inbox::WaitUntil(const std::function<bool(const Inbox&)>& done, milliseconds timeout) const {
  const Clock::time_point deadline = Clock::now() + timeout;
  // `done` uses the public (locking) readers, so evaluate it unlocked and re-check after every
  // delivery; the short wait bound covers a delivery between the check and the wait.
  while (true) {
    if (done(*this)) return true;
    std::unique_lock lock(mu_);
    const size_t seen = messages_.size();
    if (Clock::now() >= deadline) break;
    cv_.wait_until(lock, std::min(deadline, Clock::now() + milliseconds(50)),
                   [&] { return messages_.size() != seen; });
  }
  return done(*this);
}

bool Inbox::WaitForData(const std::string& data, int deliveries, milliseconds timeout) const {
  return WaitUntil([&](const Inbox& inbox) { return inbox.Count(data) >= deliveries; }, timeout);
}

bool Inbox::WaitForDistinct(size_t distinct, milliseconds timeout) const {
  return WaitUntil([&](const Inbox& inbox) { return inbox.Distinct().size() >= distinct; },
                   timeout);
}

std::vector<cp::Ack> Inbox::TakeHeld() {
  std::lock_guard lock(mu_);
  return std::exchange(held_, {});
}

// ---- CallLog ----

std::shared_ptr<CallLog::Entry> CallLog::Add(std::string what) {
  auto entry = std::make_shared<Entry>();
  entry->what = std::move(what);
  std::lock_guard lock(mu_);
  entries_.push_back(entry);
  return entry;
}

std::vector<std::string> CallLog::Problems() const {
  std::vector<std::string> problems;
  std::lock_guard lock(mu_);
  for (const auto& entry : entries_) {
    std::lock_guard entry_lock(entry->mu);
    if (entry->calls != 1) {
      problems.push_back(StrCat(entry->what, ": callback ran ", entry->calls, " times"));
    }
  }
  return problems;
}

// ---- fixture ----

void PubSubConformanceTest::SetUp() {
  std::string test_name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  // "Name/Param": keep only the test's own name.
  if (size_t slash = test_name.find('/'); slash != std::string::npos) {
    test_name = test_name.substr(0, slash);
  }
  prefix_ = StrCat("conf-", RunId(), "-", harness().name, "-", test_name, "-");
}

void PubSubConformanceTest::TearDown() {
  components_.clear();
  for (const std::string& problem : calls_.Problems()) ADD_FAILURE() << problem;
}

std::string PubSubConformanceTest::Topic(const std::string& name) {
  std::string topic = StrCat(prefix_, name);
  if (harness().create_topic) {
    absl::Status created = harness().create_topic(topic);
    EXPECT_TRUE(created.ok()) << "create_topic " << topic << ": " << created;
  }
  return topic;
}

std::string PubSubConformanceTest::Group(const std::string& label) const {
  return StrCat(prefix_, "g-", label);
}

cp::PubSub* PubSubConformanceTest::NewComponent(const std::string& group_label) {
  std::map<std::string, std::string> metadata = harness().metadata;
  if (caps().shared_backend) {
    if (harness().set_group) {
      harness().set_group(metadata, Group(group_label));
    } else {
      metadata["consumerID"] = Group(group_label);
    }
  }
  components::ComponentContext context;
  context.name = "pubsub";
  context.type = harness().type;
  context.version = "v1";
  context.app_id = "conformance";
  context.metadata = components::Metadata(metadata);
  if (harness().prepare) {
    absl::Status prepared = harness().prepare(context);
    if (!prepared.ok()) {
      ADD_FAILURE() << "harness prepare: " << prepared;
      return nullptr;
    }
  }
  absl::StatusOr<std::unique_ptr<cp::PubSub>> pubsub = harness().factory(context);
  if (!pubsub.ok() || *pubsub == nullptr) {
    ADD_FAILURE() << "factory: " << pubsub.status();
    return nullptr;
  }
  components_.push_back(*std::move(pubsub));
  return components_.back().get();
}

absl::Status PubSubConformanceTest::Publish(cp::PubSub& pubsub, const std::string& topic,
                                            std::string data, cp::Metadata metadata,
                                            std::string content_type) {
  cp::PublishRequest request;
  request.topic = topic;
  request.data = std::move(data);
  request.metadata = std::move(metadata);
  request.content_type = std::move(content_type);
  return Await<absl::Status>(
      [&](auto done) { pubsub.Publish(std::move(request), std::move(done)); },
      harness().call_timeout, calls_, StrCat("Publish to ", topic));
}

absl::StatusOr<cp::BulkPublishResult> PubSubConformanceTest::BulkPublish(
    cp::PubSub& pubsub, std::vector<cp::BulkPublishEntry> entries) {
  return Await<absl::StatusOr<cp::BulkPublishResult>>(
      [&](auto done) { pubsub.BulkPublish(std::move(entries), std::move(done)); },
      harness().call_timeout, calls_, "BulkPublish");
}

void PubSubConformanceTest::PublishMany(cp::PubSub& pubsub, const std::string& topic,
                                        const std::string& prefix, int count) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int pending = 0;
    std::vector<std::string> errors;
  };
  auto state = std::make_shared<State>();
  state->pending = count;
  for (int i = 0; i < count; ++i) {
    cp::PublishRequest request;
    request.topic = topic;
    request.data = StrCat(prefix, i);
    std::shared_ptr<CallLog::Entry> entry = calls_.Add(StrCat("Publish ", request.data));
    pubsub.Publish(std::move(request), [state, entry](absl::Status s) {
      {
        std::lock_guard lock(entry->mu);
        ++entry->calls;
      }
      std::lock_guard lock(state->mu);
      if (!s.ok()) state->errors.push_back(s.ToString());
      --state->pending;
      state->cv.notify_all();
    });
  }
  std::unique_lock lock(state->mu);
  ASSERT_TRUE(state->cv.wait_for(lock, harness().call_timeout + milliseconds(10 * count),
                                 [&] { return state->pending <= 0; }))
      << state->pending << " of " << count << " publishes did not complete";
  EXPECT_THAT(state->errors, IsEmpty());
}

std::unique_ptr<cp::Subscription> PubSubConformanceTest::Subscribe(cp::PubSub& pubsub,
                                                                   const std::string& topic,
                                                                   Inbox& inbox) {
  cp::SubscribeRequest request;
  request.topic = topic;
  absl::StatusOr<std::unique_ptr<cp::Subscription>> sub =
      pubsub.Subscribe(std::move(request), inbox.Handler());
  if (!sub.ok() || *sub == nullptr) {
    ADD_FAILURE() << "Subscribe " << topic << ": " << sub.status();
    return nullptr;
  }
  return *std::move(sub);
}

// ---- the suite ----

TEST_P(PubSubConformanceTest, FeaturesMatchDeclaredCapabilities) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  EXPECT_EQ(pubsub->HasFeature(cp::Feature::kSubscribeWildcards), caps().wildcards);
  EXPECT_EQ(pubsub->HasFeature(cp::Feature::kBulkPublish), caps().bulk_publish_feature);
}

TEST_P(PubSubConformanceTest, HealthyOnceTheBackendAnswers) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  ASSERT_TRUE(Publish(*pubsub, Topic("health"), "ping").ok());
  const Clock::time_point deadline = Clock::now() + harness().call_timeout;
  absl::Status health = pubsub->Health();
  while (!health.ok() && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));  // poll interval
    health = pubsub->Health();
  }
  EXPECT_TRUE(health.ok()) << health;
}

TEST_P(PubSubConformanceTest, EmptyTopicIsRejected) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  absl::Status s = Publish(*pubsub, "", "data");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  Inbox inbox;
  cp::SubscribeRequest request;
  absl::StatusOr<std::unique_ptr<cp::Subscription>> sub =
      pubsub->Subscribe(std::move(request), inbox.Handler());
  EXPECT_FALSE(sub.ok());
}

TEST_P(PubSubConformanceTest, RoundTripKeepsDataTopicAndMetadata) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Topic("roundtrip");
  Inbox inbox;
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_NE(sub, nullptr);

  const std::string data = R"({"specversion":"1.0","id":"1","data":{"order":42}})";
  const cp::Metadata metadata = {
      {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
      {"note", "héllo, wörld"},
      {"empty", ""}};
  ASSERT_TRUE(Publish(*pubsub, topic, data, metadata, "application/cloudevents+json").ok());
  ASSERT_TRUE(inbox.WaitForData(data, 1, harness().delivery_timeout)) << "not delivered";

  const cp::Message got = inbox.Messages().front();
  EXPECT_EQ(got.topic, topic);
  EXPECT_EQ(got.data, data);
  if (caps().metadata) {
    for (const auto& [key, value] : metadata) {
      EXPECT_THAT(got.metadata, Contains(Pair(key, value))) << key;
    }
  }
  if (caps().content_type) {
    EXPECT_EQ(got.content_type, "application/cloudevents+json");
  }
}

TEST_P(PubSubConformanceTest, BinaryEmptyAndLargePayloadsArriveIntact) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Topic("binary");
  Inbox inbox;
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_NE(sub, nullptr);

  const std::string binary = BinaryPayload();
  std::string large(512 * 1024, '\0');
  for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>((i * 7919) % 251);
  ASSERT_TRUE(Publish(*pubsub, topic, binary, {}, "application/octet-stream").ok());
  ASSERT_TRUE(Publish(*pubsub, topic, "", {}, "text/plain").ok());
  ASSERT_TRUE(Publish(*pubsub, topic, large, {}, "application/octet-stream").ok());

  EXPECT_TRUE(inbox.WaitForData(binary, 1, harness().delivery_timeout)) << "binary";
  EXPECT_TRUE(inbox.WaitForData("", 1, harness().delivery_timeout)) << "empty";
  EXPECT_TRUE(inbox.WaitForData(large, 1, harness().delivery_timeout)) << "large";
  EXPECT_EQ(inbox.Size(), 3u);
}

TEST_P(PubSubConformanceTest, ManyMessagesAreAllDeliveredOnce) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Topic("many");
  Inbox inbox;
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_NE(sub, nullptr);

  const int n = harness().many_messages;
  PublishMany(*pubsub, topic, "m-", n);
  EXPECT_TRUE(inbox.WaitForDistinct(n, harness().delivery_timeout))
      << inbox.Distinct().size() << " of " << n << " delivered";
  EXPECT_EQ(inbox.Duplicates(), 0) << "duplicates although every ack was OK";
}

TEST_P(PubSubConformanceTest, ConcurrentPublishersLoseNothing) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Topic("concurrent");
  Inbox inbox;
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_NE(sub, nullptr);

  constexpr int kThreads = 4;
  const int per_thread = std::max(1, harness().many_messages / kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        absl::Status s = Publish(*pubsub, topic, StrCat("t", t, "-", i));
        if (!s.ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(inbox.WaitForDistinct(kThreads * per_thread, harness().delivery_timeout))
      << inbox.Distinct().size() << " of " << kThreads * per_thread << " delivered";
}

TEST_P(PubSubConformanceTest, EverySubscriberGetsEveryMessage) {
  // In-memory: two subscriptions of one component. Brokers with a shared backend: two
  // components, each in a consumer group of its own (two different apps).
  cp::PubSub* first = NewComponent("a");
  ASSERT_NE(first, nullptr);
  cp::PubSub* second = caps().shared_backend ? NewComponent("b") : first;
  ASSERT_NE(second, nullptr);
  const std::string topic = Topic("fanout");
  Inbox a, b;
  auto sub_a = Subscribe(*first, topic, a);
  auto sub_b = Subscribe(*second, topic, b);
  ASSERT_NE(sub_a, nullptr);
  ASSERT_NE(sub_b, nullptr);

  constexpr int kCount = 50;
  PublishMany(*first, topic, "f-", kCount);
  EXPECT_TRUE(a.WaitForDistinct(kCount, harness().delivery_timeout)) << a.Distinct().size();
  EXPECT_TRUE(b.WaitForDistinct(kCount, harness().delivery_timeout)) << b.Distinct().size();
}

TEST_P(PubSubConformanceTest, SubscribersInOneGroupShareTheMessages) {
  if (!caps().consumer_groups) GTEST_SKIP() << "no consumer groups";
  // Two sidecars of one app: two components in the same group.
  cp::PubSub* first = NewComponent("shared");
  cp::PubSub* second = NewComponent("shared");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const std::string topic = Topic("shared");
  Inbox a, b;
  auto sub_a = Subscribe(*first, topic, a);
  auto sub_b = Subscribe(*second, topic, b);
  ASSERT_NE(sub_a, nullptr);
  ASSERT_NE(sub_b, nullptr);

  constexpr int kCount = 200;
  PublishMany(*first, topic, "s-", kCount);
  auto union_size = [&] {
    std::set<std::string> all = a.Distinct();
    std::set<std::string> more = b.Distinct();
    all.insert(more.begin(), more.end());
    return all.size();
  };
  const Clock::time_point deadline = Clock::now() + harness().delivery_timeout;
  while (union_size() < kCount && Clock::now() < deadline) {
    a.WaitUntil([&](const Inbox&) { return union_size() >= kCount; }, milliseconds(100));
  }
  EXPECT_EQ(union_size(), static_cast<size_t>(kCount)) << "the group as a whole lost messages";
  // Each message went to one member of the group. A rebalance may repeat a few, but not half.
  const size_t repeats = a.Size() + b.Size() - union_size();
  EXPECT_LT(repeats, static_cast<size_t>(kCount / 2))
      << "members of one group each got the messages, as if in different groups";
}

TEST_P(PubSubConformanceTest, ErrorAckRedeliversTheMessage) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Topic("retry");
  Inbox inbox([](const cp::Message& m, int delivery) {
    return m.data == "fail-once" && delivery == 1 ? Inbox::Action::kFail : Inbox::Action::kAck;
  });
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_NE(sub, nullptr);

  ASSERT_TRUE(Publish(*pubsub, topic, "fail-once").ok());
  ASSERT_TRUE(Publish(*pubsub, topic, "fine").ok());
  EXPECT_TRUE(inbox.WaitForData("fine", 1, harness().delivery_timeout));
  EXPECT_TRUE(
      inbox.WaitForData("fail-once", 2, harness().delivery_timeout + harness().redelivery_timeout))
      << "an error ack must bring the message back; deliveries: " << inbox.Count("fail-once");
  const std::vector<cp::Message> messages = inbox.Messages();
  for (const cp::Message& m : messages) EXPECT_EQ(m.topic, topic);
}

TEST_P(PubSubConformanceTest, RepeatedErrorAcksKeepRedelivering) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Topic("retry3");
  Inbox inbox([](const cp::Message&, int delivery) {
    return delivery <= 3 ? Inbox::Action::kFail : Inbox::Action::kAck;
  });
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_NE(sub, nullptr);

  ASSERT_TRUE(Publish(*pubsub, topic, "stubborn").ok());
  EXPECT_TRUE(inbox.WaitForData("stubborn", 4,
                                harness().delivery_timeout + 3 * harness().redelivery_timeout))
      << "deliveries: " << inbox.Count("stubborn");
}

TEST_P(PubSubConformanceTest, AcksMayComeLateOutOfOrderAndFromOtherThreads) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Topic("late-acks");
  Inbox inbox([](const cp::Message&, int) { return Inbox::Action::kHold; });
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_NE(sub, nullptr);

  constexpr int kCount = 40;
  PublishMany(*pubsub, topic, "late-", kCount);
  // The broker may hold back deliveries until earlier ones are acked (a concurrency limit, a
  // partition's order): ack whatever arrived, newest first, from other threads, until all came.
  const Clock::time_point deadline = Clock::now() + harness().delivery_timeout;
  int acked = 0;
  while (inbox.Distinct().size() < kCount && Clock::now() < deadline) {
    inbox.WaitUntil([&](const Inbox& i) { return static_cast<int>(i.Size()) > acked; },
                    milliseconds(200));
    std::vector<cp::Ack> held = inbox.TakeHeld();
    std::reverse(held.begin(), held.end());
    acked += static_cast<int>(held.size());
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&held, t] {
        for (size_t i = t; i < held.size(); i += 3) std::move(held[i])(absl::OkStatus());
      });
    }
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(inbox.Distinct().size(), static_cast<size_t>(kCount));
}

TEST_P(PubSubConformanceTest, UnackedMessageSurvivesItsSubscription) {
  if (!caps().durable) GTEST_SKIP() << "not durable";
  const std::string topic = Topic("durable");
  Inbox first_inbox([](const cp::Message&, int) { return Inbox::Action::kHold; });
  {
    cp::PubSub* first = NewComponent("durable");
    ASSERT_NE(first, nullptr);
    auto sub = Subscribe(*first, topic, first_inbox);
    ASSERT_NE(sub, nullptr);
    ASSERT_TRUE(Publish(*first, topic, "survivor").ok());
    ASSERT_TRUE(first_inbox.WaitForData("survivor", 1, harness().delivery_timeout));
    // The subscription goes away (a sidecar stops) with the ack still held, never called.
  }
  std::vector<cp::Ack> never_called = first_inbox.TakeHeld();

  cp::PubSub* second = NewComponent("durable");
  ASSERT_NE(second, nullptr);
  Inbox second_inbox;
  auto sub = Subscribe(*second, topic, second_inbox);
  ASSERT_NE(sub, nullptr);
  ASSERT_TRUE(Publish(*second, topic, "after-restart").ok());
  EXPECT_TRUE(second_inbox.WaitForData("after-restart", 1, harness().delivery_timeout));
  EXPECT_TRUE(second_inbox.WaitForData("survivor", 1,
                                       harness().delivery_timeout + harness().redelivery_timeout))
      << "the unacked message was lost with its subscription";
}

TEST_P(PubSubConformanceTest, AckAfterTheSubscriptionIsGoneIsHarmless) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Topic("orphan-acks");
  Inbox inbox([](const cp::Message&, int) { return Inbox::Action::kHold; });
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_NE(sub, nullptr);
  ASSERT_TRUE(Publish(*pubsub, topic, "a").ok());
  ASSERT_TRUE(Publish(*pubsub, topic, "b").ok());
  ASSERT_TRUE(
      inbox.WaitUntil([](const Inbox& i) { return i.Size() >= 1; }, harness().delivery_timeout));
  sub.reset();
  std::vector<cp::Ack> held = inbox.TakeHeld();
  std::thread late([&held] {
    for (size_t i = 0; i < held.size(); ++i) {
      std::move(held[i])(i % 2 == 0 ? absl::OkStatus() : absl::InternalError("late failure"));
    }
  });
  late.join();

  // The component still works.
  const std::string next = Topic("orphan-acks-next");
  Inbox next_inbox;
  auto next_sub = Subscribe(*pubsub, next, next_inbox);
  ASSERT_NE(next_sub, nullptr);
  ASSERT_TRUE(Publish(*pubsub, next, "still-working").ok());
  EXPECT_TRUE(next_inbox.WaitForData("still-working", 1, harness().delivery_timeout));
}

TEST_P(PubSubConformanceTest, DestroyingTheSubscriptionStopsTheHandler) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Topic("stop");
  struct State {
    std::atomic<bool> destroyed{false};
    std::atomic<int> running{0};
    std::atomic<int> delivered{0};
    std::atomic<int> after_destroy{0};
  };
  auto state = std::make_shared<State>();
  cp::SubscribeRequest request;
  request.topic = topic;
  auto sub = pubsub->Subscribe(std::move(request), [state](cp::Message, cp::Ack ack) {
    ++state->running;
    if (state->destroyed) ++state->after_destroy;
    ++state->delivered;
    // Widen the window in which a broker that does not wait for a running handler is caught.
    const Clock::time_point until = Clock::now() + std::chrono::microseconds(300);
    while (Clock::now() < until) {
    }
    std::move(ack)(absl::OkStatus());
    if (state->destroyed) ++state->after_destroy;
    --state->running;
  });
  ASSERT_TRUE(sub.ok()) << sub.status();

  PublishMany(*pubsub, topic, "s-", 300);
  const Clock::time_point deadline = Clock::now() + harness().delivery_timeout;
  while (state->delivered < 5 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));  // poll interval
  }
  ASSERT_GE(state->delivered.load(), 5);
  sub->reset();
  state->destroyed = true;
  EXPECT_EQ(state->running.load(), 0) << "the handler still ran after the destructor returned";

  // Give a misbehaving broker the chance to deliver more: wait for a message on another topic.
  const std::string other = Topic("stop-other");
  Inbox inbox;
  auto other_sub = Subscribe(*pubsub, other, inbox);
  ASSERT_NE(other_sub, nullptr);
  ASSERT_TRUE(Publish(*pubsub, other, "sentinel").ok());
  EXPECT_TRUE(inbox.WaitForData("sentinel", 1, harness().delivery_timeout));
  EXPECT_EQ(state->after_destroy.load(), 0) << "the handler ran after its subscription was gone";
}

TEST_P(PubSubConformanceTest, AHandlerMayDestroyItsOwnSubscription) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Topic("self-destroy");
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::unique_ptr<cp::Subscription> sub;
    bool destroyed = false;
    std::atomic<int> calls{0};
  };
  auto state = std::make_shared<State>();
  cp::SubscribeRequest request;
  request.topic = topic;
  auto sub = pubsub->Subscribe(std::move(request), [state](cp::Message, cp::Ack ack) {
    ++state->calls;
    std::move(ack)(absl::OkStatus());
    std::unique_ptr<cp::Subscription> mine;
    {
      std::lock_guard lock(state->mu);
      mine = std::move(state->sub);
    }
    if (mine == nullptr) return;
    mine.reset();  // must not deadlock, although this very handler call is still running
    std::lock_guard lock(state->mu);
    state->destroyed = true;
    state->cv.notify_all();
  });
  ASSERT_TRUE(sub.ok()) << sub.status();
  {
    std::lock_guard lock(state->mu);
    state->sub = *std::move(sub);
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Publish(*pubsub, topic, StrCat("x", i)).ok());
  {
    std::unique_lock lock(state->mu);
    EXPECT_TRUE(
        state->cv.wait_for(lock, harness().delivery_timeout, [&] { return state->destroyed; }));
  }
  const std::string other = Topic("self-destroy-other");
  Inbox inbox;
  auto other_sub = Subscribe(*pubsub, other, inbox);
  ASSERT_NE(other_sub, nullptr);
  ASSERT_TRUE(Publish(*pubsub, other, "sentinel").ok());
  EXPECT_TRUE(inbox.WaitForData("sentinel", 1, harness().delivery_timeout));
  EXPECT_EQ(state->calls.load(), 1) << "deliveries after the handler destroyed its subscription";
}

TEST_P(PubSubConformanceTest, BulkPublishReportsEachEntry) {
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Topic("bulk");
  Inbox inbox;
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_NE(sub, nullptr);

  constexpr int kCount = 25;
  std::vector<cp::BulkPublishEntry> entries;
  for (int i = 0; i < kCount; ++i) {
    cp::BulkPublishEntry e;
    e.entry_id = StrCat("id-", i);
    e.request.topic = topic;
    e.request.data = StrCat("bulk-", i);
    e.request.content_type = "text/plain";
    e.request.metadata = {{"entry", StrCat(i)}};
    entries.push_back(std::move(e));
  }
  cp::BulkPublishEntry bad;
  bad.entry_id = "bad";
  bad.request.data = "nowhere";  // empty topic
  entries.insert(entries.begin() + kCount / 2, std::move(bad));

  absl::StatusOr<cp::BulkPublishResult> result = BulkPublish(*pubsub, std::move(entries));
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].entry_id, "bad");
  EXPECT_FALSE(result->failed[0].error.empty());

  ASSERT_TRUE(inbox.WaitForDistinct(kCount, harness().delivery_timeout))
      << inbox.Distinct().size() << " of " << kCount;
  for (const cp::Message& m : inbox.Messages()) {
    ASSERT_EQ(m.data.rfind("bulk-", 0), 0u) << m.data;
    if (caps().metadata) {
      EXPECT_THAT(m.metadata, Contains(Pair("entry", m.data.substr(5))));
    }
    if (caps().content_type) {
      EXPECT_EQ(m.content_type, "text/plain");
    }
  }

  absl::StatusOr<cp::BulkPublishResult> none = BulkPublish(*pubsub, {});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(none->failed, IsEmpty());
}

TEST_P(PubSubConformanceTest, WildcardSubscriptionMatchesLongerTopics) {
  if (!caps().wildcards) GTEST_SKIP() << "no wildcards";
  cp::PubSub* pubsub = NewComponent();
  ASSERT_NE(pubsub, nullptr);
  const std::string base = Topic("wild");
  Inbox inbox;
  auto sub = Subscribe(*pubsub, base + ".*", inbox);
  ASSERT_NE(sub, nullptr);

  ASSERT_TRUE(Publish(*pubsub, Topic("elsewhere"), "no").ok());
  ASSERT_TRUE(Publish(*pubsub, base + ".", "no").ok());  // not longer than the prefix
  ASSERT_TRUE(Publish(*pubsub, base + ".eu", "eu").ok());
  ASSERT_TRUE(Publish(*pubsub, base + ".us.east", "us").ok());
  ASSERT_TRUE(inbox.WaitForData("eu", 1, harness().delivery_timeout));
  ASSERT_TRUE(inbox.WaitForData("us", 1, harness().delivery_timeout));
  EXPECT_EQ(inbox.Count("no"), 0);
  for (const cp::Message& m : inbox.Messages()) {
    EXPECT_EQ(m.topic, m.data == "eu" ? base + ".eu" : base + ".us.east");
  }
}

}  // namespace remora::conformance::pubsub
