#pragma once

// The pub/sub conformance suite: one parameterised GoogleTest suite that every `pubsub.*`
// component passes against its real backend (ARCHITECTURE §4, §5; STYLE conventions 5).
//
// A broker joins by instantiating the suite with a harness:
//
//   INSTANTIATE_TEST_SUITE_P(Redis, PubSubConformanceTest, ::testing::Values(RedisHarness()),
//                            PubSubHarnessName());
//
// The harness names the broker, creates components through its factory (the call the runtime
// makes), prepares the backend (start a server once, hand over an io_context the harness runs)
// and declares what the broker promises. What every broker must do:
//
//   - deliver a published message to a subscription with its data (binary-safe, large) and topic
//     (and its metadata and content type where declared), once Subscribe() has returned;
//   - deliver every one of many messages (no loss; no duplicates when nothing failed), also from
//     concurrent publishers;
//   - honour the ack contract of pubsub.h: an error ack makes the message come back later, an OK
//     ack is final, acks may come late, out of order and from any thread;
//   - stop calling the handler once the Subscription is destroyed (also from inside the handler);
//   - reject an empty topic, in Publish and per entry in BulkPublish;
//   - run every Publish/BulkPublish callback exactly once.
//
// Declared capabilities add tests: fan-out across consumer groups, sharing within a group,
// durability of unacked messages across subscriptions, wildcards. A capability a broker does not
// declare must not be advertised in Features() either.
//
// Names: topics and consumer groups carry a prefix unique to the run, the harness and the test,
// so a shared backend needs no cleanup. Every wait polls against a deadline; nothing sleeps for
// a fixed time.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/pubsub/pubsub.h"

namespace remora::conformance::pubsub {

namespace cp = ::remora::components::pubsub;

struct PubSubCapabilities {
  // Two component instances with the same metadata reach the same messages (a server-side broker
  // such as Redis or Kafka). False for a bus inside one component instance (in-memory).
  bool shared_backend = false;
  // Consumer groups (requires shared_backend): subscriptions of components in one group share a
  // topic's messages, each message going to one of them; components in different groups each get
  // every message. When false, every subscription of a component gets every message.
  bool consumer_groups = false;
  // A message whose ack never came survives its subscription: a later subscription in the same
  // group (another component instance, as after a restart) gets it.
  bool durable = false;
  // SUBSCRIBE_WILDCARDS: a subscription topic ending in '*' matches every longer topic with that
  // prefix, and the delivered message names the topic it was published on.
  bool wildcards = false;
  // The delivered content type is the published one.
  bool content_type = false;
  // The published metadata arrives with the message (brokers may add keys of their own).
  bool metadata = true;
  // The broker advertises BULK_PUBSUB.
  bool bulk_publish_feature = false;
};

using PubSubFactory =
    std::function<absl::StatusOr<std::unique_ptr<cp::PubSub>>(const components::ComponentContext&)>;

struct PubSubHarness {
  std::string name;  // instantiation-unique, letters/digits/underscore (used in test names)
  std::string type;  // spec.type, e.g. "pubsub.redis"
  PubSubFactory factory;
  std::map<std::string, std::string> metadata;  // spec.metadata of every component
  // Called before each component is created, e.g. to start a server once and point the metadata
  // at it, or to hand over an io_context the harness runs. An error fails the test.
  std::function<absl::Status(components::ComponentContext&)> prepare;
  // Puts the component into consumer group `group` (already unique to the run and test). Default:
  // metadata["consumerID"] = group. Only used with consumer_groups or durable.
  std::function<void(std::map<std::string, std::string>& metadata, const std::string& group)>
      set_group;
  // Called once for each topic a test uses, before it is used (e.g. to create it on a broker that
  // does not create topics on first use). Optional.
  std::function<absl::Status(const std::string& topic)> create_topic;
  PubSubCapabilities capabilities;

