// pubsub.redis against a real redis-server on a free port: the pub/sub conformance suite, then
// what is particular to Redis Streams: ParseConfig and metadata.yaml, Dapr's wire format (both
// ways), pending entries and their reclaiming across consumers, trimming, a deleted group, a
// restarted server.

#include <utility>  // before Asio

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <set>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "components/pubsub/redis/redis_pubsub.h"
#include "remora/components/common/strings.h"
#include "tests/conformance/pubsub/pubsub_conformance.h"
#include "tests/tools/redis_server.h"

namespace remora::conformance::pubsub {
namespace {

namespace asio = boost::asio;
namespace rp = ::remora::components::pubsub::redis;
using ::remora::testing::RedisServer;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using Map = std::map<std::string, std::string>;

// One redis-server and one io_context (two threads) for the whole binary. The server starts on
// first use, from the test's main thread (SetUp), as ChildProcess requires.
struct Backend {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::vector<std::thread> threads;
  std::unique_ptr<RedisServer> server;

  Backend() {
    for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io.run(); });
  }
  ~Backend() {
    guard.reset();
    io.stop();
    for (auto& t : threads) t.join();
  }
  static Backend& Get() {
    static Backend backend;
    return backend;
  }
  absl::Status EnsureServer() {
    if (server) return absl::OkStatus();
    absl::StatusOr<std::unique_ptr<RedisServer>> started = RedisServer::Start();
    if (!started.ok()) return started.status();
    server = *std::move(started);
    return absl::OkStatus();
  }
};

absl::Status PointAtBackend(components::ComponentContext& context) {
  Backend& backend = Backend::Get();
  if (absl::Status s = backend.EnsureServer(); !s.ok()) return s;
  Map values = context.metadata.values();
  values["redisHost"] = backend.server->address();
  context.metadata = components::Metadata(values);
  context.io_context = &backend.io;
  return absl::OkStatus();
}

PubSubHarness RedisHarness() {
  PubSubHarness h;
  h.name = "Redis";
  h.type = "pubsub.redis";
  h.factory = rp::Create;
  // Short reclaim times so that redelivery tests take about a second, not a minute. The bare
  // integer is milliseconds, as in Dapr.
  h.metadata = {{"processingTimeout", "1000"}, {"redeliverInterval", "200ms"}};
  h.prepare = PointAtBackend;
  PubSubCapabilities& c = h.capabilities;
  c.shared_backend = true;
  c.consumer_groups = true;
  c.durable = true;
  c.metadata = true;
  c.content_type = false;  // Dapr's wire format has no field for it
  h.delivery_timeout = seconds(15);
  h.redelivery_timeout = seconds(5);
  return h;
}

INSTANTIATE_TEST_SUITE_P(Redis, PubSubConformanceTest, ::testing::Values(RedisHarness()),
                         PubSubHarnessName());

// ---- ParseConfig and metadata.yaml ----

absl::StatusOr<rp::Config> Parse(Map values) {
  values.emplace("redisHost", "localhost:6379");
  return rp::ParseConfig(components::Metadata(values));
}

TEST(RedisPubSubConfig, DefaultsAreDaprsCodeDefaults) {
  absl::StatusOr<rp::Config> c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->redeliver_interval, seconds(15));
  EXPECT_EQ(c->processing_timeout, seconds(60));
  EXPECT_EQ(c->queue_depth, 100);
  EXPECT_EQ(c->concurrency, 10);
  EXPECT_EQ(c->max_len_approx, 0);
  EXPECT_EQ(c->stream_ttl, milliseconds(0));
  EXPECT_EQ(c->consumer_id, "");
  EXPECT_EQ(c->redis.host, "localhost");
  EXPECT_EQ(c->redis.port, 6379);
}

