// The publishing half of pubsub.kafka and the component object.
//
// One producer per component. librdkafka batches and retries on its own threads; our thread only
// serves delivery reports (rd_kafka_poll), which is where `done` callbacks run. Each produced
// record carries a pointer to its completion as the message opaque, so no lookup table is needed.

#include "kafka_pubsub.h"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "consumer.h"
#include "nlohmann/json.hpp"
#include "rdkafka_util.h"
#include "remora/components/common/strings.h"

namespace remora::components::pubsub::kafka {
namespace {

// What a delivery report completes: one Publish, or one entry of a BulkPublish.
struct Delivery {
  enum class Kind { kSingle, kBulkEntry } kind;
};

struct SingleDelivery : Delivery {
  explicit SingleDelivery(DoneCallback d) : Delivery{Kind::kSingle}, done(std::move(d)) {}
  DoneCallback done;
};

// Shared by all entries of one BulkPublish; the last completion answers and frees it. `pending`
// starts one higher than the entry count so that it cannot reach zero while entries are still
// being produced.
struct BulkState {
  struct Entry : Delivery {
    Entry() : Delivery{Kind::kBulkEntry} {}
    BulkState* state = nullptr;
    size_t index = 0;
  };
  std::vector<Entry> entries;
  std::vector<std::string> ids;
  std::atomic<size_t> pending{0};
  std::mutex mu;
  BulkPublishResult result;
  Callback<BulkPublishResult> done;

  void Finish(size_t index, const absl::Status& status) {
    if (!status.ok()) {
      std::lock_guard lock(mu);
      result.failed.push_back({ids[index], std::string(MessageOf(status))});
    }
    Release();
  }
  void Release() {
    if (pending.fetch_sub(1) != 1) return;
    std::move(done)(std::move(result));
    delete this;
  }
};

void Complete(Delivery* delivery, absl::Status status) {
  if (delivery->kind == Delivery::Kind::kSingle) {
    auto* single = static_cast<SingleDelivery*>(delivery);
    DoneCallback done = std::move(single->done);
    delete single;
    std::move(done)(std::move(status));
  } else {
    auto* entry = static_cast<BulkState::Entry*>(delivery);
    entry->state->Finish(entry->index, status);
  }
}

const std::string* FindKey(const Metadata& metadata, std::string_view key) {
  auto it = metadata.find(std::string(key));
  return it == metadata.end() ? nullptr : &it->second;
}

class KafkaPubSub final : public PubSub {
 public:
  explicit KafkaPubSub(Config config) : config_(std::move(config)) {}

  ~KafkaPubSub() override {
    stop_.store(true);
    if (poll_thread_.joinable()) poll_thread_.join();
    if (producer_ == nullptr) return;
    // Give records in flight a moment to be acknowledged; the rest fail with "purged" so every
    // `done` runs before we return.
    rd_kafka_flush(producer_, kCloseFlushMs);
    rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(producer_, 0);
    rd_kafka_flush(producer_, 100);
    rd_kafka_destroy(producer_);
  }

  absl::Status Start() {
    Settings fixed = {
        // Acked publishes are what callers wait for; do not hold records back to batch them.
        // Batches still form under load while earlier requests are in flight.
        {"linger.ms", "0"},
        // Bulk publishes enqueue everything at once.
        {"queue.buffering.max.messages", "2000000"},
        // A publish fails after this long instead of librdkafka's five minutes.
        {"message.timeout.ms", "30000"},
        // Feeds Health(): broker states once a second.
        {"statistics.interval.ms", "1000"},
    };
    absl::StatusOr<rd_kafka_conf_t*> conf = NewConf({&config_.common, &fixed, &config_.producer});
    if (!conf.ok()) return conf.status();
    rd_kafka_conf_set_opaque(*conf, this);
    rd_kafka_conf_set_dr_msg_cb(*conf, &KafkaPubSub::DeliveryThunk);
    rd_kafka_conf_set_error_cb(*conf, &KafkaPubSub::ErrorThunk);
    rd_kafka_conf_set_stats_cb(*conf, &KafkaPubSub::StatsThunk);
    char error[512];
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, error, sizeof(error));
    if (producer_ == nullptr) {
      rd_kafka_conf_destroy(*conf);
      return MakeStatus(absl::StatusCode::kInvalidArgument,
                        StrCat("pubsub.kafka: cannot create producer: ", error));
    }
    poll_thread_ = std::thread([this] {
      while (!stop_.load()) rd_kafka_poll(producer_, 100);
    });
    return absl::OkStatus();
  }

  std::vector<Feature> Features() const override { return {Feature::kBulkPublish}; }

  void Publish(PublishRequest request, DoneCallback done) override {
    auto* delivery = new SingleDelivery(std::move(done));
    if (absl::Status status = Produce(request, delivery); !status.ok()) {
      Complete(delivery, std::move(status));
    }
  }

  void BulkPublish(std::vector<BulkPublishEntry> entries,
                   Callback<BulkPublishResult> done) override {
    auto* state = new BulkState();
    state->entries.resize(entries.size());
    state->ids.reserve(entries.size());
    state->pending.store(entries.size() + 1);
    state->done = std::move(done);
    for (size_t i = 0; i < entries.size(); ++i) {
      state->entries[i].state = state;
      state->entries[i].index = i;
      state->ids.push_back(std::move(entries[i].entry_id));
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      if (absl::Status status = Produce(entries[i].request, &state->entries[i]); !status.ok()) {
        state->Finish(i, status);
      }
    }
    state->Release();
  }

  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(SubscribeRequest request,
                                                          Handler handler) override {
    return StartSubscription(config_, std::move(request), std::move(handler));
  }

