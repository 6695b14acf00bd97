// Loss tests for pub/sub delivery (issue #5, "0 events lost in every fault test"), on Redis
// Streams (a real redis-server) and on Kafka (the mock-cluster test broker process):
//
//   KillSubscriberThreeTimes: 20,000 events are published while the subscriber's remorad is
//     SIGKILLed three times and restarted with the same app id (so the same consumer group).
//   KillOneOfTwoSubscribers: two subscriber sidecars of one app id share the topic; one is
//     SIGKILLed for good; the survivor must finish the topic.
//
// Every event must reach the app at least once: a missing one fails the test; duplicates (the
// price of at-least-once when a sidecar dies between the app's answer and the broker ack) are
// counted and printed.
//
// The events are published through a publisher remorad's HTTP bulk publish, not straight into
// the broker: that is the path users take (daprd's envelope, the broker's bulk publish), and the
// publisher is never killed, so every loss the test can see is a subscriber-side loss. Publishing
// is paced by delivery (at most kMaxAhead events ahead of what the app has seen), so the kills
// land while events are still being published, not after.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/tools/kafka_broker.h"
#include "tests/tools/redis_server.h"
#include "tests/tools/test_app.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr int kEvents = 20000;
constexpr int kBatch = 250;      // entries per bulk publish request
constexpr int kMaxAhead = 4000;  // published but not yet seen by the app
constexpr auto kFinishTimeout = seconds(90);

// What the app saw, keyed by the sequence number each event carries in its data.
class Recorder {
 public:
  Recorder() : counts_(kEvents, 0) {}

  void Record(const TestApp::Event& e, int app) {
    if (!e.json.is_object()) return;
    const json& data = e.json.value("data", json());
    if (!data.is_object() || !data.contains("n") || !data["n"].is_number_integer()) return;
    int n = data["n"].get<int>();
    std::lock_guard lock(mu_);
    if (n < 0 || n >= kEvents) return;
    if (counts_[n]++ == 0) ++unique_;
    ++total_;
    ++per_app_[app];
  }
  int unique() const {
    std::lock_guard lock(mu_);
    return unique_;
  }
  int total() const {
    std::lock_guard lock(mu_);
    return total_;
  }
  int per_app(int app) const {
    std::lock_guard lock(mu_);
    return per_app_[app];
  }
  std::vector<int> Missing() const {
    std::lock_guard lock(mu_);
    std::vector<int> out;
    for (int i = 0; i < kEvents; ++i) {
      if (counts_[i] == 0) out.push_back(i);
    }
    return out;
  }
  int MaxCopies() const {
    std::lock_guard lock(mu_);
    return *std::max_element(counts_.begin(), counts_.end());
  }

 private:
  mutable std::mutex mu_;
  std::vector<int> counts_;
  int unique_ = 0;
  int total_ = 0;
  int per_app_[2] = {0, 0};
};

class PubSubLossTest : public ::testing::TestWithParam<std::string> {
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

  void SetUp() override {
    static std::atomic<int> run{0};
    topic_ = StrCat("loss-", ::getpid(), "-", run.fetch_add(1));
    if (GetParam() == "kafka") {
      // 4 partitions, so that two sidecars of one group both get some.
      auto kafka = KafkaBroker::Start({.topics = {{topic_, 4}}});
      ASSERT_TRUE(kafka.ok()) << kafka.status();
      kafka_ = *std::move(kafka);
    }
    resources_ = WriteTempFile("pubsub.yaml", Component());
  }