TEST(RedisPubSubConfig, ReadsEveryKey) {
  absl::StatusOr<rp::Config> c = Parse({{"consumerID", "checkout"},
                                        {"redeliverInterval", "250"},  // bare: ms
                                        {"processingTimeout", "2m"},
                                        {"queueDepth", "5"},
                                        {"concurrency", "3"},
                                        {"maxLenApprox", "1000"},
                                        {"streamTTL", "3600"}});  // bare: seconds
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->consumer_id, "checkout");
  EXPECT_EQ(c->redeliver_interval, milliseconds(250));
  EXPECT_EQ(c->processing_timeout, seconds(120));
  EXPECT_EQ(c->queue_depth, 5);
  EXPECT_EQ(c->concurrency, 3);
  EXPECT_EQ(c->max_len_approx, 1000);
  EXPECT_EQ(c->stream_ttl, seconds(3600));

  absl::StatusOr<rp::Config> off = Parse({{"redeliverInterval", "0"}, {"streamTTL", "24h"}});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->redeliver_interval, milliseconds(0));
  EXPECT_EQ(off->stream_ttl, std::chrono::hours(24));
}

TEST(RedisPubSubConfig, BadValuesNameTheKey) {
  for (const auto& [key, value] : Map{{"redeliverInterval", "soon"},
                                      {"processingTimeout", "-1s"},
                                      {"queueDepth", "0"},
                                      {"concurrency", "many"},
                                      {"maxLenApprox", "-5"},
                                      {"streamTTL", "forever"},
                                      {"redisDB", "x"}}) {
    absl::StatusOr<rp::Config> c = Parse({{key, value}});
    ASSERT_FALSE(c.ok()) << key << "=" << value;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(key));
  }
  absl::StatusOr<rp::Config> no_host = rp::ParseConfig(components::Metadata(Map{}));
  EXPECT_FALSE(no_host.ok());
  EXPECT_THAT(std::string(no_host.status().message()), HasSubstr("redisHost"));
}

// Every name metadata.yaml lists, and only those, is read by ParseConfig (through the usage
// tracking that reports unknown keys to users).
TEST(RedisPubSubConfig, MetadataYamlInSync) {
  const char* source = std::getenv("REMORA_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "REMORA_SOURCE_DIR is not set (ctest sets it)";
  YAML::Node doc = YAML::LoadFile(std::string(source) + "/components/pubsub/redis/metadata.yaml");
  std::set<std::string> documented;
  for (const YAML::Node& item : doc["metadata"]) documented.insert(item["name"].as<std::string>());

  const Map values = {{"consumerID", "app"},
                      {"redeliverInterval", "15s"},
                      {"processingTimeout", "60s"},
                      {"queueDepth", "100"},
                      {"concurrency", "10"},
                      {"maxLenApprox", "0"},
                      {"streamTTL", "0"},
                      {"redisHost", "localhost"},
                      {"redisPort", "6379"},
                      {"redisPassword", ""},
                      {"redisUsername", ""},
                      {"redisDB", "0"},
                      {"redisType", "node"},
                      {"dialTimeout", "5s"},
                      {"readTimeout", "3s"},
                      {"writeTimeout", "3s"},
                      {"redisMaxRetries", "3"},
                      {"redisMinRetryInterval", "8ms"},
                      {"redisMaxRetryInterval", "512ms"},
                      {"poolSize", "2"},
                      {"enableTLS", "false"},
                      {"failover", "false"},
                      {"useEntraID", "false"},
                      {"useAzureAD", "false"},
                      {"minIdleConns", "0"},
                      {"maxConnAge", "0s"},
                      {"poolTimeout", "4s"},
                      {"idleTimeout", "5m"},
                      {"idleCheckFrequency", "1m"},
                      {"sentinelUsername", ""},
                      {"sentinelPassword", ""},
                      {"sentinelMasterName", ""},
                      {"insecureSkipTLSVerify", "false"},
                      {"clientCert", ""},
                      {"clientKey", ""}};
  components::Metadata metadata(values);
  absl::StatusOr<rp::Config> config = rp::ParseConfig(metadata);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(metadata.Unused(), IsEmpty()) << "documented keys ParseConfig ignores";
  std::set<std::string> given;
  for (const auto& [key, value] : values) given.insert(key);
  EXPECT_EQ(documented, given) << "metadata.yaml and the keys this test gives differ";
}

// ---- the XADD command ----

TEST(RedisPubSubWire, XAddCommand) {
  rp::Config config;
  cp::PublishRequest r;
  r.topic = "orders";
  r.data = std::string("a\0b", 3);
  const auto now = std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000));
  EXPECT_THAT(rp::XAddCommand(config, r, now),
              ElementsAre("XADD", "orders", "*", "data", std::string("a\0b", 3)));

  r.metadata = {{"ttlInSeconds", "10"}, {"b", "\""}};
  EXPECT_THAT(rp::XAddCommand(config, r, now),
              ElementsAre("XADD", "orders", "*", "data", std::string("a\0b", 3), "metadata",
                          R"({"b":"\"","ttlInSeconds":"10"})"));

  r.metadata.clear();
  config.stream_ttl = seconds(60);
  EXPECT_THAT(rp::XAddCommand(config, r, now),
              ElementsAre("XADD", "orders", "MINID", "~", "1699999940000-1", "*", "data", _));
  config.max_len_approx = 500;  // wins over streamTTL, as in go-redis
  EXPECT_THAT(rp::XAddCommand(config, r, now),
              ElementsAre("XADD", "orders", "MAXLEN", "~", "500", "*", "data", _));
}

