// One subscription = one librdkafka consumer + one poll thread that owns all of its state.
//
// Acks arrive on any thread; they only append to an inbox and wake the poll thread, which applies
// them. So the per-partition bookkeeping (what was delivered, acked, is waiting for a retry) is
// touched by exactly one thread and needs no lock. The poll thread never waits for an ack.
//
// Each assigned partition's records are split off the consumer queue into a queue of their own,
// which the poll thread reads only while the partition has room in its window: so a slow handler
// throttles fetching of its own partitions (librdkafka stops prefetching when a partition's queue
// is full) without pausing anything, and other partitions go on. A record taken from a partition
// queue is handed to the handler at once, in offset order, while fewer than
// maxInFlightPerPartition are unacknowledged, and leaves the window from the front once acked OK.
// The front of the window is therefore the lowest offset not yet processed, which is exactly what
// may be committed: a commit never passes a record that was not acked, whatever order the acks came
// in.
//
// Each assignment of a partition gets a fresh epoch. Acks carry the epoch of the delivery, so an
// ack that arrives after its partition was revoked (and maybe assigned again) is ignored instead of
// corrupting the new window; the record it acknowledges is redelivered from the committed offset.

#include "consumer.h"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <queue>
#include <thread>
#include <utility>
#include <vector>

#include "rdkafka_util.h"
#include "remora/components/common/strings.h"

namespace remora::components::pubsub::kafka {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Longest the poll thread sleeps in librdkafka when nothing else is due (acks and Stop wake it).
constexpr milliseconds kMaxPollWait{100};
// Acked progress is committed at most this often while running (and always on revoke / close).
constexpr milliseconds kCommitInterval{20};
// Records taken from one partition queue per call.
constexpr int kTakeBatch = 64;
// Records taken from librdkafka before acks and dispatch are looked at again.
constexpr int kPollBatch = 1024;
// Blocking broker calls made on the poll thread during a rebalance.
constexpr int kBrokerCallTimeoutMs = 10'000;

struct AckEvent {
  int32_t partition;
  uint64_t epoch;
  int64_t offset;
  absl::Status status;
};

// Where acks land. Shared with every ack callback, which may outlive the subscription.
class AckInbox {
 public:
  void Push(AckEvent event) {
    std::lock_guard lock(mu_);
    if (closed_) return;
    events_.push_back(std::move(event));
    if (wake_ != nullptr) rd_kafka_queue_yield(wake_);
  }
  void Wake() {
    std::lock_guard lock(mu_);
    if (wake_ != nullptr) rd_kafka_queue_yield(wake_);
  }
  std::vector<AckEvent> Take() {
    std::lock_guard lock(mu_);
    std::vector<AckEvent> out;
    out.swap(events_);
    return out;
  }
  void SetWakeQueue(rd_kafka_queue_t* queue) {
    std::lock_guard lock(mu_);
    wake_ = queue;
  }
  // After Close, pushes are dropped and nothing touches the wake queue any more.
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    wake_ = nullptr;
    events_.clear();
  }

 private:
  std::mutex mu_;
  bool closed_ = false;
  rd_kafka_queue_t* wake_ = nullptr;  // the consumer queue rd_kafka_consumer_poll waits on
  std::vector<AckEvent> events_;
};

enum class EntryState { kQueued, kInFlight, kRetryWait, kAcked };

struct Entry {
  int64_t offset;
  rd_kafka_message_t* message;  // held until acked OK or the partition goes away
  EntryState state = EntryState::kQueued;
};

struct PartitionState {
  uint64_t epoch = 0;
  std::deque<Entry> window;           // offset order; front = lowest offset not yet acked OK
  size_t undelivered_from = 0;        // window[undelivered_from..] were never handed out
  int outstanding = 0;                // in flight or waiting for a retry
  int64_t next_offset = -1;           // one past the last record that left the window; -1: none yet
  int64_t commit_sent = -1;           // last offset sent in a commit
  rd_kafka_queue_t* queue = nullptr;  // the partition's own record queue (owned)
};

struct Retry {
  Clock::time_point due;
  int32_t partition;
  uint64_t epoch;
  int64_t offset;
  bool operator>(const Retry& other) const { return due > other.due; }
};

