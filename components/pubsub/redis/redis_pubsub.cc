#include "redis_pubsub.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "components/pubsub/delivery.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/log.h"

namespace remora::components::pubsub::redis {
namespace {

namespace asio = boost::asio;
namespace rc = ::remora::redis;
using std::chrono::milliseconds;
using Strand = asio::strand<asio::io_context::executor_type>;

// Pause after a failed XGROUP CREATE / XREADGROUP, doubling per consecutive failure. The client
// reconnects by itself; this only keeps a subscription from spinning while Redis is away.
constexpr milliseconds kFirstRetry{50};
constexpr milliseconds kMaxRetry{2000};
// Pages of XPENDING one reclaim round reads at most when every entry of a page is held here.
constexpr int kMaxPendingPages = 10;

// Removes the consumer a subscription read as, but only when it holds no pending entry: checked
// and deleted atomically, so an entry can never be dropped from the group's pending list.
constexpr char kDeleteIdleConsumer[] = R"lua(
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1)lua";

milliseconds RetryDelay(int failures) {
  milliseconds delay = kFirstRetry;
  for (int i = 1; i < failures && delay < kMaxRetry; ++i) delay *= 2;
  return std::min(delay, kMaxRetry);
}

std::string RandomHex(int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out;
  uint64_t bits = rng();
  for (int i = 0; i < digits; ++i, bits >>= 4) {
    if (i == 16) bits = rng();
    out.push_back(kHex[bits & 0xF]);
  }
  return out;
}

std::string ErrorText(const absl::StatusOr<rc::Reply>& reply) {
  if (!reply.ok()) return std::string(MessageOf(reply.status()));
  return reply->is_error() ? reply->str : reply->DebugString();
}

bool IsNoGroup(const rc::Reply& reply) {
  return reply.is_error() && absl::StartsWith(reply.str, "NOGROUP");
}

// A stream entry as [id, [field, value, ...]] → the message, or nullopt when malformed or deleted.
struct Entry {
  std::string id;
  Message message;
};

std::optional<Entry> ParseEntry(const std::string& topic, const rc::Reply& reply) {
  if (!reply.is_array() || reply.elements.size() != 2 || !reply.elements[0].is_string() ||
      !reply.elements[1].is_array()) {
    return std::nullopt;
  }
  Entry entry;
  entry.id = reply.elements[0].str;
  entry.message.topic = topic;
  const std::vector<rc::Reply>& fields = reply.elements[1].elements;
  for (size_t i = 0; i + 1 < fields.size(); i += 2) {
    const std::string& name = fields[i].str;
    if (name == "data") {
      entry.message.data = fields[i + 1].str;
    } else if (name == "metadata") {
      nlohmann::json object = nlohmann::json::parse(fields[i + 1].str, nullptr, false);
      if (!object.is_object()) continue;
      for (const auto& [key, value] : object.items()) {
        if (value.is_string()) entry.message.metadata[key] = value.get<std::string>();
      }
    }
  }
  return entry;
}

// One subscription: the read loop, the reclaim loop and the hand-off to the handler. Everything
// except Close() and the acks runs on `strand_`; callbacks hold a shared_ptr, so this lives
// until the last of them has run (Close() makes that soon).
class Consumer : public std::enable_shared_from_this<Consumer> {
 public:
  Consumer(asio::io_context& io, std::shared_ptr<rc::Client> client, const Config& config,
           std::string topic, Handler handler)
      : strand_(asio::make_strand(io)),
        client_(std::move(client)),
        config_(config),
        topic_(std::move(topic)),
        name_(StrCat(config.consumer_id, "-", RandomHex(12))),
        handler_(std::move(handler)),
        retry_timer_(strand_),
        reclaim_timer_(strand_) {
    const milliseconds read_timeout = config_.redis.read_timeout;
    block_ = read_timeout.count() > 0 ? read_timeout : milliseconds(3000);
    // The reply may take the whole BLOCK; readTimeout on top is the client's usual margin.
    read_deadline_ = read_timeout.count() > 0 ? block_ + read_timeout : milliseconds(-1);
  }