// ---- against redis-server ----

class RedisPubSubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Backend::Get().EnsureServer().ok());
    static std::atomic<int> counter{0};
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    prefix_ = StrCat("redis-", ::getpid(), "-", counter++, "-", test, "-");
  }
  void TearDown() override { components_.clear(); }

  RedisServer& server() { return *Backend::Get().server; }

  std::string Name(std::string_view what) const { return StrCat(prefix_, what); }

  cp::PubSub* NewComponent(Map metadata, RedisServer* on = nullptr, std::string app_id = "app") {
    RedisServer& target = on != nullptr ? *on : server();
    metadata.emplace("redisHost", target.address());
    components::ComponentContext context;
    context.name = "pubsub";
    context.type = "pubsub.redis";
    context.app_id = std::move(app_id);
    context.metadata = components::Metadata(metadata);
    context.io_context = &Backend::Get().io;
    auto pubsub = rp::Create(context);
    EXPECT_TRUE(pubsub.ok()) << pubsub.status();
    if (!pubsub.ok()) return nullptr;
    components_.push_back(*std::move(pubsub));
    return components_.back().get();
  }

  static absl::Status Publish(cp::PubSub& pubsub, std::string topic, std::string data,
                              cp::Metadata metadata = {}) {
    cp::PublishRequest r;
    r.topic = std::move(topic);
    r.data = std::move(data);
    r.metadata = std::move(metadata);
    std::promise<absl::Status> p;
    auto f = p.get_future();
    pubsub.Publish(std::move(r), [&p](absl::Status s) { p.set_value(std::move(s)); });
    if (f.wait_for(seconds(10)) != std::future_status::ready) {
      return absl::DeadlineExceededError("publish did not complete");
    }
    return f.get();
  }

  static std::unique_ptr<cp::Subscription> Subscribe(cp::PubSub& pubsub, std::string topic,
                                                     Inbox& inbox) {
    cp::SubscribeRequest r;
    r.topic = std::move(topic);
    auto sub = pubsub.Subscribe(std::move(r), inbox.Handler());
    EXPECT_TRUE(sub.ok()) << sub.status();
    return sub.ok() ? *std::move(sub) : nullptr;
  }

  // Redis' answer as lines (nested arrays flattened), or the error text.
  std::vector<std::string> Lines(const std::vector<std::string>& command,
                                 RedisServer* on = nullptr) {
    absl::StatusOr<std::string> reply = (on != nullptr ? *on : server()).Command(command);
    if (!reply.ok()) return {StrCat("error: ", reply.status().ToString())};
    if (reply->empty()) return {};
    return absl::StrSplit(*reply, '\n');
  }
  int64_t Int(const std::vector<std::string>& command) {
    std::vector<std::string> lines = Lines(command);
    return lines.empty() ? -1 : std::strtoll(lines[0].c_str(), nullptr, 10);
  }

  // Polls `condition` until it holds or `timeout` passes.
  static bool Eventually(const std::function<bool()>& condition, milliseconds timeout) {
    const Clock::time_point deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (condition()) return true;
      std::this_thread::sleep_for(milliseconds(20));  // poll interval
    }
    return condition();
  }

  std::string prefix_;
  std::vector<std::unique_ptr<cp::PubSub>> components_;
};