  // The subscriber side's timing keys are short so that a killed sidecar's messages come back in
  // seconds: Redis reclaims entries pending for 1 s; Kafka evicts a dead group member after 3 s.
  // Kafka starts from the oldest offset so that an event published before the group's first
  // join is not skipped (the topic is new for every test).
  std::string Component() const {
    if (GetParam() == "kafka") {
      return StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: pubsub }
spec:
  type: pubsub.kafka
  version: v1
  metadata:
  - { name: brokers, value: ")",
                    kafka_->bootstrap(), R"(" }
  - { name: authType, value: none }
  - { name: initialOffset, value: oldest }
  - { name: sessionTimeout, value: 3s }
  - { name: heartbeatInterval, value: 1s }
)");
    }
    return StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: pubsub }
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - { name: redisHost, value: "127.0.0.1:)",
                  redis_->port(), R"(" }
  - { name: processingTimeout, value: 1s }
  - { name: redeliverInterval, value: 500ms }
)");
  }

  std::unique_ptr<TestApp> StartApp(int index) {
    json subs = json::array({{{"pubsubname", "pubsub"}, {"topic", topic_}, {"route", "/loss"}}});
    auto app = TestApp::Start({.subscribe_body = subs.dump()});
    EXPECT_TRUE(app.ok()) << app.status();
    if (!app.ok()) return nullptr;
    (*app)->SetPolicy([this, index](const TestApp::Event& e) -> TestApp::Answer {
      recorder_.Record(e, index);
      return {200, ""};
    });
    return *std::move(app);
  }

  absl::StatusOr<Remorad> StartSubscriber(const TestApp& app) {
    return StartRemorad({"--app-id", "loss-subscriber", "--app-port", StrCat(app.port()),
                         "--resources-path", resources_, "--log-level", "warn"},
                        {}, seconds(20));
  }

  // Publishes events 0..kEvents-1 in bulk requests on a thread of its own (HttpCall blocks),
  // never more than kMaxAhead ahead of what the app has seen. A failed request is sent again.
  void StartPublishing(int http_port) {
    publisher_ = std::thread([this, http_port] {
      const std::string target = StrCat("/v1.0-alpha1/publish/bulk/pubsub/", topic_);
      const auto deadline = Clock::now() + kFinishTimeout;
      for (int first = 0; first < kEvents && Clock::now() < deadline;) {
        if (first - recorder_.unique() > kMaxAhead) {
          std::this_thread::sleep_for(milliseconds(2));
          continue;
        }
        json entries = json::array();
        for (int n = first; n < std::min(first + kBatch, kEvents); ++n) {
          entries.push_back(
              {{"entryId", StrCat(n)}, {"event", {{"n", n}}}, {"contentType", "application/json"}});
        }
        auto r = HttpCall("127.0.0.1", http_port, "POST", target, entries.dump(),
                          {{"Content-Type", "application/json"}}, seconds(10));
        if (!r.ok() || r->status != 204) {
          publish_failures_.fetch_add(1);
          std::this_thread::sleep_for(milliseconds(20));
          continue;
        }
        first += kBatch;
        published_.store(first);
      }
    });
  }
  void JoinPublisher() {
    if (publisher_.joinable()) publisher_.join();
  }
  void TearDown() override { JoinPublisher(); }

  // Polls until the app has seen `count` distinct events; false after `timeout`.
  bool WaitUnique(int count, Clock::duration timeout) const {
    const auto deadline = Clock::now() + timeout;
    while (recorder_.unique() < count) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return true;
  }

  void Report(const char* what, double elapsed_s) {
    std::vector<int> missing = recorder_.Missing();
    std::string first_missing;
    for (size_t i = 0; i < missing.size() && i < 20; ++i)
      StrAppend(&first_missing, missing[i], " ");
    std::printf(
        "[loss] %s on %s: %d events published, %d delivered to the app, %d distinct, %zu missing, "
        "%d duplicates (max %d copies of one event), %d failed publish requests retried, %.1f s\n",
        what, GetParam().c_str(), published_.load(), recorder_.total(), recorder_.unique(),
        missing.size(), recorder_.total() - recorder_.unique(), recorder_.MaxCopies(),
        publish_failures_.load(), elapsed_s);
    std::fflush(stdout);
    EXPECT_EQ(published_.load(), kEvents) << "the publisher did not finish";
    EXPECT_TRUE(missing.empty()) << missing.size()
                                 << " events never reached the app, first: " << first_missing;
  }

  static RedisServer* redis_;
  std::unique_ptr<KafkaBroker> kafka_;
  std::string topic_;
  std::string resources_;
  Recorder recorder_;
  std::thread publisher_;
  std::atomic<int> published_{0};
  std::atomic<int> publish_failures_{0};
};

