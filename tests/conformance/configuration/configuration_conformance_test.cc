// The configuration store contract (components/include/remora/components/configuration/store.h)
// against configuration.redis on a real redis-server: Dapr's value||version layout, get, keyspace
// subscriptions, unsubscribe, and a subscription that survives a Redis restart. Plus
// metadata.yaml kept in sync with ParseConfig.

#include <utility>
// <utility> before Asio (Boost 1.74 + GCC 12 in C++20).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "redis_configuration.h"
#include "remora/components/common/strings.h"
#include "remora/components/configuration/store.h"
#include "tests/tools/redis_component.h"
#include "tests/tools/redis_server.h"

namespace remora {
namespace {

namespace cfg = components::configuration;
namespace rc = components::configuration::redis;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using testing::RedisServer;
using testing::SharedIoContext;

// Collects a subscription's updates; waits poll against a deadline.
class Updates {
 public:
  cfg::UpdateHandler Handler() {
    return [this](cfg::UpdateEvent event) {
      std::lock_guard lock(mu_);
      events_.push_back(std::move(event));
      cv_.notify_all();
    };
  }
  // The first update for `key` whose value is `value`, or nullopt after `timeout`.
  std::optional<cfg::UpdateEvent> WaitFor(const std::string& key, const std::string& value,
                                          milliseconds timeout = milliseconds(5000)) {
    std::unique_lock lock(mu_);
    std::optional<cfg::UpdateEvent> found;
    cv_.wait_for(lock, timeout, [&] {
      for (const cfg::UpdateEvent& e : events_) {
        auto it = e.items.find(key);
        if (it != e.items.end() && it->second.value == value) {
          found = e;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  size_t CountFor(const std::string& key) {
    std::lock_guard lock(mu_);
    return std::count_if(events_.begin(), events_.end(),
                         [&](const cfg::UpdateEvent& e) { return e.items.count(key) > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<cfg::UpdateEvent> events_;
};

class RedisConfigurationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    redis_ = server->release();
  }
  static void TearDownTestSuite() {
    delete redis_;
    redis_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(redis_, nullptr);
    if (!redis_->Running()) {
      ASSERT_TRUE(redis_->Restart().ok());
    }
    static std::atomic<int> n{0};
    prefix_ = StrCat("cfg", ::getpid(), "-", n.fetch_add(1), "-");
    store_ = NewStore();
    ASSERT_NE(store_, nullptr);
  }

  std::unique_ptr<cfg::Store> NewStore() {
    components::ComponentContext context;
    context.name = "configstore";
    context.type = "configuration.redis";
    context.version = "v1";
    context.metadata = components::Metadata({{"redisHost", redis_->address()}});
    context.io_context = &SharedIoContext();
    auto store = rc::Create(context);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::string Key(std::string_view name) const { return StrCat(prefix_, name); }

  void Set(const std::string& key, const std::string& stored) {
    auto r = redis_->Command({"SET", key, stored});
    ASSERT_TRUE(r.ok()) << r.status();
  }

  absl::StatusOr<cfg::Items> Get(std::vector<std::string> keys) {
    std::promise<absl::StatusOr<cfg::Items>> p;
    store_->Get({std::move(keys), {}}, [&](absl::StatusOr<cfg::Items> r) { p.set_value(r); });
    auto f = p.get_future();
    if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      return absl::DeadlineExceededError("Get did not answer");
    }
    return f.get();
  }

  absl::StatusOr<std::string> Subscribe(cfg::Store& store, std::vector<std::string> keys,
                                        Updates& updates) {
    std::promise<absl::StatusOr<std::string>> p;
    store.Subscribe({std::move(keys), {}}, updates.Handler(),
                    [&](absl::StatusOr<std::string> r) { p.set_value(r); });
    auto f = p.get_future();
    if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      return absl::DeadlineExceededError("Subscribe did not answer");
    }
    return f.get();
  }

  static RedisServer* redis_;
  std::string prefix_;
  std::unique_ptr<cfg::Store> store_;
};

RedisServer* RedisConfigurationTest::redis_ = nullptr;

TEST(RedisConfigurationItemTest, SplitsValueAndVersionAtTheFirstSeparator) {
  cfg::Item a = rc::ParseItem("100||3");
  EXPECT_EQ(a.value, "100");
  EXPECT_EQ(a.version, "3");
  cfg::Item b = rc::ParseItem("plain");
  EXPECT_EQ(b.value, "plain");
  EXPECT_EQ(b.version, "");
  cfg::Item c = rc::ParseItem("a||b||c");
  EXPECT_EQ(c.value, "a");
  EXPECT_EQ(c.version, "b||c");
}

TEST_F(RedisConfigurationTest, GetReadsDaprLayoutAndSkipsMissingEmptyAndOtherTypes) {
  Set(Key("limit"), "100||3");
  Set(Key("plain"), "hello");
  Set(Key("empty"), "");
  ASSERT_TRUE(redis_->Command({"HSET", Key("hash"), "f", "v"}).ok());
  auto items = Get({Key("limit"), Key("plain"), Key("missing"), Key("empty"), Key("hash")});
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ(items->at(Key("limit")).value, "100");
  EXPECT_EQ(items->at(Key("limit")).version, "3");
  EXPECT_EQ(items->at(Key("plain")).value, "hello");
  EXPECT_EQ(items->at(Key("plain")).version, "");
}

TEST_F(RedisConfigurationTest, GetWithoutKeysReturnsEveryKey) {
  Set(Key("a"), "1||1");
  Set(Key("b"), "2||7");
  auto items = Get({});
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_TRUE(items->count(Key("a")));
  ASSERT_TRUE(items->count(Key("b")));
  EXPECT_EQ(items->at(Key("b")).version, "7");
}

TEST_F(RedisConfigurationTest, VersionChangesWithEachWrite) {
  Set(Key("v"), "x||1");
  auto first = Get({Key("v")});
  Set(Key("v"), "y||2");
  auto second = Get({Key("v")});
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->at(Key("v")).version, "1");
  EXPECT_EQ(second->at(Key("v")).value, "y");
  EXPECT_EQ(second->at(Key("v")).version, "2");
}

TEST_F(RedisConfigurationTest, SubscribeSeesChangesAndDeletes) {
  Updates updates;
  auto id = Subscribe(*store_, {Key("watched")}, updates);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->size(), 36u);  // a UUID
  Set(Key("other"), "ignored||1");
  Set(Key("watched"), "on||5");
  auto event = updates.WaitFor(Key("watched"), "on");
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->id, *id);
  EXPECT_EQ(event->items.at(Key("watched")).version, "5");
  EXPECT_EQ(updates.CountFor(Key("other")), 0u);
  ASSERT_TRUE(redis_->Command({"DEL", Key("watched")}).ok());
  auto deleted = updates.WaitFor(Key("watched"), "");
  ASSERT_TRUE(deleted.has_value());
  EXPECT_EQ(deleted->items.at(Key("watched")).version, "");
  EXPECT_TRUE(store_->Unsubscribe(*id).ok());
}

TEST_F(RedisConfigurationTest, SubscribeWithoutKeysSeesEveryKey) {
  Updates updates;
  auto id = Subscribe(*store_, {}, updates);
  ASSERT_TRUE(id.ok()) << id.status();
  Set(Key("any"), "v||9");
  auto event = updates.WaitFor(Key("any"), "v");
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->items.at(Key("any")).version, "9");
  EXPECT_TRUE(store_->Unsubscribe(*id).ok());
}

TEST_F(RedisConfigurationTest, UnsubscribeStopsUpdates) {
  Updates stopped, witness;
  auto id = Subscribe(*store_, {Key("k")}, stopped);
  auto witness_id = Subscribe(*store_, {Key("k")}, witness);
  ASSERT_TRUE(id.ok() && witness_id.ok());
  Set(Key("k"), "1||1");
  ASSERT_TRUE(stopped.WaitFor(Key("k"), "1").has_value());
  ASSERT_TRUE(store_->Unsubscribe(*id).ok());
  Set(Key("k"), "2||2");
  // The witness seeing the change means the notification went out; the other must not see it.
  ASSERT_TRUE(witness.WaitFor(Key("k"), "2").has_value());
  EXPECT_FALSE(stopped.WaitFor(Key("k"), "2", milliseconds(200)).has_value());
  EXPECT_EQ(store_->Unsubscribe(*id).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Unsubscribe("no-such-id").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Unsubscribe(*witness_id).ok());
}

TEST_F(RedisConfigurationTest, HandlerMayUnsubscribeItself) {
  Updates updates;
  std::promise<absl::Status> result;
  std::string id_holder;
  std::mutex mu;
  std::promise<absl::StatusOr<std::string>> subscribed;
  store_->Subscribe(
      {{Key("self")}, {}},
      [&](cfg::UpdateEvent event) {
        std::lock_guard lock(mu);
        result.set_value(store_->Unsubscribe(event.id));
      },
      [&](absl::StatusOr<std::string> id) { subscribed.set_value(id); });
  auto id = subscribed.get_future().get();
  ASSERT_TRUE(id.ok());
  Set(Key("self"), "x");
  auto f = result.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(f.get().ok());
}

TEST_F(RedisConfigurationTest, SubscriptionSurvivesRedisRestart) {
  Updates updates;
  auto id = Subscribe(*store_, {Key("r")}, updates);
  ASSERT_TRUE(id.ok()) << id.status();
  Set(Key("r"), "before||1");
  ASSERT_TRUE(updates.WaitFor(Key("r"), "before").has_value());
  redis_->Kill();
  ASSERT_TRUE(redis_->Restart().ok());
  // The restarted server has notifications off and no subscribers until the store resubscribes:
  // keep writing new values until one arrives.
  auto deadline = steady_clock::now() + std::chrono::seconds(15);
  bool seen = false;
  for (int i = 0; !seen && steady_clock::now() < deadline; ++i) {
    std::string value = StrCat("after", i);
    Set(Key("r"), StrCat(value, "||2"));
    seen = updates.WaitFor(Key("r"), value, milliseconds(100)).has_value();
  }
  EXPECT_TRUE(seen) << "no update after the restart";
  auto events = redis_->Command({"CONFIG", "GET", "notify-keyspace-events"});
  ASSERT_TRUE(events.ok());
  EXPECT_NE(events->find("K"), std::string::npos) << *events;
  EXPECT_TRUE(store_->Unsubscribe(*id).ok());
}

TEST_F(RedisConfigurationTest, UnreachableRedisIsAnErrorNotAHang) {
  components::ComponentContext context;
  context.metadata = components::Metadata(
      {{"redisHost", StrCat("127.0.0.1:", testing::FreePort())}, {"dialTimeout", "300ms"}});
  context.io_context = &SharedIoContext();
  auto store = rc::Create(context);
  ASSERT_TRUE(store.ok());
  std::promise<absl::StatusOr<cfg::Items>> p;
  (*store)->Get({{"a"}, {}}, [&](absl::StatusOr<cfg::Items> r) { p.set_value(r); });
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(f.get().status().code(), absl::StatusCode::kUnavailable);
  Updates updates;
  auto id = Subscribe(**store, {"a"}, updates);
  EXPECT_FALSE(id.ok());
  EXPECT_FALSE((*store)->Health().ok());
}

// Every name metadata.yaml lists, and only those, is read by ParseConfig.
TEST(RedisConfigurationConfigTest, MetadataYamlIsInSyncWithParseConfig) {
  absl::StatusOr<testing::MetadataYamlKeys> keys = testing::ReadRedisMetadataKeys(
      "components/configuration/redis/metadata.yaml",
      [](const components::Metadata& metadata) { return rc::ParseConfig(metadata).status(); });
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->read, keys->documented)
      << "metadata.yaml lists keys ParseConfig ignores, or the reverse";
  auto defaults =
      rc::ParseConfig(components::Metadata(std::map<std::string, std::string>{{"redisHost", "h"}}));
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->settings.min_retry_interval, milliseconds(8));
  EXPECT_EQ(defaults->settings.max_retry_interval, milliseconds(2000));
  EXPECT_EQ(rc::ParseConfig(
                components::Metadata(std::map<std::string, std::string>{{"redisPassword", "x"}}))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace remora