TEST_F(RedisPubSubTest, FactoryNeedsAnIoContext) {
  components::ComponentContext context;
  context.metadata = components::Metadata(Map{{"redisHost", server().address()}});
  auto pubsub = rp::Create(context);
  EXPECT_EQ(pubsub.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(RedisPubSubTest, SubscribingNeedsAConsumerIdOrAnAppId) {
  cp::PubSub* pubsub = NewComponent({}, nullptr, /*app_id=*/"");
  ASSERT_NE(pubsub, nullptr);
  Inbox inbox;
  cp::SubscribeRequest r;
  r.topic = Name("t");
  auto sub = pubsub->Subscribe(std::move(r), inbox.Handler());
  EXPECT_EQ(sub.status().code(), absl::StatusCode::kFailedPrecondition);
  // Publishing needs no group.
  EXPECT_TRUE(Publish(*pubsub, Name("t"), "x").ok());
}

TEST_F(RedisPubSubTest, PublishWritesDaprsStreamEntry) {
  cp::PubSub* pubsub = NewComponent({});
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Name("wire");
  ASSERT_TRUE(Publish(*pubsub, topic, "payload", {{"k", "v"}}).ok());
  ASSERT_TRUE(Publish(*pubsub, topic, "bare").ok());
  std::vector<std::string> lines = Lines({"XRANGE", topic, "-", "+"});
  // [[id, [data, payload, metadata, json]], [id, [data, bare]]]
  ASSERT_EQ(lines.size(), 8u) << absl::StrJoin(lines, "|");
  EXPECT_THAT(std::vector<std::string>(lines.begin() + 1, lines.begin() + 5),
              ElementsAre("data", "payload", "metadata", R"({"k":"v"})"));
  EXPECT_THAT(std::vector<std::string>(lines.begin() + 6, lines.end()),
              ElementsAre("data", "bare"));
}

TEST_F(RedisPubSubTest, EntriesWrittenByDaprAreDelivered) {
  const std::string topic = Name("from-dapr");
  // What daprd's XADD leaves in the stream (with and without request metadata).
  ASSERT_TRUE(server()
                  .Command({"XADD", topic, "*", "data", "one", "metadata",
                            R"({"traceparent":"00-abc","n":"1"})"})
                  .ok());
  ASSERT_TRUE(server().Command({"XADD", topic, "*", "data", "two"}).ok());
  ASSERT_TRUE(server().Command({"XADD", topic, "*", "data", "three", "metadata", "not json"}).ok());
  cp::PubSub* pubsub = NewComponent({{"consumerID", Name("g")}});
  ASSERT_NE(pubsub, nullptr);
  Inbox inbox;
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_TRUE(inbox.WaitForDistinct(3, seconds(10)));
  std::vector<cp::Message> got = inbox.Messages();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].data, "one");
  EXPECT_EQ(got[0].topic, topic);
  EXPECT_EQ(got[0].metadata, (cp::Metadata{{"traceparent", "00-abc"}, {"n", "1"}}));
  EXPECT_EQ(got[1].data, "two");
  EXPECT_THAT(got[1].metadata, IsEmpty());
  EXPECT_EQ(got[2].data, "three");
  EXPECT_THAT(got[2].metadata, IsEmpty()) << "malformed metadata is ignored, the data kept";
}