  void Start() {
    asio::post(strand_, [self = shared_from_this()] {
      self->conn_ = self->client_->Dedicated();
      self->CreateGroup();
    });
  }

  // Any thread. After it returns the handler is not running and will not run again.
  void Close() {
    gate_.Close();
    asio::post(strand_, [self = shared_from_this()] {
      self->closed_ = true;
      self->retry_timer_.cancel();
      self->reclaim_timer_.cancel();
      self->conn_.reset();  // a blocked XREADGROUP completes with CANCELLED
      // Acks not flushed yet go first, on the same connection, so that a consumer whose entries
      // were all acked is removed.
      std::vector<rc::Args> commands;
      if (!self->acks_.empty()) {
        rc::Args xack = {"XACK", self->topic_, self->config_.consumer_id};
        xack.insert(xack.end(), self->acks_.begin(), self->acks_.end());
        self->acks_.clear();
        commands.push_back(std::move(xack));
      }
      commands.push_back(
          {"EVAL", kDeleteIdleConsumer, "1", self->topic_, self->config_.consumer_id, self->name_});
      self->client_->Pipeline(std::move(commands), [](absl::StatusOr<std::vector<rc::Reply>>) {});
    });
  }

 private:
  void CreateGroup() {
    if (closed_) return;
    client_->Command({"XGROUP", "CREATE", topic_, config_.consumer_id, "0", "MKSTREAM"},
                     [self = shared_from_this()](absl::StatusOr<rc::Reply> reply) {
                       asio::dispatch(self->strand_, [self, reply = std::move(reply)] {
                         self->OnGroupCreated(reply);
                       });
                     });
  }

  void OnGroupCreated(const absl::StatusOr<rc::Reply>& reply) {
    if (closed_) return;
    const bool ok = reply.ok() && (!reply->is_error() || absl::StartsWith(reply->str, "BUSYGROUP"));
    if (!ok) {
      ++failures_;
      if (reply.ok() || failures_ == 1) {
        log::Warn("pubsub.redis: XGROUP CREATE ", topic_, " ", config_.consumer_id, ": ",
                  ErrorText(reply));
      }
      RetryAfter([](Consumer& c) { c.CreateGroup(); });
      return;
    }
    failures_ = 0;
    group_ready_ = true;
    if (!reclaim_started_ && config_.redeliver_interval.count() > 0 &&
        config_.processing_timeout.count() > 0) {
      reclaim_started_ = true;
      Reclaim();  // at once, like Dapr: a restarted consumer picks up a dead one's entries early
    }
    MaybeRead();
  }

  void RetryAfter(void (*what)(Consumer&)) {
    retry_timer_.expires_after(RetryDelay(failures_));
    retry_timer_.async_wait([self = shared_from_this(), what](boost::system::error_code ec) {
      if (!ec && !self->closed_) what(*self);
    });
  }

  // ---- reading new entries ----

  void MaybeRead() {
    if (closed_ || reading_ || !group_ready_ || !queue_.empty() || conn_ == nullptr) return;
    reading_ = true;
    conn_->Command(
        {"XREADGROUP", "GROUP", config_.consumer_id, name_, "COUNT", StrCat(config_.queue_depth),
         "BLOCK", StrCat(block_.count()), "STREAMS", topic_, ">"},
        [self = shared_from_this()](absl::StatusOr<rc::Reply> reply) {
          asio::dispatch(self->strand_, [self, reply = std::move(reply)]() mutable {
            self->OnRead(std::move(reply));
          });
        },
        read_deadline_);
  }

