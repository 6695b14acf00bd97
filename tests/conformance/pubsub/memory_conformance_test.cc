// pubsub.in-memory: the pub/sub conformance suite (on an io_context run by two threads, and on
// the component's own worker), plus the details of the in-memory bus the suite leaves to each
// broker.

#include <utility>  // before Asio

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "components/pubsub/memory/memory_pubsub.h"
#include "remora/components/common/strings.h"
#include "tests/conformance/pubsub/pubsub_conformance.h"

namespace remora::conformance::pubsub {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// An io_context run by two threads for the whole test binary: deliveries of different
// subscriptions really run in parallel.
asio::io_context& SharedIo() {
  struct Io {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    std::vector<std::thread> threads;
    Io() {
      for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io.run(); });
    }
    ~Io() {
      guard.reset();
      io.stop();
      for (auto& t : threads) t.join();
    }
  };
  static Io io;
  return io.io;
}

PubSubHarness MemoryHarness(bool own_worker) {
  PubSubHarness h;
  h.name = own_worker ? "InMemoryOwnWorker" : "InMemory";
  h.type = "pubsub.in-memory";
  h.factory = components::pubsub::memory::Create;
  if (!own_worker) {
    h.prepare = [](components::ComponentContext& context) {
      context.io_context = &SharedIo();
      return absl::OkStatus();
    };
  }
  PubSubCapabilities& c = h.capabilities;
  c.wildcards = true;
  c.content_type = true;
  c.metadata = true;
  h.delivery_timeout = std::chrono::seconds(10);
  h.redelivery_timeout = std::chrono::seconds(10);
  return h;
}

INSTANTIATE_TEST_SUITE_P(InMemory, PubSubConformanceTest,
                         ::testing::Values(MemoryHarness(false), MemoryHarness(true)),
                         PubSubHarnessName());

// ---- details of the in-memory bus ----

class MemoryPubSubTest : public ::testing::Test {
 protected:
  std::unique_ptr<cp::PubSub> NewBus() {
    components::ComponentContext context;
    context.type = "pubsub.in-memory";
    context.io_context = &SharedIo();
    auto bus = components::pubsub::memory::Create(context);
    EXPECT_TRUE(bus.ok()) << bus.status();
    return bus.ok() ? *std::move(bus) : nullptr;
  }

  static void Publish(cp::PubSub& bus, std::string topic, std::string data) {
    cp::PublishRequest r;
    r.topic = std::move(topic);
    r.data = std::move(data);
    bool ran = false;
    bus.Publish(std::move(r), [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      ran = true;
    });
    EXPECT_TRUE(ran) << "the in-memory bus completes Publish inline";
  }

  static std::unique_ptr<cp::Subscription> Subscribe(cp::PubSub& bus, std::string topic,
                                                     cp::Handler handler) {
    cp::SubscribeRequest r;
    r.topic = std::move(topic);
    auto sub = bus.Subscribe(std::move(r), std::move(handler));
    EXPECT_TRUE(sub.ok()) << sub.status();
    return sub.ok() ? *std::move(sub) : nullptr;
  }
};

thread_local bool tls_inside_publish = false;

TEST_F(MemoryPubSubTest, DeliveryNeverRunsInsidePublish) {
  auto bus = NewBus();
  std::atomic<int> inline_calls{0};
  Inbox inbox;
  cp::Handler record = inbox.Handler();
  auto sub = Subscribe(*bus, "t", [&](cp::Message m, cp::Ack ack) {
    if (tls_inside_publish) ++inline_calls;
    record(std::move(m), std::move(ack));
  });
  for (int i = 0; i < 50; ++i) {
    tls_inside_publish = true;
    Publish(*bus, "t", StrCat(i));
    tls_inside_publish = false;
  }
  ASSERT_TRUE(inbox.WaitForDistinct(50, std::chrono::seconds(10)));
  EXPECT_EQ(inline_calls.load(), 0);
}