TEST_F(RedisPubSubTest, TheConsumerGroupDefaultsToTheAppId) {
  cp::PubSub* pubsub = NewComponent({}, nullptr, "my-app");
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Name("app-group");
  Inbox inbox;
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_TRUE(Publish(*pubsub, topic, "x").ok());
  ASSERT_TRUE(inbox.WaitForData("x", 1, seconds(10)));
  std::vector<std::string> groups = Lines({"XINFO", "GROUPS", topic});
  ASSERT_GE(groups.size(), 2u);
  EXPECT_EQ(groups[0], "name");
  EXPECT_EQ(groups[1], "my-app");
}

TEST_F(RedisPubSubTest, AFailedEntryStaysPendingUntilReclaimedAndAcked) {
  const std::string group = Name("g");
  cp::PubSub* pubsub = NewComponent(
      {{"consumerID", group}, {"processingTimeout", "500ms"}, {"redeliverInterval", "100ms"}});
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Name("pending");
  Inbox inbox([&](const cp::Message&, int delivery) {
    return delivery == 1 ? Inbox::Action::kFail : Inbox::Action::kAck;
  });
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_TRUE(Publish(*pubsub, topic, "x").ok());
  ASSERT_TRUE(inbox.WaitForData("x", 1, seconds(10)));
  // Not XACKed after the error (Dapr would have): still pending while waiting for reclaim.
  EXPECT_EQ(Int({"XPENDING", topic, group}), 1);
  ASSERT_TRUE(inbox.WaitForData("x", 2, seconds(10)));
  EXPECT_TRUE(Eventually(
      [&] {
        return Int({"XPENDING", topic, group}) == 0;
      },
      seconds(10)))
      << "acked OK on the second delivery, so no longer pending";
}

TEST_F(RedisPubSubTest, AnAckDroppedWithoutACallCountsAsFailed) {
  const std::string group = Name("g");
  cp::PubSub* pubsub = NewComponent(
      {{"consumerID", group}, {"processingTimeout", "300ms"}, {"redeliverInterval", "100ms"}});
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Name("dropped");
  Inbox inbox([](const cp::Message&, int delivery) {
    return delivery == 1 ? Inbox::Action::kHold : Inbox::Action::kAck;
  });
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_TRUE(Publish(*pubsub, topic, "x").ok());
  ASSERT_TRUE(inbox.WaitForData("x", 1, seconds(10)));
  inbox.TakeHeld();  // destroyed here, never called: the entry must not count as processed
  EXPECT_TRUE(inbox.WaitForData("x", 2, seconds(10)));
  EXPECT_TRUE(Eventually([&] { return Int({"XPENDING", topic, group}) == 0; }, seconds(10)));
}

TEST_F(RedisPubSubTest, ConsumersOfOneGroupHaveTheirOwnNamesAndLeaveNoTrace) {
  const std::string group = Name("g");
  cp::PubSub* first = NewComponent({{"consumerID", group}});
  cp::PubSub* second = NewComponent({{"consumerID", group}});
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const std::string topic = Name("names");
  Inbox a, b;
  auto sub_a = Subscribe(*first, topic, a);
  auto sub_b = Subscribe(*second, topic, b);
  auto consumer_names = [&] {
    std::vector<std::string> lines = Lines({"XINFO", "CONSUMERS", topic, group});
    std::set<std::string> names;
    for (size_t i = 0; i + 1 < lines.size(); ++i) {
      if (lines[i] == "name") names.insert(lines[i + 1]);
    }
    return names;
  };
  // Redis 7.0 creates a consumer when it first gets an entry: publish until both got some.
  int sent = 0;
  ASSERT_TRUE(Eventually(
      [&] {
        if (a.Size() > 0 && b.Size() > 0) return true;
        EXPECT_TRUE(Publish(*first, topic, StrCat("m", sent++)).ok());
        return false;
      },
      seconds(10)));
  ASSERT_TRUE(Eventually([&] { return consumer_names().size() == 2; }, seconds(10)));
  for (const std::string& name : consumer_names()) {
    EXPECT_THAT(name, StartsWith(group + "-"));
    EXPECT_EQ(name.size(), group.size() + 13) << name;
  }
  sub_a.reset();
  sub_b.reset();
  EXPECT_TRUE(Eventually([&] { return consumer_names().empty(); }, seconds(10)))
      << "a closed subscription with nothing pending removes its consumer";
}

