// pubsub.kafka against a Kafka-protocol broker: the remora_kafka_broker process (librdkafka's
// mock cluster), started once for the suite (one more for the health test).
//
// What a user of the runtime would notice: a published event arrives with its key, headers and
// Kafka coordinates; one partition's events reach the app in order; bulk publishing is fast and
// complete; a failed delivery comes back without losing or blocking what follows (beyond the
// partition-order window); closing a consumer mid-stream, or losing one of two consumers of a
// group, loses nothing; initialOffset newest does not skip events published while no consumer
// runs; Health() follows the brokers.
//
// Timing: in the mock cluster a group's first join takes ~3 s and a rebalance sessionTimeout - 1 s
// (4 s here, so ~3 s). Every wait polls against a deadline.

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kafka_pubsub.h"
#include "remora/components/common/strings.h"
#include "tests/tools/kafka_broker.h"

namespace remora::components::pubsub::kafka {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::Contains;

constexpr milliseconds kDeliveryDeadline = seconds(30);

// Polls `done` until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& done, milliseconds timeout = kDeliveryDeadline) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(5));  // poll interval, not a wait
  }
  return done();
}

// ---- handler side ----

enum class Reply { kAck, kFail, kHold };

struct Delivered {
  std::string data;
  Metadata metadata;
};

// Acks from another thread after a short random delay: an app that answers later, out of order.
class DelayedAcker {
 public:
  DelayedAcker() : thread_([this] { Loop(); }) {}
  ~DelayedAcker() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Post(Ack ack, std::function<void()> before) {
    static thread_local std::mt19937 rng(42);
    auto due = Clock::now() + std::chrono::microseconds(rng() % 800);
    {
      std::lock_guard lock(mu_);
      queue_.emplace(due, Item{std::move(ack), std::move(before)});
    }
    cv_.notify_all();
  }

 private:
  struct Item {
    Ack ack;
    std::function<void()> before;
  };
  void Loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (queue_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto it = queue_.begin();
      if (it->first > Clock::now()) {
        cv_.wait_until(lock, it->first);
        continue;
      }
      Item item = std::move(it->second);
      queue_.erase(it);
      lock.unlock();
      if (item.before) item.before();
      std::move(item.ack)(absl::OkStatus());
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::multimap<Clock::time_point, Item> queue_;
  std::thread thread_;
};

// Records every delivery and answers it as `policy` says (default: ack at once, inline).
class Recorder {
 public:
  using Policy = std::function<Reply(const Message&, int attempt)>;

  explicit Recorder(Policy policy = {}, DelayedAcker* acker = nullptr)
      : policy_(std::move(policy)), acker_(acker) {}

  Handler handler() {
    return [this](Message message, Ack ack) { OnMessage(std::move(message), std::move(ack)); };
  }

  size_t count() {
    std::lock_guard lock(mu_);
    return deliveries_.size();
  }
  std::vector<Delivered> deliveries() {
    std::lock_guard lock(mu_);
    return deliveries_;
  }
  std::vector<std::string> data() {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const Delivered& d : deliveries_) out.push_back(d.data);
    return out;
  }
  std::set<std::string> acked() {
    std::lock_guard lock(mu_);
    return acked_;
  }
  std::set<std::string> seen() {
    std::lock_guard lock(mu_);
    std::set<std::string> out;
    for (const Delivered& d : deliveries_) out.insert(d.data);
    return out;
  }
  // Deliveries that arrived while an earlier one of the same partition was still unacked.
  int overlaps() {
    std::lock_guard lock(mu_);
    return overlaps_;
  }

