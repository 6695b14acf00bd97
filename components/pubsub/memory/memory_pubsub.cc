#include "memory_pubsub.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "components/pubsub/delivery.h"
#include "remora/components/common/strings.h"

namespace remora::components::pubsub::memory {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

constexpr milliseconds kFirstRedelivery{100};
constexpr milliseconds kMaxRedelivery{5000};

milliseconds RedeliveryDelay(int attempt) {
  milliseconds delay = kFirstRedelivery;
  for (int i = 0; i < attempt && delay < kMaxRedelivery; ++i) delay *= 2;
  return std::min(delay, kMaxRedelivery);
}

bool IsWildcard(std::string_view pattern) { return !pattern.empty() && pattern.back() == '*'; }

bool WildcardMatches(std::string_view pattern, std::string_view topic) {
  std::string_view prefix = pattern.substr(0, pattern.size() - 1);
  return topic.size() > prefix.size() && topic.substr(0, prefix.size()) == prefix;
}

// Used when the component gets no io_context (tests, tools): one thread for the process, never
// stopped, so strands and timers on it stay valid however long a subscription lives.
asio::io_context& SharedWorker() {
  struct Worker {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    std::thread thread{[this] { io.run(); }};
  };
  static Worker* worker = new Worker();  // leaked on purpose: outlives every static destructor
  return worker->io;
}

// One subscription's delivery state. Everything but the constructor and Close() runs on
// `strand_`; posted work holds a weak_ptr, so destroying the Subscription frees this at once.
class Subscriber : public std::enable_shared_from_this<Subscriber> {
 public:
  Subscriber(asio::io_context& io, std::string topic, Handler handler)
      : topic_(std::move(topic)), strand_(asio::make_strand(io)), handler_(std::move(handler)) {}

  const std::string& topic() const { return topic_; }

  void Enqueue(std::shared_ptr<const Message> message) {
    asio::post(strand_, [weak = weak_from_this(), message = std::move(message)] {
      if (auto self = weak.lock()) self->Deliver(message, 0);
    });
  }

  void Close() { gate_.Close(); }

 private:
  void Deliver(const std::shared_ptr<const Message>& message, int attempt) {
    Ack ack =
        MakeGuardedAck([weak = weak_from_this(), message, attempt](absl::Status status) mutable {
          if (status.ok()) return;
          if (auto self = weak.lock()) {
            asio::post(self->strand_, [self, message = std::move(message), attempt] {
              self->ScheduleRedelivery(message, attempt);
            });
          }
        });
    gate_.Run([&] { handler_(*message, std::move(ack)); });
  }

  void ScheduleRedelivery(std::shared_ptr<const Message> message, int attempt) {
    if (gate_.closed()) return;
    const uint64_t id = next_timer_++;
    auto& timer = timers_[id];
    timer = std::make_unique<asio::steady_timer>(strand_, RedeliveryDelay(attempt));
    timer->async_wait([weak = weak_from_this(), id, message = std::move(message),
                       attempt](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      self->timers_.erase(id);
      self->Deliver(message, attempt + 1);
    });
  }

  const std::string topic_;
  asio::strand<asio::io_context::executor_type> strand_;
  Handler handler_;
  HandlerGate gate_;
  // Pending redeliveries; destroyed (cancelled) with the subscriber.
  absl::flat_hash_map<uint64_t, std::unique_ptr<asio::steady_timer>> timers_;
  uint64_t next_timer_ = 0;
};

class Bus {
 public:
  void Add(std::shared_ptr<Subscriber> subscriber) {
    absl::MutexLock lock(&mu_);
    if (IsWildcard(subscriber->topic())) {
      wildcard_.push_back(std::move(subscriber));
    } else {
      exact_[subscriber->topic()].push_back(std::move(subscriber));
    }
  }

  void Remove(const Subscriber* subscriber) {
    absl::MutexLock lock(&mu_);
    auto drop = [&](std::vector<std::shared_ptr<Subscriber>>& list) {
      list.erase(std::remove_if(list.begin(), list.end(),
                                [&](const auto& s) { return s.get() == subscriber; }),
                 list.end());
    };
    if (IsWildcard(subscriber->topic())) {
      drop(wildcard_);
    } else if (auto it = exact_.find(subscriber->topic()); it != exact_.end()) {
      drop(it->second);
      if (it->second.empty()) exact_.erase(it);
    }
  }

  std::vector<std::shared_ptr<Subscriber>> Matching(const std::string& topic) const {
    std::vector<std::shared_ptr<Subscriber>> out;
    absl::ReaderMutexLock lock(&mu_);
    if (auto it = exact_.find(topic); it != exact_.end()) out = it->second;
    for (const auto& s : wildcard_) {
      if (WildcardMatches(s->topic(), topic)) out.push_back(s);
    }
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<std::shared_ptr<Subscriber>>> exact_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Subscriber>> wildcard_ ABSL_GUARDED_BY(mu_);
};

class MemorySubscription : public Subscription {
 public:
  MemorySubscription(std::weak_ptr<Bus> bus, std::shared_ptr<Subscriber> subscriber)
      : bus_(std::move(bus)), subscriber_(std::move(subscriber)) {}
  ~MemorySubscription() override {
    if (auto bus = bus_.lock()) bus->Remove(subscriber_.get());
    subscriber_->Close();
  }

 private:
  std::weak_ptr<Bus> bus_;
  std::shared_ptr<Subscriber> subscriber_;
};

class MemoryPubSub : public PubSub {
 public:
  explicit MemoryPubSub(asio::io_context& io) : io_(io), bus_(std::make_shared<Bus>()) {}

  std::vector<Feature> Features() const override { return {Feature::kSubscribeWildcards}; }

  void Publish(PublishRequest request, DoneCallback done) override {
    if (request.topic.empty()) {
      return std::move(done)(
          MakeStatus(absl::StatusCode::kInvalidArgument, "pubsub.in-memory: empty topic"));
    }
    std::vector<std::shared_ptr<Subscriber>> subscribers = bus_->Matching(request.topic);
    if (!subscribers.empty()) {
      auto message = std::make_shared<const Message>(
          Message{std::move(request.topic), std::move(request.data),
                  std::move(request.content_type), std::move(request.metadata)});
      for (const auto& s : subscribers) s->Enqueue(message);
    }
    std::move(done)(absl::OkStatus());
  }

  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(SubscribeRequest request,
                                                          Handler handler) override {
    if (request.topic.empty()) {
      return MakeStatus(absl::StatusCode::kInvalidArgument, "pubsub.in-memory: empty topic");
    }
    if (!handler) {
      return MakeStatus(absl::StatusCode::kInvalidArgument, "pubsub.in-memory: no handler");
    }
    auto subscriber = std::make_shared<Subscriber>(io_, request.topic, std::move(handler));
    bus_->Add(subscriber);
    return std::make_unique<MemorySubscription>(bus_, std::move(subscriber));
  }

 private:
  asio::io_context& io_;
  std::shared_ptr<Bus> bus_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PubSub>> Create(const ComponentContext& context) {
  asio::io_context& io = context.io_context != nullptr ? *context.io_context : SharedWorker();
  return std::make_unique<MemoryPubSub>(io);
}

}  // namespace remora::components::pubsub::memory