TEST_F(RedisPubSubTest, AStuckConsumersEntriesAreReclaimedByAnother) {
  // Two sidecars of one app; one of them takes messages and never answers (hung or killed).
  const std::string group = Name("g");
  const Map metadata = {
      {"consumerID", group}, {"processingTimeout", "700ms"}, {"redeliverInterval", "100ms"}};
  cp::PubSub* stuck = NewComponent(metadata);
  cp::PubSub* healthy = NewComponent(metadata);
  ASSERT_NE(stuck, nullptr);
  ASSERT_NE(healthy, nullptr);
  const std::string topic = Name("stuck");
  Inbox black_hole([](const cp::Message&, int) { return Inbox::Action::kHold; });
  auto sub_stuck = Subscribe(*stuck, topic, black_hole);
  // Let the stuck consumer take the first messages before the healthy one joins.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Publish(*stuck, topic, StrCat("m", i)).ok());
  ASSERT_TRUE(black_hole.WaitForDistinct(5, seconds(10)));
  Inbox inbox;
  auto sub_healthy = Subscribe(*healthy, topic, inbox);
  for (int i = 5; i < 10; ++i) ASSERT_TRUE(Publish(*healthy, topic, StrCat("m", i)).ok());
  // Whatever went to the stuck consumer (m0..m4 at least) is claimed by the healthy one once it
  // has been pending for processingTimeout; the stuck one does not take back what it holds.
  EXPECT_TRUE(inbox.WaitForDistinct(10, seconds(15)))
      << inbox.Distinct().size() << " of 10 reached the healthy consumer";
  EXPECT_TRUE(Eventually(
      [&] {
        return Int({"XPENDING", topic, group}) == 0;
      },
      seconds(10)))
      << "everything the healthy consumer got is acked";
}

TEST_F(RedisPubSubTest, ADeletedStreamAndGroupAreRecreated) {
  const std::string group = Name("g");
  cp::PubSub* pubsub = NewComponent({{"consumerID", group}, {"readTimeout", "300ms"}});
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Name("nogroup");
  Inbox inbox;
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_TRUE(Publish(*pubsub, topic, "before").ok());
  ASSERT_TRUE(inbox.WaitForData("before", 1, seconds(10)));
  // Data loss on the Redis side: the stream, and its group with it, are gone.
  ASSERT_TRUE(server().Command({"DEL", topic}).ok());
  ASSERT_TRUE(Publish(*pubsub, topic, "after").ok());  // recreates the stream, not the group
  EXPECT_TRUE(inbox.WaitForData("after", 1, seconds(15)));
}

TEST_F(RedisPubSubTest, MaxLenApproxTrimsTheStream) {
  cp::PubSub* pubsub = NewComponent({{"maxLenApprox", "10"}});
  ASSERT_NE(pubsub, nullptr);
  const std::string topic = Name("maxlen");
  std::vector<cp::BulkPublishEntry> entries(1000);
  for (int i = 0; i < 1000; ++i) {
    entries[i].entry_id = StrCat(i);
    entries[i].request.topic = topic;
    entries[i].request.data = StrCat(i);
  }
  std::promise<absl::StatusOr<cp::BulkPublishResult>> p;
  auto f = p.get_future();
  pubsub->BulkPublish(std::move(entries), [&p](auto r) { p.set_value(std::move(r)); });
  ASSERT_EQ(f.wait_for(seconds(10)), std::future_status::ready);
  auto result = f.get();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->failed, IsEmpty());
  const int64_t len = Int({"XLEN", topic});
  EXPECT_GE(len, 10);
  EXPECT_LE(len, 200) << "MAXLEN ~ 10 trims whole nodes (100 entries each by default)";
}