 private:
  void OnMessage(Message message, Ack ack) {
    int attempt;
    std::string partition = message.metadata["__partition"];
    {
      std::lock_guard lock(mu_);
      attempt = ++attempts_[message.data];
      if (++outstanding_[partition] > 1) ++overlaps_;
    }
    Reply reply = policy_ ? policy_(message, attempt) : Reply::kAck;
    std::string data = message.data;
    {
      std::lock_guard lock(mu_);
      deliveries_.push_back({message.data, std::move(message.metadata)});
      if (reply != Reply::kHold && !acker_) --outstanding_[partition];
      if (reply == Reply::kAck) acked_.insert(data);
    }
    switch (reply) {
      case Reply::kAck:
        if (acker_ != nullptr) {
          acker_->Post(std::move(ack), [this, partition] {
            std::lock_guard lock(mu_);
            --outstanding_[partition];
          });
        } else {
          std::move(ack)(absl::OkStatus());
        }
        break;
      case Reply::kFail:
        if (acker_ != nullptr) {
          std::lock_guard lock(mu_);
          --outstanding_[partition];
        }
        std::move(ack)(absl::UnavailableError("app failed"));
        break;
      case Reply::kHold: {
        std::lock_guard lock(mu_);
        held_.push_back(std::move(ack));  // never answered: like an app that died mid-request
        break;
      }
    }
  }

  Policy policy_;
  DelayedAcker* acker_;
  std::mutex mu_;
  std::vector<Delivered> deliveries_;
  std::map<std::string, int> attempts_;
  std::set<std::string> acked_;
  std::map<std::string, int> outstanding_;
  int overlaps_ = 0;
  std::vector<Ack> held_;
};

// ---- publisher side ----

absl::Status PublishSync(PubSub& pubsub, const std::string& topic, const std::string& data,
                         Metadata metadata = {}) {
  auto promise = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> result = promise->get_future();
  pubsub.Publish(PublishRequest{topic, data, "text/plain", std::move(metadata)},
                 [promise](absl::Status s) { promise->set_value(std::move(s)); });
  if (result.wait_for(seconds(40)) != std::future_status::ready) {
    return absl::DeadlineExceededError("publish did not complete");
  }
  return result.get();
}

absl::StatusOr<BulkPublishResult> BulkPublishSync(PubSub& pubsub,
                                                  std::vector<BulkPublishEntry> entries) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<BulkPublishResult>>>();
  auto result = promise->get_future();
  pubsub.BulkPublish(std::move(entries), [promise](absl::StatusOr<BulkPublishResult> r) {
    promise->set_value(std::move(r));
  });
  if (result.wait_for(seconds(60)) != std::future_status::ready) {
    return absl::DeadlineExceededError("bulk publish did not complete");
  }
  return result.get();
}

BulkPublishEntry Entry(const std::string& topic, const std::string& id, const std::string& data,
                       Metadata metadata = {}) {
  return BulkPublishEntry{id, PublishRequest{topic, data, "text/plain", std::move(metadata)}};
}

// The offset `group` has committed for `topic`/`partition` (-1001 when none), read with a
// separate client that does not join the group.
int64_t CommittedOffset(const std::string& bootstrap, const std::string& group,
                        const std::string& topic, int32_t partition) {
  char error[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), error, sizeof(error));
  rd_kafka_conf_set(conf, "group.id", group.c_str(), error, sizeof(error));
  rd_kafka_conf_set(conf, "log_level", "3", error, sizeof(error));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof(error));
  if (rk == nullptr) return -2;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition);
  int64_t offset = -2;
  if (rd_kafka_committed(rk, list, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    offset = list->elems[0].offset;
  }
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  return offset;
}

// ---- fixture ----

class KafkaTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto broker = remora::testing::KafkaBroker::Start({.brokers = 1,
                                                       .topics = {{"order", 3},
                                                                  {"retry-window1", 1},
                                                                  {"retry-window8", 1},
                                                                  {"retry-stuck", 1},
                                                                  {"handover", 2},
                                                                  {"newest", 1}}});
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(*broker);
  }
  static void TearDownTestSuite() { broker_.reset(); }

  void SetUp() override { ASSERT_NE(broker_, nullptr); }

  // The metadata every test starts from: a group per test, fast group timing for the mock.
  static std::map<std::string, std::string> Meta(const std::string& group,
                                                 const std::string& bootstrap = "") {
    return {{"brokers", bootstrap.empty() ? broker_->bootstrap() : bootstrap},
            {"authType", "none"},
            {"consumerGroup", group},
            {"initialOffset", "oldest"},
            {"sessionTimeout", "4s"},
            {"heartbeatInterval", "500ms"},
            {"consumeRetryInterval", "20ms"}};
  }

  static std::unique_ptr<PubSub> Make(std::map<std::string, std::string> values) {
    ComponentContext context;
    context.name = "kafka";
    context.type = "pubsub.kafka";
    context.version = "v1";
    context.metadata = components::Metadata(std::move(values));
    absl::StatusOr<std::unique_ptr<PubSub>> pubsub = Create(context);
    EXPECT_TRUE(pubsub.ok()) << pubsub.status();
    EXPECT_THAT(context.metadata.Unused(), ::testing::IsEmpty());
    return pubsub.ok() ? std::move(*pubsub) : nullptr;
  }

  static std::unique_ptr<Subscription> Sub(PubSub& pubsub, const std::string& topic,
                                           Recorder& recorder) {
    absl::StatusOr<std::unique_ptr<Subscription>> sub =
        pubsub.Subscribe(SubscribeRequest{topic, {}}, recorder.handler());
    EXPECT_TRUE(sub.ok()) << sub.status();
    return sub.ok() ? std::move(*sub) : nullptr;
  }

  static inline std::unique_ptr<remora::testing::KafkaBroker> broker_;
};

TEST_F(KafkaTest, RoundTripCarriesKeyHeadersAndKafkaCoordinates) {
  auto pubsub = Make(Meta("g-roundtrip"));
  ASSERT_NE(pubsub, nullptr);
  EXPECT_THAT(pubsub->Features(), Contains(Feature::kBulkPublish));
  Recorder recorder;
  auto sub = Sub(*pubsub, "roundtrip", recorder);
  ASSERT_NE(sub, nullptr);

  const int64_t now_ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  ASSERT_TRUE(
      PublishSync(*pubsub, "roundtrip", "hello", {{"partitionKey", "k1"}, {"custom", "v"}}).ok());
  ASSERT_TRUE(WaitUntil([&] { return recorder.count() >= 1; }));
  Delivered d = recorder.deliveries().front();
  EXPECT_EQ(d.data, "hello");
  EXPECT_EQ(d.metadata["__key"], "k1");
  EXPECT_EQ(d.metadata["__topic"], "roundtrip");
  EXPECT_EQ(d.metadata["__offset"], "0");
  int partition = std::stoi(d.metadata["__partition"]);
  EXPECT_TRUE(partition >= 0 && partition < 4) << partition;  // auto-created: 4 partitions
  int64_t timestamp = std::stoll(d.metadata["__timestamp"]);
  EXPECT_LT(std::abs(timestamp - now_ms), 60'000);
  EXPECT_EQ(d.metadata["custom"], "v");
  EXPECT_EQ(d.metadata["partitionKey"], "k1");  // Dapr sends every metadata entry as a header
  EXPECT_TRUE(pubsub->Health().ok()) << pubsub->Health();
}

TEST_F(KafkaTest, OnePartitionsEventsReachTheAppInOrder) {
  auto pubsub = Make(Meta("g-order"));
  ASSERT_NE(pubsub, nullptr);
  std::vector<BulkPublishEntry> entries;
  constexpr int kKeys = 10;
  constexpr int kPerKey = 60;
  for (int seq = 0; seq < kPerKey; ++seq) {
    for (int k = 0; k < kKeys; ++k) {
      std::string id = StrCat("k", k, ":", seq);
      entries.push_back(Entry("order", id, id, {{"partitionKey", StrCat("k", k)}}));
    }
  }
  auto published = BulkPublishSync(*pubsub, std::move(entries));
  ASSERT_TRUE(published.ok()) << published.status();
  ASSERT_TRUE(published->failed.empty()) << published->failed.front().error;

  DelayedAcker acker;  // acks arrive late and from another thread
  Recorder recorder({}, &acker);
  auto sub = Sub(*pubsub, "order", recorder);
  ASSERT_NE(sub, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return recorder.seen().size() == kKeys * kPerKey; }))
      << recorder.seen().size();
  sub.reset();

  std::map<std::string, std::vector<int>> per_key;
  std::map<std::string, std::set<std::string>> partitions_of_key;
  std::set<std::string> first_seen;
  for (const Delivered& d : recorder.deliveries()) {
    if (!first_seen.insert(d.data).second) continue;
    std::string key = d.data.substr(0, d.data.find(':'));
    per_key[key].push_back(std::stoi(d.data.substr(d.data.find(':') + 1)));
    partitions_of_key[key].insert(d.metadata.at("__partition"));
  }
  std::set<std::string> partitions;
  for (int k = 0; k < kKeys; ++k) {
    std::string key = StrCat("k", k);
    std::vector<int> expected(kPerKey);
    for (int i = 0; i < kPerKey; ++i) expected[i] = i;
    EXPECT_EQ(per_key[key], expected) << key;
    EXPECT_EQ(partitions_of_key[key].size(), 1u) << key;
    partitions.insert(partitions_of_key[key].begin(), partitions_of_key[key].end());
  }
  EXPECT_GT(partitions.size(), 1u);  // the keys spread, so partitions really ran side by side
  // The default window: a partition's next event waits for the app's answer to the previous.
  EXPECT_EQ(recorder.overlaps(), 0);
}