TEST_F(MemoryPubSubTest, OneSubscriptionSeesOnePublishersMessagesInOrderAndNeverConcurrently) {
  auto bus = NewBus();
  std::atomic<int> running{0};
  std::atomic<int> overlaps{0};
  Inbox inbox;
  cp::Handler record = inbox.Handler();
  auto sub = Subscribe(*bus, "ordered", [&](cp::Message m, cp::Ack ack) {
    if (++running > 1) ++overlaps;
    record(std::move(m), std::move(ack));
    --running;
  });
  constexpr int kCount = 500;
  for (int i = 0; i < kCount; ++i) Publish(*bus, "ordered", StrCat(i));
  ASSERT_TRUE(inbox.WaitForDistinct(kCount, std::chrono::seconds(10)));
  EXPECT_EQ(overlaps.load(), 0) << "the handler ran concurrently with itself";
  std::vector<cp::Message> got = inbox.Messages();
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(got[i].data, StrCat(i)) << "out of order at " << i;
}

TEST_F(MemoryPubSubTest, ComponentsDoNotShareABus) {
  auto first = NewBus();
  auto second = NewBus();
  Inbox inbox;
  auto sub = Subscribe(*first, "t", inbox.Handler());
  Publish(*second, "t", "from-the-other-bus");
  Publish(*first, "t", "sentinel");
  ASSERT_TRUE(inbox.WaitForData("sentinel", 1, std::chrono::seconds(10)));
  EXPECT_EQ(inbox.Count("from-the-other-bus"), 0);
}

TEST_F(MemoryPubSubTest, WildcardRules) {
  auto bus = NewBus();
  Inbox all;
  Inbox literal;
  auto sub_all = Subscribe(*bus, "*", all.Handler());
  auto sub_literal = Subscribe(*bus, "a*b", literal.Handler());  // '*' not at the end: literal
  Publish(*bus, "a*b", "star");
  Publish(*bus, "axb", "x");
  Publish(*bus, "zzz", "z");
  ASSERT_TRUE(all.WaitForDistinct(3, std::chrono::seconds(10)));
  ASSERT_TRUE(literal.WaitForData("star", 1, std::chrono::seconds(10)));
  Publish(*bus, "a*b", "sentinel");
  ASSERT_TRUE(literal.WaitForData("sentinel", 1, std::chrono::seconds(10)));
  EXPECT_EQ(literal.Count("x"), 0);
}

TEST_F(MemoryPubSubTest, RedeliveryBacksOff) {
  auto bus = NewBus();
  std::mutex mu;
  std::vector<Clock::time_point> at;
  Inbox inbox([&](const cp::Message&, int delivery) {
    std::lock_guard lock(mu);
    at.push_back(Clock::now());
    return delivery <= 3 ? Inbox::Action::kFail : Inbox::Action::kAck;
  });
  auto sub = Subscribe(*bus, "retry", inbox.Handler());
  Publish(*bus, "retry", "x");
  ASSERT_TRUE(inbox.WaitForData("x", 4, std::chrono::seconds(10)));
  std::lock_guard lock(mu);
  ASSERT_GE(at.size(), 4u);
  // 100 ms, then doubling (a little slack for timer granularity).
  EXPECT_GE(at[1] - at[0], milliseconds(95));
  EXPECT_GE(at[2] - at[1], milliseconds(190));
  EXPECT_GE(at[3] - at[2], milliseconds(380));
}

TEST_F(MemoryPubSubTest, AnAckDroppedWithoutACallCountsAsFailed) {
  auto bus = NewBus();
  Inbox inbox([](const cp::Message&, int delivery) {
    return delivery == 1 ? Inbox::Action::kHold : Inbox::Action::kAck;
  });
  auto sub = Subscribe(*bus, "dropped", inbox.Handler());
  Publish(*bus, "dropped", "x");
  ASSERT_TRUE(inbox.WaitForData("x", 1, std::chrono::seconds(10)));
  inbox.TakeHeld();  // destroyed here, never called
  EXPECT_TRUE(inbox.WaitForData("x", 2, std::chrono::seconds(10)));
}

TEST_F(MemoryPubSubTest, ASubscriptionMayOutliveItsComponent) {
  auto bus = NewBus();
  Inbox inbox([](const cp::Message&, int) { return Inbox::Action::kFail; });
  auto sub = Subscribe(*bus, "t", inbox.Handler());
  Publish(*bus, "t", "x");
  ASSERT_TRUE(inbox.WaitForData("x", 1, std::chrono::seconds(10)));
  bus.reset();
  sub.reset();  // with a redelivery pending
}

}  // namespace
}  // namespace remora::conformance::pubsub