  void OnRead(absl::StatusOr<rc::Reply> reply) {
    reading_ = false;
    if (closed_) return;
    if (!reply.ok() || reply->is_error()) {
      if (reply.ok() && IsNoGroup(*reply)) {
        log::Warn("pubsub.redis: consumer group ", config_.consumer_id, " of stream ", topic_,
                  " is gone (deleted, or Redis lost its data); recreating it");
        group_ready_ = false;
        CreateGroup();
        return;
      }
      ++failures_;
      if (reply.ok() || failures_ == 1) {
        log::Warn("pubsub.redis: XREADGROUP ", topic_, ": ", ErrorText(reply));
      }
      RetryAfter([](Consumer& c) { c.MaybeRead(); });
      return;
    }
    failures_ = 0;
    // [[stream, [[id, fields], ...]]], or nil when BLOCK passed without news.
    if (reply->is_array()) {
      for (const rc::Reply& stream : reply->elements) {
        if (!stream.is_array() || stream.elements.size() != 2) continue;
        for (const rc::Reply& item : stream.elements[1].elements) Enqueue(item);
      }
    }
    Pump();
    MaybeRead();
  }

  void Enqueue(const rc::Reply& item) {
    std::optional<Entry> entry = ParseEntry(topic_, item);
    if (!entry || !held_.insert(entry->id).second) return;
    queue_.push_back(*std::move(entry));
  }

  // ---- handing entries to the handler ----

  void Pump() {
    while (!closed_ && in_flight_ < config_.concurrency && !queue_.empty()) {
      Entry entry = std::move(queue_.front());
      queue_.pop_front();
      ++in_flight_;
      Ack ack =
          MakeGuardedAck([weak = weak_from_this(), client = client_, topic = topic_,
                          group = config_.consumer_id, id = entry.id](absl::Status status) mutable {
            if (auto self = weak.lock()) {
              asio::post(self->strand_, [self, id = std::move(id), ok = status.ok()]() mutable {
                self->Release(std::move(id), ok);
              });
            } else if (status.ok()) {
              // The subscription is gone but the handler did its work: XACK all the same.
              client->Command({"XACK", topic, group, id}, [](absl::StatusOr<rc::Reply>) {});
            }
          });
      if (!gate_.Run([&] { handler_(std::move(entry.message), std::move(ack)); })) {
        closed_ = true;  // Close() is on its way; what is queued stays pending in Redis
      }
    }
  }

  // The handler is done with `id`: free its slot. An OK entry is XACKed (batched with the other
  // acks of this event-loop turn); a failed one stays pending in Redis under this consumer and is
  // reclaimed once idle for processingTimeout.
  void Release(std::string id, bool ok) {
    held_.erase(id);
    --in_flight_;
    if (ok) {
      acks_.push_back(std::move(id));
      if (!ack_flush_posted_) {
        ack_flush_posted_ = true;
        asio::post(strand_, [self = shared_from_this()] { self->FlushAcks(); });
      }
    }
    Pump();
    MaybeRead();
  }

  // Runs also after Close(): acks that arrived are still sent.
  void FlushAcks() {
    ack_flush_posted_ = false;
    if (acks_.empty()) return;
    rc::Args command = {"XACK", topic_, config_.consumer_id};
    command.insert(command.end(), std::make_move_iterator(acks_.begin()),
                   std::make_move_iterator(acks_.end()));
    acks_.clear();
    client_->Command(std::move(command), [](absl::StatusOr<rc::Reply>) {});
  }

  // ---- reclaiming entries pending for too long (failed, or left by a dead consumer) ----

  void Reclaim() { ReclaimPage("-", 0); }