TEST_F(KafkaTest, BulkPublishIsFastAndComplete) {
  auto pubsub = Make(Meta("g-bulk"));
  ASSERT_NE(pubsub, nullptr);
  constexpr int kEvents = 100'000;
  const std::string payload =
      R"({"specversion":"1.0","type":"com.example.order","source":"bench","id":")";
  std::vector<BulkPublishEntry> entries;
  entries.reserve(kEvents);
  for (int i = 0; i < kEvents; ++i) {
    entries.push_back(
        Entry("bulk", std::to_string(i), StrCat(payload, i, R"(","data":{"n":)", i, "}}")));
  }
  // A running sidecar has its connection, producer id and topic metadata already; the first
  // publish pays for them (and creates the topic), so it stays out of the measurement.
  ASSERT_TRUE(PublishSync(*pubsub, "bulk", "warm-up").ok());
  Clock::time_point start = Clock::now();
  auto published = BulkPublishSync(*pubsub, std::move(entries));
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_TRUE(published.ok()) << published.status();
  EXPECT_TRUE(published->failed.empty()) << published->failed.size() << " failed";
  const double rate = kEvents / elapsed;
  std::printf("bulk publish: %d events in %.3f s = %.0f events/s (acks=all, idempotent)\n", kEvents,
              elapsed, rate);
  RecordProperty("bulk_publish_events_per_second", static_cast<int>(rate));
  // The target is 100,000/s (measured well above on the project's 2-core machine); the bound
  // here only catches a collapse without making a busy test machine fail the suite.
  EXPECT_GT(rate, 50'000);

  Recorder recorder;
  Clock::time_point consume_start = Clock::now();
  auto sub = Sub(*pubsub, "bulk", recorder);
  ASSERT_NE(sub, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return recorder.count() >= kEvents + 1; }, seconds(60)))
      << recorder.count();
  double consume = std::chrono::duration<double>(Clock::now() - consume_start).count();
  std::printf("consumed %d events in %.3f s (including the ~3 s group join)\n", kEvents, consume);
  EXPECT_EQ(recorder.seen().size(), static_cast<size_t>(kEvents) + 1);  // and the warm-up
}