RedisServer* PubSubLossTest::redis_ = nullptr;

TEST_P(PubSubLossTest, KillSubscriberThreeTimes) {
  const auto start = Clock::now();
  std::unique_ptr<TestApp> app = StartApp(0);
  ASSERT_NE(app, nullptr);
  auto sub = StartSubscriber(*app);
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto pub = StartRemorad({"--app-id", "loss-publisher", "--resources-path", resources_});
  ASSERT_TRUE(pub.ok()) << pub.status();
  StartPublishing(pub->http_port);

  for (int kill = 1; kill <= 3; ++kill) {
    // Kills at 20 %, 45 % and 70 % of the events: publishing is still going on each time.
    const int at = kEvents * (20 + 25 * (kill - 1)) / 100;
    ASSERT_TRUE(WaitUnique(at, kFinishTimeout))
        << "stuck at " << recorder_.unique() << " before kill " << kill << "\n"
        << sub->process->Output();
    sub->process->Signal(SIGKILL);
    ASSERT_TRUE(sub->process->Wait(seconds(10)).has_value());
    std::printf("[loss] kill %d at %d distinct events seen, %d published\n", kill,
                recorder_.unique(), published_.load());
    sub = StartSubscriber(*app);
    ASSERT_TRUE(sub.ok()) << sub.status();
  }
  bool done = WaitUnique(kEvents, kFinishTimeout);
  JoinPublisher();
  Report("3 SIGKILLs of the subscriber's sidecar",
         std::chrono::duration<double>(Clock::now() - start).count());
  EXPECT_TRUE(done) << sub->process->Output();
}

TEST_P(PubSubLossTest, KillOneOfTwoSubscribers) {
  const auto start = Clock::now();
  std::unique_ptr<TestApp> app_a = StartApp(0);
  std::unique_ptr<TestApp> app_b = StartApp(1);
  ASSERT_NE(app_a, nullptr);
  ASSERT_NE(app_b, nullptr);
  auto sub_a = StartSubscriber(*app_a);
  ASSERT_TRUE(sub_a.ok()) << sub_a.status();
  auto sub_b = StartSubscriber(*app_b);
  ASSERT_TRUE(sub_b.ok()) << sub_b.status();
  auto pub = StartRemorad({"--app-id", "loss-publisher", "--resources-path", resources_});
  ASSERT_TRUE(pub.ok()) << pub.status();
  StartPublishing(pub->http_port);

  // Both sidecars must have a share of the topic before one dies, or the test proves nothing.
  const auto deadline = Clock::now() + kFinishTimeout;
  while (recorder_.per_app(0) < 500 || recorder_.per_app(1) < 500 ||
         recorder_.unique() < kEvents / 4) {
    ASSERT_LT(Clock::now(), deadline)
        << "the group did not share the topic: A got " << recorder_.per_app(0) << ", B got "
        << recorder_.per_app(1) << "\nA:\n"
        << sub_a->process->Output() << "\nB:\n"
        << sub_b->process->Output();
    std::this_thread::sleep_for(milliseconds(5));
  }
  sub_a->process->Signal(SIGKILL);
  ASSERT_TRUE(sub_a->process->Wait(seconds(10)).has_value());
  std::printf("[loss] sidecar A killed at %d distinct events seen (A %d, B %d), %d published\n",
              recorder_.unique(), recorder_.per_app(0), recorder_.per_app(1), published_.load());
  const int b_before = recorder_.per_app(1);

  bool done = WaitUnique(kEvents, kFinishTimeout);
  JoinPublisher();
  Report("2 sidecars in one group, one SIGKILLed",
         std::chrono::duration<double>(Clock::now() - start).count());
  EXPECT_TRUE(done) << sub_b->process->Output();
  EXPECT_GT(recorder_.per_app(1), b_before) << "the survivor delivered nothing after the kill";
}

INSTANTIATE_TEST_SUITE_P(Brokers, PubSubLossTest, ::testing::Values("redis", "kafka"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace remora::testing