class Worker {
 public:
  Worker(const Config& config, SubscribeRequest request, Handler handler)
      : topic_(std::move(request.topic)),
        window_(config.max_in_flight_per_partition),
        retry_interval_(config.consume_retry_interval),
        handler_(std::move(handler)),
        reset_latest_(!config.initial_offset_oldest),
        inbox_(std::make_shared<AckInbox>()) {}

  ~Worker() {
    inbox_->Close();
    if (queue_ != nullptr) rd_kafka_queue_destroy(queue_);
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
  }

  absl::Status Start(const Config& config) {
    absl::StatusOr<rd_kafka_conf_t*> conf = NewConf({&config.common, &config.consumer});
    if (!conf.ok()) return conf.status();
    rd_kafka_conf_set_opaque(*conf, this);
    rd_kafka_conf_set_rebalance_cb(*conf, &Worker::RebalanceThunk);
    rd_kafka_conf_set_offset_commit_cb(*conf, &Worker::CommitThunk);
    char error[512];
    rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, *conf, error, sizeof(error));
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(*conf);
      return MakeStatus(absl::StatusCode::kInvalidArgument,
                        StrCat("pubsub.kafka: cannot create consumer: ", error));
    }
    rd_kafka_poll_set_consumer(rk_);
    queue_ = rd_kafka_queue_get_consumer(rk_);
    inbox_->SetWakeQueue(queue_);
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic_.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk_, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaError(err, StrCat("subscribe ", topic_));
    return absl::OkStatus();
  }

  void Stop() {
    stop_.store(true);
    inbox_->Wake();
  }

  void Run() {
    while (!stop_.load()) {
      rd_kafka_message_t* message = rd_kafka_consumer_poll(rk_, PollTimeoutMs());
      for (int n = 0; message != nullptr && !stop_.load(); ++n) {
        OnMessage(message);
        if (n + 1 >= kPollBatch) break;
        message = rd_kafka_consumer_poll(rk_, 0);
      }
      if (stop_.load()) break;
      ApplyAcks();
      FireRetries();
      TakeAndDispatch();
      if (Clock::now() - last_commit_ >= kCommitInterval) Commit(nullptr, /*sync=*/false);
    }
    Shutdown();
  }

 private:
  static void RebalanceThunk(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    static_cast<Worker*>(opaque)->OnRebalance(err, partitions);
  }
  static void CommitThunk(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* offsets, void* opaque) {
    static_cast<Worker*>(opaque)->OnCommitted(err, offsets);
  }

  int PollTimeoutMs() const {
    Clock::time_point now = Clock::now();
    Clock::time_point wake = now + kMaxPollWait;
    if (!retries_.empty()) wake = std::min(wake, retries_.top().due);
    if (commit_pending_) wake = std::min(wake, last_commit_ + kCommitInterval);
    for (const auto& [partition, state] : partitions_) {
      if (state.outstanding < window_ && state.queue != nullptr &&
          rd_kafka_queue_length(state.queue) > 0) {
        return 0;
      }
    }
    auto wait = std::chrono::duration_cast<milliseconds>(wake - now).count();
    return wait < 0 ? 0 : static_cast<int>(wait);
  }

  PartitionState* Find(int32_t partition) {
    auto it = partitions_.find(partition);
    return it == partitions_.end() ? nullptr : &it->second;
  }

  void OnMessage(rd_kafka_message_t* message) {
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        std::fprintf(stderr, "pubsub.kafka: consumer of %s: %s\n", topic_.c_str(),
                     rd_kafka_message_errstr(message));
      }
      rd_kafka_message_destroy(message);
      return;
    }
    PartitionState* state = Find(message->partition);
    // Not (or no longer) ours, or a repeat of a record the window already has (librdkafka can
    // move back after an offset reset): the window must stay in offset order.
    if (state == nullptr ||
        (!state->window.empty() && message->offset <= state->window.back().offset) ||
        message->offset < state->next_offset) {
      rd_kafka_message_destroy(message);
      return;
    }
    state->window.push_back(Entry{message->offset, message});
  }

  // Fills each partition's window from its queue and hands the new records out, in order.
  void TakeAndDispatch() {
    for (auto& [partition, state] : partitions_) {
      while (!stop_.load()) {
        // Records already in the window (taken from the consumer queue, or left over when a
        // handler stopped the subscription) go first.
        while (!stop_.load() && state.outstanding < window_ &&
               state.undelivered_from < state.window.size()) {
          Entry& entry = state.window[state.undelivered_from++];
          ++state.outstanding;
          Deliver(partition, state.epoch, entry);
        }
        int room = window_ - state.outstanding;
        if (room <= 0 || state.queue == nullptr || stop_.load()) break;
        rd_kafka_message_t* batch[kTakeBatch];
        ssize_t n = rd_kafka_consume_batch_queue(state.queue, 0, batch, std::min(room, kTakeBatch));
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; ++i) OnMessage(batch[i]);
      }
    }
  }

  // librdkafka's thread: a partition queue went from empty to non-empty.
  static void QueueNonEmptyThunk(rd_kafka_t* rk, void* opaque) {
    static_cast<Worker*>(opaque)->inbox_->Wake();
  }

  void Deliver(int32_t partition, uint64_t epoch, Entry& entry) {
    entry.state = EntryState::kInFlight;
    const rd_kafka_message_t* m = entry.message;
    Message message;
    message.topic = topic_;
    if (m->payload != nullptr) message.data.assign(static_cast<const char*>(m->payload), m->len);
    if (m->key != nullptr) {
      message.metadata["__key"].assign(static_cast<const char*>(m->key), m->key_len);
    }
    message.metadata["__topic"] = topic_;
    message.metadata["__partition"] = std::to_string(m->partition);
    message.metadata["__offset"] = std::to_string(m->offset);
    rd_kafka_timestamp_type_t type;
    int64_t timestamp = rd_kafka_message_timestamp(m, &type);
    if (timestamp >= 0) message.metadata["__timestamp"] = std::to_string(timestamp);
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name;
      const void* value;
      size_t size;
      for (size_t i = 0;
           rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        std::string& slot = message.metadata[name];
        if (value != nullptr) {
          slot.assign(static_cast<const char*>(value), size);
        } else {
          slot.clear();
        }
      }
    }
    Ack ack = [inbox = inbox_, partition, epoch, offset = entry.offset](absl::Status status) {
      inbox->Push(AckEvent{partition, epoch, offset, std::move(status)});
    };
    handler_(std::move(message), std::move(ack));
  }

  Entry* FindEntry(PartitionState& state, int64_t offset) {
    auto it = std::lower_bound(state.window.begin(), state.window.end(), offset,
                               [](const Entry& e, int64_t o) { return e.offset < o; });
    return it != state.window.end() && it->offset == offset ? &*it : nullptr;
  }

  void ApplyAcks() {
    for (AckEvent& ack : inbox_->Take()) {
      PartitionState* state = Find(ack.partition);
      if (state == nullptr || state->epoch != ack.epoch) continue;  // revoked since
      Entry* entry = FindEntry(*state, ack.offset);
      if (entry == nullptr || entry->state != EntryState::kInFlight) continue;  // a second ack
      if (!ack.status.ok()) {
        entry->state = EntryState::kRetryWait;
        retries_.push(Retry{Clock::now() + retry_interval_, ack.partition, ack.epoch, ack.offset});
        continue;
      }
      entry->state = EntryState::kAcked;
      rd_kafka_message_destroy(entry->message);
      entry->message = nullptr;
      --state->outstanding;
      while (!state->window.empty() && state->window.front().state == EntryState::kAcked) {
        state->next_offset = state->window.front().offset + 1;
        state->window.pop_front();
        --state->undelivered_from;
        commit_pending_ = true;
      }
    }
  }

  void FireRetries() {
    Clock::time_point now = Clock::now();
    while (!retries_.empty() && retries_.top().due <= now && !stop_.load()) {
      Retry retry = retries_.top();
      retries_.pop();
      PartitionState* state = Find(retry.partition);
      if (state == nullptr || state->epoch != retry.epoch) continue;
      Entry* entry = FindEntry(*state, retry.offset);
      if (entry == nullptr || entry->state != EntryState::kRetryWait) continue;
      Deliver(retry.partition, retry.epoch, *entry);
    }
  }

  // The offset the group may resume `state` from: its first record not acked OK.
  static int64_t SafeOffset(const PartitionState& state) {
    return state.window.empty() ? state.next_offset : state.window.front().offset;
  }

  // Commits the safe offset of `only` (or of every partition we hold) where it moved.
  void Commit(const rd_kafka_topic_partition_list_t* only, bool sync) {
    last_commit_ = Clock::now();
    commit_pending_ = false;
    rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(8);
    auto add = [&](int32_t partition, PartitionState& state) {
      int64_t offset = SafeOffset(state);
      if (offset < 0 || offset == state.commit_sent) return;
      rd_kafka_topic_partition_list_add(offsets, topic_.c_str(), partition)->offset = offset;
      state.commit_sent = offset;
    };
    if (only != nullptr) {
      for (int i = 0; i < only->cnt; ++i) {
        if (PartitionState* state = Find(only->elems[i].partition)) {
          add(only->elems[i].partition, *state);
        }
      }
    } else {
      for (auto& [partition, state] : partitions_) add(partition, state);
    }
    if (offsets->cnt > 0) {
      rd_kafka_resp_err_t err = rd_kafka_commit(rk_, offsets, sync ? 0 : 1);
      if (sync && err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::fprintf(stderr, "pubsub.kafka: commit on %s failed: %s\n", topic_.c_str(),
                     rd_kafka_err2str(err));
      }
    }
    rd_kafka_topic_partition_list_destroy(offsets);
  }

  void OnCommitted(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* offsets) {
    if (offsets == nullptr) return;
    for (int i = 0; i < offsets->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = offsets->elems[i];
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR && p.err == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      // Send it again next time unless something newer went out meanwhile.
      PartitionState* state = Find(p.partition);
      if (state != nullptr && state->commit_sent == p.offset) {
        state->commit_sent = -1;
        commit_pending_ = true;
      }
    }
  }

  void OnRebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions) {
    const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk_), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      rd_kafka_topic_partition_list_t* to_commit = PrepareAssignment(partitions);
      // Split the partitions off the consumer queue before any record is fetched for them.
      for (int i = 0; i < partitions->cnt; ++i) {
        int32_t partition = partitions->elems[i].partition;
        PartitionState& state = partitions_[partition];
        DropState(state);
        state = PartitionState{};
        state.epoch = ++epochs_;
        state.queue = rd_kafka_queue_get_partition(rk_, topic_.c_str(), partition);
        if (state.queue != nullptr) {
          rd_kafka_queue_forward(state.queue, nullptr);
          rd_kafka_queue_cb_event_enable(state.queue, &Worker::QueueNonEmptyThunk, this);
        }
      }
      if (cooperative) {
        rd_kafka_error_t* error = rd_kafka_incremental_assign(rk_, partitions);
        if (error != nullptr) rd_kafka_error_destroy(error);
      } else {
        rd_kafka_assign(rk_, partitions);
      }
      if (to_commit != nullptr) {
        // The first owner of a partition under initialOffset newest pins where "newest" was, so
        // records published while the group rebalances later are not skipped by the next owner.
        if (rd_kafka_commit(rk_, to_commit, 0) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          for (int i = 0; i < to_commit->cnt; ++i) {
            if (PartitionState* state = Find(to_commit->elems[i].partition)) {
              state->commit_sent = to_commit->elems[i].offset;
            }
          }
        }
        rd_kafka_topic_partition_list_destroy(to_commit);
      }
      return;
    }
    // Revoked (or an error): keep what was acked, leave the rest to the next owner.
    const bool lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk_);
    if (!lost) Commit(partitions, /*sync=*/true);
    for (int i = 0; i < partitions->cnt; ++i) {
      auto it = partitions_.find(partitions->elems[i].partition);
      if (it == partitions_.end()) continue;
      DropState(it->second);
      partitions_.erase(it);
    }
    if (cooperative && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk_, partitions);
      if (error != nullptr) rd_kafka_error_destroy(error);
    } else {
      rd_kafka_assign(rk_, nullptr);
      if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        for (auto& [partition, state] : partitions_) DropState(state);
        partitions_.clear();
      }
    }
  }

  // Sets each partition's start offset: the committed one, or under initialOffset newest the
  // current end of the partition when the group has none. Returns the offsets to commit for the
  // latter (null when there are none or the lookups failed; librdkafka then resolves the start
  // itself, as it would without this step).
  rd_kafka_topic_partition_list_t* PrepareAssignment(rd_kafka_topic_partition_list_t* partitions) {
    if (!reset_latest_ || partitions->cnt == 0) return nullptr;
    rd_kafka_topic_partition_list_t* committed = rd_kafka_topic_partition_list_copy(partitions);
    rd_kafka_topic_partition_list_t* to_commit = nullptr;
    if (rd_kafka_committed(rk_, committed, kBrokerCallTimeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < committed->cnt; ++i) {
        rd_kafka_topic_partition_t& c = committed->elems[i];
        rd_kafka_topic_partition_t& target = partitions->elems[i];
        if (c.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
        if (c.offset >= 0) {
          target.offset = c.offset;
          continue;
        }
        int64_t low = 0;
        int64_t high = 0;
        if (rd_kafka_query_watermark_offsets(rk_, c.topic, c.partition, &low, &high,
                                             kBrokerCallTimeoutMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
          continue;
        }
        target.offset = high;
        if (to_commit == nullptr) to_commit = rd_kafka_topic_partition_list_new(partitions->cnt);
        rd_kafka_topic_partition_list_add(to_commit, c.topic, c.partition)->offset = high;
      }
    }
    rd_kafka_topic_partition_list_destroy(committed);
    return to_commit;
  }

  // Releases the records and the queue `state` holds (its bookkeeping stays for a commit).
  static void DropState(PartitionState& state) {
    for (Entry& entry : state.window) {
      if (entry.message != nullptr) rd_kafka_message_destroy(entry.message);
      entry.message = nullptr;
    }
    state.window.clear();
    state.undelivered_from = 0;
    state.outstanding = 0;
    if (state.queue != nullptr) {
      rd_kafka_queue_cb_event_enable(state.queue, nullptr, nullptr);
      rd_kafka_queue_destroy(state.queue);
      state.queue = nullptr;
    }
  }

  void Shutdown() {
    // Acks that made it in before the stop still count.
    ApplyAcks();
    Commit(nullptr, /*sync=*/true);
    inbox_->Close();
    for (auto& [partition, state] : partitions_) DropState(state);
    partitions_.clear();
    // Leaves the group (the revoke finds nothing left to commit) so the partitions move on at
    // once instead of after the session timeout.
    rd_kafka_consumer_close(rk_);
    rd_kafka_queue_destroy(queue_);
    queue_ = nullptr;
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
  }

  const std::string topic_;
  const int window_;
  const milliseconds retry_interval_;
  Handler handler_;
  const bool reset_latest_;  // initialOffset newest
  std::shared_ptr<AckInbox> inbox_;
  std::atomic<bool> stop_{false};

  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
  // Poll thread only from here on.
  std::map<int32_t, PartitionState> partitions_;
  std::priority_queue<Retry, std::vector<Retry>, std::greater<Retry>> retries_;
  uint64_t epochs_ = 0;
  Clock::time_point last_commit_ = Clock::now();
  bool commit_pending_ = false;
};

class KafkaSubscription final : public Subscription {
 public:
  explicit KafkaSubscription(std::shared_ptr<Worker> worker) : worker_(std::move(worker)) {
    thread_ = std::thread([worker = worker_] { worker->Run(); });
  }
  ~KafkaSubscription() override {
    worker_->Stop();
    // Destroyed from inside a handler: the thread finishes on its own (it holds the worker).
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

 private:
  std::shared_ptr<Worker> worker_;
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Subscription>> StartSubscription(const Config& config,
                                                                SubscribeRequest request,
                                                                Handler handler) {
  if (config.consumer_group.empty()) {
    return MakeStatus(absl::StatusCode::kFailedPrecondition,
                      "pubsub.kafka: no consumer group (set consumerGroup, or run with an app id)");
  }
  if (request.topic.empty()) {
    return MakeStatus(absl::StatusCode::kInvalidArgument, "pubsub.kafka: empty topic");
  }
  for (const auto& [key, value] : request.metadata) {
    if (key == "valueSchemaType" && value != "None" && value != "none" && !value.empty()) {
      return MakeStatus(absl::StatusCode::kUnimplemented,
                        StrCat("pubsub.kafka: valueSchemaType ", value, " is not supported"));
    }
  }
  auto worker = std::make_shared<Worker>(config, std::move(request), std::move(handler));
  if (absl::Status status = worker->Start(config); !status.ok()) return status;
  return std::make_unique<KafkaSubscription>(std::move(worker));
}

}  // namespace remora::components::pubsub::kafka