TEST_F(KafkaTest, FailedDeliveryIsRetriedInPlaceAndCommittedAfterwards) {
  auto pubsub = Make(Meta("g-retry1"));
  ASSERT_NE(pubsub, nullptr);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(PublishSync(*pubsub, "retry-window1", StrCat("m", i)).ok());
  Recorder recorder([](const Message& m, int attempt) {
    return m.data == "m1" && attempt <= 2 ? Reply::kFail : Reply::kAck;
  });
  auto sub = Sub(*pubsub, "retry-window1", recorder);
  ASSERT_NE(sub, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return recorder.acked().size() == 5; }));
  // With one event in flight per partition, m2 waits until m1 finally succeeds.
  EXPECT_EQ(recorder.data(), (std::vector<std::string>{"m0", "m1", "m1", "m1", "m2", "m3", "m4"}));
  sub.reset();

  // Reopened in the same group: only what is new arrives, so the retried run was committed.
  Recorder again;
  auto sub2 = Sub(*pubsub, "retry-window1", again);
  ASSERT_NE(sub2, nullptr);
  ASSERT_TRUE(PublishSync(*pubsub, "retry-window1", "m5").ok());
  ASSERT_TRUE(WaitUntil([&] { return again.count() >= 1; }));
  EXPECT_EQ(again.data(), (std::vector<std::string>{"m5"}));
}

TEST_F(KafkaTest, WithAWiderWindowAFailureDoesNotBlockLaterEvents) {
  auto values = Meta("g-retry8");
  values["maxInFlightPerPartition"] = "8";
  values["consumeRetryInterval"] = "300ms";
  auto pubsub = Make(values);
  ASSERT_NE(pubsub, nullptr);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(PublishSync(*pubsub, "retry-window8", StrCat("m", i)).ok());
  Recorder recorder([](const Message& m, int attempt) {
    return m.data == "m0" && attempt == 1 ? Reply::kFail : Reply::kAck;
  });
  auto sub = Sub(*pubsub, "retry-window8", recorder);
  ASSERT_NE(sub, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return recorder.acked().size() == 5; }));
  EXPECT_EQ(recorder.data(), (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4", "m0"}));
}

TEST_F(KafkaTest, CommitNeverPassesAnEventThatWasNotAcked) {
  auto values = Meta("g-stuck");
  values["maxInFlightPerPartition"] = "8";
  auto pubsub = Make(values);
  ASSERT_NE(pubsub, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(PublishSync(*pubsub, "retry-stuck", StrCat("m", i)).ok());
  // m1 keeps failing; everything around it succeeds (acks out of order).
  Recorder failing(
      [](const Message& m, int) { return m.data == "m1" ? Reply::kFail : Reply::kAck; });
  auto sub = Sub(*pubsub, "retry-stuck", failing);
  ASSERT_NE(sub, nullptr);
  ASSERT_TRUE(WaitUntil([&] {
    auto acked = failing.acked();
    return acked.size() == 4 && failing.count() >= 7;  // m1 delivered at least three times
  }));
  sub.reset();
  // Only m0 is safely done: the group resumes at m1, so m1 is not lost (m2..m4 come again).
  EXPECT_EQ(CommittedOffset(broker_->bootstrap(), "g-stuck", "retry-stuck", 0), 1);
  Recorder reopened;
  auto sub2 = Sub(*pubsub, "retry-stuck", reopened);
  ASSERT_NE(sub2, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return reopened.acked().size() == 4; }));
  EXPECT_EQ(reopened.data(), (std::vector<std::string>{"m1", "m2", "m3", "m4"}));
}