  absl::Status Health() const override {
    std::lock_guard lock(health_mu_);
    if (broker_error_.empty()) return absl::OkStatus();
    return MakeStatus(absl::StatusCode::kUnavailable, StrCat("kafka: ", broker_error_));
  }

 private:
  static constexpr int kCloseFlushMs = 5000;

  // Enqueues one record. On error nothing was enqueued and the caller completes `delivery`.
  absl::Status Produce(const PublishRequest& request, Delivery* delivery) {
    if (request.topic.empty()) {
      return MakeStatus(absl::StatusCode::kInvalidArgument, "pubsub.kafka: empty topic");
    }
    const std::string* key = FindKey(request.metadata, "partitionKey");
    if (key == nullptr) key = FindKey(request.metadata, "__key");
    int32_t partition = RD_KAFKA_PARTITION_UA;
    if (const std::string* number = FindKey(request.metadata, "partitionNumber")) {
      char* end = nullptr;
      long value = std::strtol(number->c_str(), &end, 10);
      if (number->empty() || *end != '\0' || value < 0 || value > INT32_MAX) {
        return MakeStatus(
            absl::StatusCode::kInvalidArgument,
            StrCat("pubsub.kafka: partitionNumber \"", *number, "\" is not a partition number"));
      }
      partition = static_cast<int32_t>(value);
    }
    if (config_.max_message_bytes > 0) {
      size_t size = request.data.size() + (key != nullptr ? key->size() : 0);
      for (const auto& [name, value] : request.metadata) size += name.size() + value.size();
      if (size > static_cast<size_t>(config_.max_message_bytes)) {
        return MakeStatus(
            absl::StatusCode::kInvalidArgument,
            StrCat("pubsub.kafka: message of ", size, " bytes is larger than maxMessageBytes (",
                   config_.max_message_bytes, ")"));
      }
    }
    // As Dapr does, every metadata entry becomes a header, the key included.
    rd_kafka_headers_t* headers = nullptr;
    if (!request.metadata.empty()) {
      headers = rd_kafka_headers_new(request.metadata.size());
      for (const auto& [name, value] : request.metadata) {
        rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                            static_cast<ssize_t>(value.size()));
      }
    }
    const void* key_data = key != nullptr ? key->data() : nullptr;
    const size_t key_size = key != nullptr ? key->size() : 0;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producer_, RD_KAFKA_V_TOPIC(request.topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(const_cast<char*>(request.data.data()), request.data.size()),
        RD_KAFKA_V_KEY(key_data, key_size), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE(delivery), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (headers != nullptr) rd_kafka_headers_destroy(headers);  // not taken on failure
      return KafkaError(err, StrCat("publish to ", request.topic));
    }
    return absl::OkStatus();
  }

  static void DeliveryThunk(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque) {
    auto* self = static_cast<KafkaPubSub*>(opaque);
    auto* delivery = static_cast<Delivery*>(message->_private);
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      self->BrokerReachable();
      Complete(delivery, absl::OkStatus());
    } else {
      Complete(delivery,
               KafkaError(message->err, StrCat("publish to ", rd_kafka_topic_name(message->rkt))));
    }
  }

  static void ErrorThunk(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* self = static_cast<KafkaPubSub*>(opaque);
    auto code = static_cast<rd_kafka_resp_err_t>(err);
    // A single broker dropping a connection is routine; these mean nothing works.
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || code == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
        code == RD_KAFKA_RESP_ERR__FATAL) {
      std::lock_guard lock(self->health_mu_);
      self->broker_error_ = reason;
    }
  }

  // Any broker in state UP clears a recorded outage.
  static int StatsThunk(rd_kafka_t* rk, char* json, size_t size, void* opaque) {
    auto* self = static_cast<KafkaPubSub*>(opaque);
    nlohmann::json stats = nlohmann::json::parse(json, json + size, nullptr, false);
    if (stats.is_object() && stats.contains("brokers") && stats["brokers"].is_object()) {
      for (const auto& [name, broker] : stats["brokers"].items()) {
        if (broker.is_object() && broker.value("state", "") == "UP") {
          self->BrokerReachable();
          break;
        }
      }
    }
    return 0;  // librdkafka frees `json`
  }

  void BrokerReachable() {
    std::lock_guard lock(health_mu_);
    broker_error_.clear();
  }

  const Config config_;
  rd_kafka_t* producer_ = nullptr;
  std::atomic<bool> stop_{false};
  std::thread poll_thread_;
  mutable std::mutex health_mu_;
  std::string broker_error_;  // empty: healthy as far as we know
};

}  // namespace

absl::StatusOr<std::unique_ptr<PubSub>> CreateFromConfig(Config config) {
  auto pubsub = std::make_unique<KafkaPubSub>(std::move(config));
  if (absl::Status status = pubsub->Start(); !status.ok()) return status;
  return pubsub;
}

absl::StatusOr<std::unique_ptr<PubSub>> Create(const ComponentContext& context) {
  absl::StatusOr<Config> config = ParseConfig(context.metadata);
  if (!config.ok()) return config.status();
  // The runtime passes the app id as consumerID; a caller that did not still gets Dapr's default.
  if (config->consumer_group.empty() && !context.app_id.empty()) {
    config->consumer_group = context.app_id;
    config->consumer.emplace_back("group.id", context.app_id);
  }
  return CreateFromConfig(*std::move(config));
}

}  // namespace remora::components::pubsub::kafka