  void ScheduleReclaim() {
    if (closed_) return;
    reclaim_timer_.expires_after(config_.redeliver_interval);
    reclaim_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec && !self->closed_) self->Reclaim();
    });
  }

  void ReclaimPage(std::string start, int page) {
    // Entries queued here already count against queueDepth: claim no more until they drain.
    if (closed_) return;
    if (static_cast<int>(queue_.size()) >= config_.queue_depth) return ScheduleReclaim();
    client_->Command(
        {"XPENDING", topic_, config_.consumer_id, "IDLE",
         StrCat(config_.processing_timeout.count()), start, "+", StrCat(config_.queue_depth)},
        [self = shared_from_this(), page](absl::StatusOr<rc::Reply> reply) {
          asio::dispatch(self->strand_,
                         [self, page, reply = std::move(reply)] { self->OnPending(reply, page); });
        });
  }

  void OnPending(const absl::StatusOr<rc::Reply>& reply, int page) {
    if (closed_) return;
    if (!reply.ok() || !reply->is_array()) {
      // NOGROUP is the read loop's to repair; anything else is retried next round.
      if (reply.ok() && !IsNoGroup(*reply)) {
        log::Warn("pubsub.redis: XPENDING ", topic_, ": ", ErrorText(reply));
      }
      return ScheduleReclaim();
    }
    // Each element: [id, consumer, idle ms, deliveries].
    std::vector<std::string> ids;
    std::string last_id;
    for (const rc::Reply& e : reply->elements) {
      if (!e.is_array() || e.elements.empty() || !e.elements[0].is_string()) continue;
      last_id = e.elements[0].str;
      if (!held_.contains(last_id)) ids.push_back(last_id);
    }
    const bool full_page = static_cast<int>(reply->elements.size()) >= config_.queue_depth;
    if (ids.empty()) {
      // A full page of entries this subscription still holds: look further.
      if (full_page && page + 1 < kMaxPendingPages && !last_id.empty()) {
        return ReclaimPage(StrCat("(", last_id), page + 1);
      }
      return ScheduleReclaim();
    }
    rc::Args claim = {"XCLAIM", topic_, config_.consumer_id, name_,
                      StrCat(config_.processing_timeout.count())};
    claim.insert(claim.end(), ids.begin(), ids.end());
    client_->Command(std::move(claim), [self = shared_from_this(), full_page, page,
                                        last_id](absl::StatusOr<rc::Reply> reply) {
      asio::dispatch(self->strand_, [self, full_page, page, last_id, reply = std::move(reply)] {
        self->OnClaimed(reply, full_page, page, last_id);
      });
    });
  }

  void OnClaimed(const absl::StatusOr<rc::Reply>& reply, bool full_page, int page,
                 const std::string& last_id) {
    if (closed_) return;
    // Redis 7 drops entries deleted from the stream (trimmed) from the pending list inside
    // XCLAIM and leaves them out of the reply; entries another consumer claimed first are left
    // out too (XCLAIM re-checks the idle time).
    if (reply.ok() && reply->is_array()) {
      for (const rc::Reply& item : reply->elements) Enqueue(item);
      Pump();
    } else if (!reply.ok() || !IsNoGroup(*reply)) {
      log::Warn("pubsub.redis: XCLAIM ", topic_, ": ", ErrorText(reply));
    }
    if (full_page && page + 1 < kMaxPendingPages) {
      return ReclaimPage(StrCat("(", last_id), page + 1);
    }
    ScheduleReclaim();
  }

  Strand strand_;
  const std::shared_ptr<rc::Client> client_;
  const Config config_;
  const std::string topic_;
  const std::string name_;  // the consumer name within the group
  Handler handler_;
  HandlerGate gate_;
  milliseconds block_;
  milliseconds read_deadline_;

  // On the strand only.
  std::unique_ptr<rc::DedicatedConnection> conn_;
  asio::steady_timer retry_timer_;
  asio::steady_timer reclaim_timer_;
  bool closed_ = false;
  bool group_ready_ = false;
  bool reading_ = false;
  bool reclaim_started_ = false;
  int failures_ = 0;
  std::deque<Entry> queue_;                // read or claimed, not yet with the handler
  absl::flat_hash_set<std::string> held_;  // ids in queue_ or with the handler
  int in_flight_ = 0;                      // with the handler, not yet acked
  std::vector<std::string> acks_;          // acked OK, XACK not sent yet
  bool ack_flush_posted_ = false;
};

class RedisSubscription : public Subscription {
 public:
  explicit RedisSubscription(std::shared_ptr<Consumer> consumer) : consumer_(std::move(consumer)) {}
  ~RedisSubscription() override { consumer_->Close(); }

 private:
  std::shared_ptr<Consumer> consumer_;
};

class RedisPubSub : public PubSub {
 public:
  RedisPubSub(asio::io_context& io, Config config)
      : io_(io),
        config_(std::move(config)),
        client_(std::make_shared<rc::Client>(io, config_.redis)) {}