TEST_F(KafkaTest, ConsumerClosedMidStreamLosesNothingForTheNextOne) {
  auto values = Meta("g-handover");
  values["maxInFlightPerPartition"] = "16";
  auto pubsub = Make(values);
  ASSERT_NE(pubsub, nullptr);
  constexpr int kEvents = 200;
  std::vector<BulkPublishEntry> entries;
  for (int i = 0; i < kEvents; ++i) {
    entries.push_back(Entry("handover", std::to_string(i), StrCat("e", i),
                            {{"partitionKey", StrCat("key", i % 7)}}));
  }
  auto published = BulkPublishSync(*pubsub, std::move(entries));
  ASSERT_TRUE(published.ok() && published->failed.empty());

  // The first consumer never answers every third event, like an app that is killed mid-request.
  Recorder first([](const Message& m, int) {
    return std::stoi(m.data.substr(1)) % 3 == 0 ? Reply::kHold : Reply::kAck;
  });
  auto sub = Sub(*pubsub, "handover", first);
  ASSERT_NE(sub, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return first.count() >= 40; }));
  sub.reset();
  std::set<std::string> acked_by_first = first.acked();

  Recorder second;
  auto sub2 = Sub(*pubsub, "handover", second);
  ASSERT_NE(sub2, nullptr);
  std::set<std::string> missing;
  ASSERT_TRUE(WaitUntil([&] {
    missing.clear();
    std::set<std::string> got = second.acked();
    for (int i = 0; i < kEvents; ++i) {
      std::string e = StrCat("e", i);
      if (!acked_by_first.count(e) && !got.count(e)) missing.insert(e);
    }
    return missing.empty();
  })) << missing.size()
      << " events lost, e.g. " << *missing.begin();
  size_t duplicates = 0;
  for (const std::string& e : second.seen()) duplicates += acked_by_first.count(e);
  std::printf("handover: first acked %zu of %d, second delivered %zu (%zu duplicates)\n",
              acked_by_first.size(), kEvents, second.count(), duplicates);
  // Only events above the first consumer's lowest unanswered one may come twice.
  EXPECT_LT(duplicates, acked_by_first.size());
}

TEST_F(KafkaTest, WhenOneOfTwoGroupMembersLeavesTheOtherFinishes) {
  // Two components (two sidecars) in one group on a 4-partition topic.
  auto a = Make(Meta("g-share"));
  auto b = Make(Meta("g-share"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Recorder rec_a;
  std::atomic<int> b_acks{0};
  // b handles a few events, then stops answering (as if killed while busy).
  Recorder rec_b([&](const Message&, int) { return ++b_acks <= 5 ? Reply::kAck : Reply::kHold; });
  auto sub_a = Sub(*a, "share", rec_a);
  auto sub_b = Sub(*b, "share", rec_b);
  ASSERT_NE(sub_a, nullptr);
  ASSERT_NE(sub_b, nullptr);

  constexpr int kEvents = 400;
  std::vector<BulkPublishEntry> entries;
  for (int i = 0; i < kEvents; ++i) {
    entries.push_back(
        Entry("share", std::to_string(i), StrCat("s", i), {{"partitionKey", StrCat("key", i)}}));
  }
  auto published = BulkPublishSync(*a, std::move(entries));
  ASSERT_TRUE(published.ok() && published->failed.empty());
  ASSERT_TRUE(WaitUntil([&] { return rec_a.count() > 0 && rec_b.count() > 5; }))
      << "a got " << rec_a.count() << ", b got " << rec_b.count()
      << ": the group did not share the partitions";
  sub_b.reset();
  std::set<std::string> acked_by_b = rec_b.acked();

  std::set<std::string> missing;
  ASSERT_TRUE(WaitUntil([&] {
    missing.clear();
    std::set<std::string> got = rec_a.acked();
    for (int i = 0; i < kEvents; ++i) {
      std::string e = StrCat("s", i);
      if (!got.count(e) && !acked_by_b.count(e)) missing.insert(e);
    }
    return missing.empty();
  })) << missing.size()
      << " events lost";
  std::printf("group: a acked %zu, b acked %zu before leaving\n", rec_a.acked().size(),
              acked_by_b.size());
}

TEST_F(KafkaTest, NewestDoesNotSkipEventsPublishedWhileNoConsumerRuns) {
  auto values = Meta("g-newest");
  values["initialOffset"] = "newest";
  auto pubsub = Make(values);
  ASSERT_NE(pubsub, nullptr);
  ASSERT_TRUE(PublishSync(*pubsub, "newest", "before").ok());

  Recorder first;
  auto sub = Sub(*pubsub, "newest", first);
  ASSERT_NE(sub, nullptr);
  // The group's first owner of the partition pins where "newest" was.
  // (Each look is a fresh client, so look every 100 ms rather than every 5 ms.)
  ASSERT_TRUE(WaitUntil([&] {
    if (CommittedOffset(broker_->bootstrap(), "g-newest", "newest", 0) == 1) return true;
    std::this_thread::sleep_for(milliseconds(100));
    return false;
  }));
  sub.reset();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(PublishSync(*pubsub, "newest", StrCat("gap", i)).ok());

  Recorder second;
  auto sub2 = Sub(*pubsub, "newest", second);
  ASSERT_NE(sub2, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return second.count() >= 5; }));
  EXPECT_EQ(second.data(), (std::vector<std::string>{"gap0", "gap1", "gap2", "gap3", "gap4"}));
  EXPECT_EQ(first.count(), 0u);
}