  // Deadlines. Brokers with slow group joins or long redelivery intervals raise them.
  std::chrono::milliseconds call_timeout = std::chrono::seconds(10);  // Publish, BulkPublish
  std::chrono::milliseconds delivery_timeout = std::chrono::seconds(20);
  // An error-acked message, or (durable) an abandoned one, comes back within this.
  std::chrono::milliseconds redelivery_timeout = std::chrono::seconds(20);
  int many_messages = 1000;  // size of the no-loss tests
};

// gtest prints a parameter of a failed test with this, instead of a byte dump.
inline void PrintTo(const PubSubHarness& harness, std::ostream* os) { *os << harness.name; }

// For INSTANTIATE_TEST_SUITE_P's name generator.
struct PubSubHarnessName {
  std::string operator()(const ::testing::TestParamInfo<PubSubHarness>& info) const {
    return info.param.name;
  }
};

// Records what a subscription delivers and answers each delivery as its policy says. Thread-safe;
// must outlive the subscriptions using its Handler().
class Inbox {
 public:
  enum class Action {
    kAck,   // ack OK at once, on the delivering thread
    kFail,  // ack with an error at once
    kHold,  // keep the ack (TakeHeld() hands it out); it is never called otherwise
  };
  // `delivery` counts the deliveries of messages with this data so far, this one included.
  using Policy = std::function<Action(const cp::Message& message, int delivery)>;

  explicit Inbox(Policy policy = nullptr) : policy_(std::move(policy)) {}
  ~Inbox();

  cp::Handler Handler();

  // Deliveries so far, in arrival order.
  std::vector<cp::Message> Messages() const;
  size_t Size() const;
  // Deliveries of messages whose data is `data`.
  int Count(const std::string& data) const;
  // Distinct data values delivered, and how many deliveries repeated one.
  std::set<std::string> Distinct() const;
  int Duplicates() const;

  // Wait until `done` holds for this inbox, or the timeout passes (false).
  bool WaitUntil(const std::function<bool(const Inbox&)>& done,
                 std::chrono::milliseconds timeout) const;
  bool WaitForData(const std::string& data, int deliveries,
                   std::chrono::milliseconds timeout) const;
  bool WaitForDistinct(size_t distinct, std::chrono::milliseconds timeout) const;

  // The acks kept by kHold, oldest first; the inbox no longer holds them.
  std::vector<cp::Ack> TakeHeld();

 private:
  // Unlocked readers for use under mu_.
  int CountLocked(const std::string& data) const;

  Policy policy_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<cp::Message> messages_;
  std::map<std::string, int> counts_;
  std::vector<cp::Ack> held_;
};

// Counts how often each callback handed to a broker ran; TearDown requires exactly once.
class CallLog {
 public:
  struct Entry {
    std::mutex mu;
    int calls = 0;
    std::string what;
  };
  std::shared_ptr<Entry> Add(std::string what);
  std::vector<std::string> Problems() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Entry>> entries_;
};

class PubSubConformanceTest : public ::testing::TestWithParam<PubSubHarness> {
 protected:
  void SetUp() override;
  void TearDown() override;

  const PubSubCapabilities& caps() const { return GetParam().capabilities; }
  const PubSubHarness& harness() const { return GetParam(); }

  // `name` under this run's and this test's unique prefix; create_topic has run for it.
  std::string Topic(const std::string& name);
  // A consumer group name unique to the run and the test.
  std::string Group(const std::string& label) const;

  // A new component instance (in consumer group Group(group_label) where the broker has groups),
  // owned by the fixture. Fails the test (and returns null) when the factory fails.
  cp::PubSub* NewComponent(const std::string& group_label = "main");

  // Blocking wrappers with the harness' call timeout; the callback must run exactly once.
  absl::Status Publish(cp::PubSub& pubsub, const std::string& topic, std::string data,
                       cp::Metadata metadata = {}, std::string content_type = "");
  absl::StatusOr<cp::BulkPublishResult> BulkPublish(cp::PubSub& pubsub,
                                                    std::vector<cp::BulkPublishEntry> entries);
  // Publishes data "<prefix><i>" for i in [0, count) without waiting between them, then waits
  // for every callback; all must succeed.
  void PublishMany(cp::PubSub& pubsub, const std::string& topic, const std::string& prefix,
                   int count);
  // Subscribes `inbox`; fails the test (and returns null) on error.
  std::unique_ptr<cp::Subscription> Subscribe(cp::PubSub& pubsub, const std::string& topic,
                                              Inbox& inbox);

  std::string prefix_;
  CallLog calls_;
  std::vector<std::unique_ptr<cp::PubSub>> components_;
};

}  // namespace remora::conformance::pubsub