TEST_F(RedisPubSubTest, StreamTTLDropsOldEntries) {
  const std::string topic = Name("ttl");
  // 300 entries from 1970, three full nodes of the stream.
  for (int i = 1; i <= 300; ++i) {
    ASSERT_TRUE(server().Command({"XADD", topic, StrCat("1-", i), "data", "old"}).ok());
  }
  cp::PubSub* pubsub = NewComponent({{"streamTTL", "1h"}});
  ASSERT_NE(pubsub, nullptr);
  ASSERT_TRUE(Publish(*pubsub, topic, "new").ok());
  const int64_t len = Int({"XLEN", topic});
  EXPECT_GE(len, 1);
  EXPECT_LE(len, 101) << "MINID ~ <an hour ago> drops the nodes holding only old entries";
}

TEST_F(RedisPubSubTest, BulkPublishReportsTheEntryRedisRefused) {
  const std::string topic = Name("bulk");
  const std::string not_a_stream = Name("string-key");
  ASSERT_TRUE(server().Command({"SET", not_a_stream, "x"}).ok());
  cp::PubSub* pubsub = NewComponent({});
  ASSERT_NE(pubsub, nullptr);
  std::vector<cp::BulkPublishEntry> entries(3);
  for (int i = 0; i < 3; ++i) {
    entries[i].entry_id = StrCat("e", i);
    entries[i].request.topic = i == 1 ? not_a_stream : topic;
    entries[i].request.data = StrCat(i);
  }
  std::promise<absl::StatusOr<cp::BulkPublishResult>> p;
  auto f = p.get_future();
  pubsub->BulkPublish(std::move(entries), [&p](auto r) { p.set_value(std::move(r)); });
  ASSERT_EQ(f.wait_for(seconds(10)), std::future_status::ready);
  auto result = f.get();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->failed.size(), 1u);
  EXPECT_EQ(result->failed[0].entry_id, "e1");
  EXPECT_THAT(result->failed[0].error, HasSubstr("WRONGTYPE"));
  EXPECT_EQ(Int({"XLEN", topic}), 2);
}

TEST_F(RedisPubSubTest, SurvivesARedisRestart) {
  absl::StatusOr<std::unique_ptr<RedisServer>> own = RedisServer::Start();
  ASSERT_TRUE(own.ok()) << own.status();
  RedisServer& redis = **own;
  const std::string topic = Name("restart");
  cp::PubSub* pubsub = NewComponent({{"consumerID", Name("g")}, {"readTimeout", "500ms"}}, &redis);
  ASSERT_NE(pubsub, nullptr);
  Inbox inbox;
  auto sub = Subscribe(*pubsub, topic, inbox);
  ASSERT_TRUE(Publish(*pubsub, topic, "before").ok());
  ASSERT_TRUE(inbox.WaitForData("before", 1, seconds(10)));
  EXPECT_TRUE(pubsub->Health().ok());

  redis.Kill();
  EXPECT_TRUE(Eventually([&] { return !pubsub->Health().ok(); }, seconds(10)))
      << "Health() reports the lost server";
  ASSERT_TRUE(redis.Restart().ok());  // same port, empty dataset: no stream, no group
  // Publishing fails fast until the client has reconnected; then the subscription recreates its
  // group and gets what is published.
  EXPECT_TRUE(Eventually([&] { return Publish(*pubsub, topic, "after").ok(); }, seconds(15)));
  EXPECT_TRUE(inbox.WaitForData("after", 1, seconds(15)));
  EXPECT_TRUE(pubsub->Health().ok());
  sub.reset();
  components_.clear();  // before the server goes
}

}  // namespace
}  // namespace remora::conformance::pubsub