TEST_F(KafkaTest, PublishChecksItsInput) {
  auto values = Meta("g-input");
  values["maxMessageBytes"] = "100";
  auto pubsub = Make(values);
  ASSERT_NE(pubsub, nullptr);
  absl::Status empty_topic = PublishSync(*pubsub, "", "x");
  EXPECT_EQ(empty_topic.code(), absl::StatusCode::kInvalidArgument);
  absl::Status too_big = PublishSync(*pubsub, "input", std::string(200, 'x'));
  EXPECT_EQ(too_big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_big.message()), ::testing::HasSubstr("maxMessageBytes"));
  absl::Status bad_partition = PublishSync(*pubsub, "input", "x", {{"partitionNumber", "two"}});
  EXPECT_EQ(bad_partition.code(), absl::StatusCode::kInvalidArgument);

  std::vector<BulkPublishEntry> entries = {Entry("input", "ok1", "small"),
                                           Entry("input", "big", std::string(200, 'y')),
                                           Entry("input", "ok2", "small")};
  auto result = BulkPublishSync(*pubsub, std::move(entries));
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].entry_id, "big");

  // Without a consumer group there is nothing to subscribe with.
  auto no_group = Meta("");
  no_group.erase("consumerGroup");
  auto publisher = Make(no_group);
  ASSERT_NE(publisher, nullptr);
  Recorder recorder;
  auto sub = publisher->Subscribe(SubscribeRequest{"input", {}}, recorder.handler());
  EXPECT_EQ(sub.status().code(), absl::StatusCode::kFailedPrecondition);

  // ... unless the app id stands in for it, as in Dapr.
  ComponentContext with_app;
  with_app.type = "pubsub.kafka";
  with_app.app_id = "checkout";
  with_app.metadata = components::Metadata(no_group);
  absl::StatusOr<std::unique_ptr<PubSub>> app_pubsub = Create(with_app);
  ASSERT_TRUE(app_pubsub.ok()) << app_pubsub.status();
  auto app_sub = (*app_pubsub)->Subscribe(SubscribeRequest{"input", {}}, recorder.handler());
  EXPECT_TRUE(app_sub.ok()) << app_sub.status();
}

TEST_F(KafkaTest, HealthFollowsTheBrokers) {
  auto broker = remora::testing::KafkaBroker::Start({});
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto pubsub = Make(Meta("g-health", (*broker)->bootstrap()));
  ASSERT_NE(pubsub, nullptr);
  ASSERT_TRUE(PublishSync(*pubsub, "health", "x").ok());
  EXPECT_TRUE(pubsub->Health().ok());

  ASSERT_TRUE((*broker)->SetDown(true).ok());
  ASSERT_TRUE(WaitUntil([&] { return !pubsub->Health().ok(); }, seconds(20)));
  EXPECT_EQ(pubsub->Health().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE((*broker)->SetDown(false).ok());
  ASSERT_TRUE(WaitUntil([&] { return pubsub->Health().ok(); }, seconds(20))) << pubsub->Health();
  EXPECT_TRUE(PublishSync(*pubsub, "health", "y").ok());
}

}  // namespace
}  // namespace remora::components::pubsub::kafka