  std::vector<Feature> Features() const override { return {}; }

  void Publish(PublishRequest request, DoneCallback done) override {
    if (request.topic.empty()) {
      return std::move(done)(
          MakeStatus(absl::StatusCode::kInvalidArgument, "pubsub.redis: empty topic"));
    }
    client_->Command(XAddCommand(config_, request, std::chrono::system_clock::now()),
                     [done = std::move(done)](absl::StatusOr<rc::Reply> reply) mutable {
                       std::move(done)(PublishStatus(reply));
                     });
  }

  // One pipeline for the whole batch: one round trip instead of one per entry.
  void BulkPublish(std::vector<BulkPublishEntry> entries,
                   Callback<BulkPublishResult> done) override {
    BulkPublishResult result;
    std::vector<rc::Args> commands;
    std::vector<std::string> sent_ids;
    const auto now = std::chrono::system_clock::now();
    for (const BulkPublishEntry& entry : entries) {
      if (entry.request.topic.empty()) {
        result.failed.push_back({entry.entry_id, "pubsub.redis: empty topic"});
        continue;
      }
      commands.push_back(XAddCommand(config_, entry.request, now));
      sent_ids.push_back(entry.entry_id);
    }
    if (commands.empty()) return std::move(done)(std::move(result));
    client_->Pipeline(
        std::move(commands),
        [done = std::move(done), result = std::move(result),
         sent_ids = std::move(sent_ids)](absl::StatusOr<std::vector<rc::Reply>> replies) mutable {
          for (size_t i = 0; i < sent_ids.size(); ++i) {
            absl::Status s = !replies.ok() ? replies.status()
                             : i < replies->size()
                                 ? PublishStatus((*replies)[i])
                                 : absl::InternalError("pubsub.redis: reply missing");
            if (!s.ok()) result.failed.push_back({sent_ids[i], std::string(MessageOf(s))});
          }
          std::move(done)(std::move(result));
        });
  }

  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(SubscribeRequest request,
                                                          Handler handler) override {
    if (request.topic.empty()) {
      return MakeStatus(absl::StatusCode::kInvalidArgument, "pubsub.redis: empty topic");
    }
    if (!handler) {
      return MakeStatus(absl::StatusCode::kInvalidArgument, "pubsub.redis: no handler");
    }
    if (config_.consumer_id.empty()) {
      return MakeStatus(absl::StatusCode::kFailedPrecondition,
                        "pubsub.redis: subscribing needs consumerID (or an app id)");
    }
    auto consumer =
        std::make_shared<Consumer>(io_, client_, config_, request.topic, std::move(handler));
    consumer->Start();
    return std::make_unique<RedisSubscription>(std::move(consumer));
  }

  absl::Status Health() const override { return client_->Health(); }

 private:
  static absl::Status PublishStatus(const absl::StatusOr<rc::Reply>& reply) {
    if (!reply.ok()) return reply.status();
    if (reply->is_error()) {
      return MakeStatus(absl::StatusCode::kInternal,
                        StrCat("pubsub.redis: error from publish: ", reply->str));
    }
    return absl::OkStatus();
  }

  asio::io_context& io_;
  const Config config_;
  std::shared_ptr<rc::Client> client_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PubSub>> Create(const ComponentContext& context) {
  absl::StatusOr<Config> config = ParseConfig(context.metadata);
  if (!config.ok()) return config.status();
  if (context.io_context == nullptr) {
    return MakeStatus(absl::StatusCode::kFailedPrecondition, "pubsub.redis: no io_context");
  }
  if (config->consumer_id.empty()) config->consumer_id = context.app_id;
  if (config->max_len_approx > 0 && config->stream_ttl.count() > 0) {
    log::Warn(
        "pubsub.redis component ", context.name,
        ": maxLenApprox and streamTTL are both set; streams are trimmed by maxLenApprox only");
  }
  return std::make_unique<RedisPubSub>(*context.io_context, *std::move(config));
}

}  // namespace remora::components::pubsub::redis
