// Load generator for bench/pubsub.sh: publish throughput and publish→delivery latency, either
// through remorad (gRPC PublishEvent / BulkPublishEvent on the generated stubs, events delivered
// by remorad to an HTTP subscriber app served in this process) or against the broker used
// directly (Redis XADD/XREAD with hiredis, the librdkafka producer/consumer). One line out:
//
//   PUBLISH_RESULT events=<n> duration_us=<d> errors=<e>
//   LATENCY_RESULT events=<n> p50_us=<p> p99_us=<p> publish_p50_us=<p> errors=<e>
//
//   pubsub_load --mode publish --target grpc --grpc 127.0.0.1:50001 --topic t --count 20000
//               --window 64 [--bulk 500]
//   pubsub_load --mode publish --target redis --redis 127.0.0.1:6379 --topic t --count 20000
//   pubsub_load --mode publish --target kafka --brokers 127.0.0.1:9092 --topic t --count 200000
//   pubsub_load --mode latency --target grpc --grpc ADDR --topic t --app-port P --count 2000
//   pubsub_load --mode latency --target redis|kafka ... --count 2000
//   pubsub_load --free-port
//
// Publish: `count` events of --size bytes of JSON data, `window` requests in flight (gRPC async
// calls on one completion queue; Redis: pipelined XADDs on one connection). --bulk B sends B
// entries per request (gRPC BulkPublishEvent; Redis: a pipeline of B XADDs). Kafka direct: the
// producer with its own batching (linger.ms 5), every message's delivery report awaited;
// --kafka-conf KEY=VALUE (repeatable) sets more producer properties, e.g. pubsub.kafka's own
// linger.ms=0 and enable.idempotence=true.
// Latency: one event at a time; from just before the publish call to the moment the subscriber
// has the event (the app's handler runs / XREAD returns / the consumer's poll returns), in this
// process's steady clock. `publish_p50_us` is the publish call alone (gRPC round trip / XADD).

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"
#include "tests/tools/test_app.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = dapr::proto::runtime::v1;

struct Options {
  std::string mode = "publish";
  std::string target = "grpc";
  std::string grpc = "127.0.0.1:50001";
  std::string redis = "127.0.0.1:6379";
  std::string brokers;
  std::string pubsub = "pubsub";
  std::string topic = "bench";
  int count = 10000;
  int window = 64;
  int bulk = 0;
  int size = 64;
  int app_port = 0;
  int warmup = 200;
  std::vector<std::pair<std::string, std::string>> kafka_conf;  // --kafka-conf k=v (producer)
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "pubsub_load: %s\n", message.c_str());
  std::exit(1);
}

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// JSON data of about `size` bytes carrying the sequence number.
std::string Payload(int seq, int size) {
  std::string head = "{\"seq\":" + std::to_string(seq) + ",\"pad\":\"";
  int pad = std::max(0, size - static_cast<int>(head.size()) - 2);
  return head + std::string(static_cast<size_t>(pad), 'x') + "\"}";
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("no free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// ---- publish throughput ------------------------------------------------------------------

void PublishGrpc(const Options& o) {
  auto channel = grpc::CreateChannel(o.grpc, grpc::InsecureChannelCredentials());
  auto stub = v1::Dapr::NewStub(channel);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)))
    Die("no gRPC server");
  struct Call {
    grpc::ClientContext ctx;
    grpc::Status status;
    google::protobuf::Empty empty;
    v1::BulkPublishResponse bulk_response;
    std::unique_ptr<grpc::ClientAsyncResponseReader<google::protobuf::Empty>> single;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::BulkPublishResponse>> bulk;
    int events = 0;
  };
  grpc::CompletionQueue cq;
  const int per_call = o.bulk > 0 ? o.bulk : 1;
  int next = 0;
  long errors = 0;
  int in_flight = 0;
  auto start_one = [&]() {
    auto* call = new Call();
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (o.bulk > 0) {
      v1::BulkPublishRequest req;
      req.set_pubsub_name(o.pubsub);
      req.set_topic(o.topic);
      for (int i = 0; i < per_call && next < o.count; ++i, ++next) {
        auto* e = req.add_entries();
        e->set_entry_id(std::to_string(i));
        e->set_event(Payload(next, o.size));
        e->set_content_type("application/json");
        ++call->events;
      }
      call->bulk = stub->AsyncBulkPublishEvent(&call->ctx, req, &cq);
      call->bulk->Finish(&call->bulk_response, &call->status, call);
    } else {
      v1::PublishEventRequest req;
      req.set_pubsub_name(o.pubsub);
      req.set_topic(o.topic);
      req.set_data(Payload(next++, o.size));
      req.set_data_content_type("application/json");
      call->events = 1;
      call->single = stub->AsyncPublishEvent(&call->ctx, req, &cq);
      call->single->Finish(&call->empty, &call->status, call);
    }
    ++in_flight;
  };
  const auto t0 = Clock::now();
  while (next < o.count && in_flight < o.window) start_one();
  void* tag;
  bool ok;
  while (in_flight > 0 && cq.Next(&tag, &ok)) {
    auto* call = static_cast<Call*>(tag);
    --in_flight;
    if (!ok || !call->status.ok()) {
      if (errors == 0) {
        std::fprintf(stderr, "pubsub_load: publish failed: %s\n",
                     call->status.error_message().c_str());
      }
      errors += call->events;
    } else if (o.bulk > 0) {
      errors += call->bulk_response.failedentries_size();
    }
    delete call;
    if (next < o.count) start_one();
  }
  const auto t1 = Clock::now();
  std::printf("PUBLISH_RESULT events=%d duration_us=%.0f errors=%ld\n", o.count, Us(t1 - t0),
              errors);
}

redisContext* ConnectRedis(const std::string& address) {
  size_t colon = address.rfind(':');
  redisContext* c =
      redisConnect(address.substr(0, colon).c_str(), std::atoi(address.substr(colon + 1).c_str()));
  if (c == nullptr || c->err) Die("cannot connect to Redis at " + address);
  return c;
}

// The XADD pubsub.redis sends for a publish without metadata: XADD <topic> * data <payload>.
void PublishRedis(const Options& o) {
  redisContext* c = ConnectRedis(o.redis);
  const int window = o.bulk > 0 ? o.bulk : o.window;
  long errors = 0;
  int sent = 0;
  int received = 0;
  const auto t0 = Clock::now();
  while (received < o.count) {
    while (sent < o.count && sent - received < window) {
      std::string payload = Payload(sent, o.size);
      redisAppendCommand(c, "XADD %s * data %b", o.topic.c_str(), payload.data(), payload.size());
      ++sent;
    }
    void* reply = nullptr;
    if (redisGetReply(c, &reply) != REDIS_OK) Die("Redis connection failed");
    if (static_cast<redisReply*>(reply)->type == REDIS_REPLY_ERROR) ++errors;
    freeReplyObject(reply);
    ++received;
  }
  const auto t1 = Clock::now();
  redisFree(c);
  std::printf("PUBLISH_RESULT events=%d duration_us=%.0f errors=%ld\n", o.count, Us(t1 - t0),
              errors);
}

struct KafkaDelivered {
  std::atomic<long> ok{0};
  std::atomic<long> failed{0};
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* d = static_cast<KafkaDelivered*>(opaque);
  (m->err ? d->failed : d->ok).fetch_add(1);
}

rd_kafka_t* KafkaProducer(const Options& o, KafkaDelivered* delivered, const char* linger_ms) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const char* k, const char* v) {
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) Die(err);
  };
  set("bootstrap.servers", o.brokers.c_str());
  set("linger.ms", linger_ms);
  set("acks", "all");  // pubsub.kafka's default producerRequiredAcks (WaitForAll)
  for (const auto& [k, v] : o.kafka_conf) set(k.c_str(), v.c_str());
  rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
  rd_kafka_conf_set_opaque(conf, delivered);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) Die(err);
  return rk;
}

void PublishKafka(const Options& o) {
  KafkaDelivered delivered;
  rd_kafka_t* rk = KafkaProducer(o, &delivered, "5");
  // The topic's metadata first, so that the timed part is producing only.
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
  rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  if (md != nullptr) rd_kafka_metadata_destroy(md);
  const auto t0 = Clock::now();
  for (int i = 0; i < o.count; ++i) {
    std::string payload = Payload(i, o.size);
    while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, payload.data(),
                            payload.size(), nullptr, 0, nullptr) != 0) {
      rd_kafka_poll(rk, 1);  // queue full: serve delivery reports
    }
    rd_kafka_poll(rk, 0);
  }
  rd_kafka_flush(rk, 60000);
  const auto t1 = Clock::now();
  std::printf("PUBLISH_RESULT events=%d duration_us=%.0f errors=%ld\n", o.count, Us(t1 - t0),
              o.count - delivered.ok.load());
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
}

// ---- latency -------------------------------------------------------------------------------

// Where the subscriber side reports which sequence number it got, and when.
class Arrivals {
 public:
  void Arrived(int seq) {
    auto now = Clock::now();
    std::lock_guard lock(mu_);
    if (seq == waiting_) {
      at_ = now;
      got_ = true;
      cv_.notify_all();
    }
  }
  void Expect(int seq) {
    std::lock_guard lock(mu_);
    waiting_ = seq;
    got_ = false;
  }
  // The arrival time of the expected event, or nothing after the timeout.
  bool Wait(Clock::time_point* at, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return got_; })) return false;
    *at = at_;
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = -1;
  bool got_ = false;
  Clock::time_point at_;
};

int SeqOf(const char* data, size_t size) {
  std::string s(data, std::min<size_t>(size, 64));
  size_t at = s.find("\"seq\":");
  return at == std::string::npos ? -1 : std::atoi(s.c_str() + at + 6);
}

// Runs `publish(seq)` warmup + count times, one at a time; prints the latency line.
template <typename Publish>
void MeasureLatency(const Options& o, Arrivals& arrivals, Publish publish) {
  std::vector<double> latency;
  std::vector<double> publish_us;
  long errors = 0;
  int missed_warmup = 0;
  for (int i = 0; i < o.warmup + o.count; ++i) {
    arrivals.Expect(i);
    const auto t0 = Clock::now();
    bool ok = publish(i);
    const auto t1 = Clock::now();
    Clock::time_point at;
    // The first event may wait for a consumer group's first join (~3 s on the test broker).
    if (!ok || !arrivals.Wait(&at, std::chrono::seconds(i == 0 ? 30 : 5))) {
      // A warm-up event may miss a consumer that is still starting; a measured one is an error.
      if (i >= o.warmup) ++errors;
      if (i < o.warmup && ++missed_warmup == o.warmup) Die("no warm-up event arrived");
      continue;
    }
    if (i < o.warmup) continue;
    latency.push_back(Us(at - t0));
    publish_us.push_back(Us(t1 - t0));
  }
  std::printf("LATENCY_RESULT events=%zu p50_us=%.1f p99_us=%.1f publish_p50_us=%.1f errors=%ld\n",
              latency.size(), Percentile(latency, 0.5), Percentile(latency, 0.99),
              Percentile(publish_us, 0.5), errors);
}

void LatencyGrpc(const Options& o) {
  Arrivals arrivals;
  auto app = remora::testing::TestApp::Start({.port = o.app_port});
  if (!app.ok()) Die(std::string(app.status().message()));
  (*app)->SetPolicy([&](const remora::testing::TestApp::Event& e) {
    if (e.json.is_object() && e.json.contains("data") && e.json["data"].is_object()) {
      arrivals.Arrived(e.json["data"].value("seq", -1));
    }
    return remora::testing::TestApp::Answer{};
  });
  auto channel = grpc::CreateChannel(o.grpc, grpc::InsecureChannelCredentials());
  auto stub = v1::Dapr::NewStub(channel);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)))
    Die("no gRPC server");
  MeasureLatency(o, arrivals, [&](int seq) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::PublishEventRequest req;
    req.set_pubsub_name(o.pubsub);
    req.set_topic(o.topic);
    req.set_data(Payload(seq, o.size));
    req.set_data_content_type("application/json");
    google::protobuf::Empty empty;
    grpc::Status s = stub->PublishEvent(&ctx, req, &empty);
    if (!s.ok()) std::fprintf(stderr, "pubsub_load: publish: %s\n", s.error_message().c_str());
    return s.ok();
  });
  // The app keeps answering what is still in flight until it is destroyed here.
}

void LatencyRedis(const Options& o) {
  Arrivals arrivals;
  std::atomic<bool> stop{false};
  redisContext* pub = ConnectRedis(o.redis);
  // The reader starts after the stream's current last entry.
  std::thread reader([&] {
    redisContext* c = ConnectRedis(o.redis);
    std::string last = "$";
    while (!stop.load()) {
      auto* r = static_cast<redisReply*>(
          redisCommand(c, "XREAD COUNT 10 BLOCK 200 STREAMS %s %s", o.topic.c_str(), last.c_str()));
      if (r == nullptr) break;
      if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        redisReply* entries = r->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; ++i) {
          redisReply* entry = entries->element[i];
          last.assign(entry->element[0]->str, entry->element[0]->len);
          redisReply* fields = entry->element[1];
          for (size_t f = 0; f + 1 < fields->elements; f += 2) {
            if (std::strcmp(fields->element[f]->str, "data") == 0) {
              arrivals.Arrived(SeqOf(fields->element[f + 1]->str, fields->element[f + 1]->len));
            }
          }
        }
      }
      freeReplyObject(r);
    }
    redisFree(c);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the first XREAD is waiting
  MeasureLatency(o, arrivals, [&](int seq) {
    std::string payload = Payload(seq, o.size);
    auto* r = static_cast<redisReply*>(
        redisCommand(pub, "XADD %s * data %b", o.topic.c_str(), payload.data(), payload.size()));
    bool ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
    if (r != nullptr) freeReplyObject(r);
    return ok;
  });
  stop.store(true);
  reader.join();
  redisFree(pub);
}

void LatencyKafka(const Options& o) {
  Arrivals arrivals;
  std::atomic<bool> stop{false};
  char err[512];
  // The consumer: partition 0 (the topic has one) assigned from its end, no group join; fetch
  // settings left at librdkafka's defaults, as pubsub.kafka leaves them.
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", o.brokers.c_str(), err, sizeof(err));
  rd_kafka_conf_set(conf, "group.id", "pubsub-load-direct", err, sizeof(err));
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (consumer == nullptr) Die(err);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, o.topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_END;
  if (rd_kafka_assign(consumer, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) Die("assign failed");
  rd_kafka_topic_partition_list_destroy(parts);
  std::thread reader([&] {
    while (!stop.load()) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
      if (m == nullptr) continue;
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        arrivals.Arrived(SeqOf(static_cast<const char*>(m->payload), m->len));
      }
      rd_kafka_message_destroy(m);
    }
  });
  KafkaDelivered delivered;
  rd_kafka_t* producer = KafkaProducer(o, &delivered, "0");
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(producer, o.topic.c_str(), nullptr);
  MeasureLatency(o, arrivals, [&](int seq) {
    std::string payload = Payload(seq, o.size);
    if (rd_kafka_produce(rkt, 0, RD_KAFKA_MSG_F_COPY, payload.data(), payload.size(), nullptr, 0,
                         nullptr) != 0) {
      return false;
    }
    rd_kafka_poll(producer, 0);
    return true;
  });
  stop.store(true);
  reader.join();
  rd_kafka_flush(producer, 5000);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(producer);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--free-port") {
      std::printf("%d\n", FreePort());
      return 0;
    }
    if (i + 1 >= argc) Die("missing value for " + arg);
    std::string v = argv[++i];
    if (arg == "--mode")
      o.mode = v;
    else if (arg == "--target")
      o.target = v;
    else if (arg == "--grpc")
      o.grpc = v;
    else if (arg == "--redis")
      o.redis = v;
    else if (arg == "--brokers")
      o.brokers = v;
    else if (arg == "--pubsub")
      o.pubsub = v;
    else if (arg == "--topic")
      o.topic = v;
    else if (arg == "--count")
      o.count = std::atoi(v.c_str());
    else if (arg == "--window")
      o.window = std::max(1, std::atoi(v.c_str()));
    else if (arg == "--bulk")
      o.bulk = std::atoi(v.c_str());
    else if (arg == "--size")
      o.size = std::atoi(v.c_str());
    else if (arg == "--app-port")
      o.app_port = std::atoi(v.c_str());
    else if (arg == "--warmup")
      o.warmup = std::atoi(v.c_str());
    else if (arg == "--kafka-conf" && v.find('=') != std::string::npos)
      o.kafka_conf.emplace_back(v.substr(0, v.find('=')), v.substr(v.find('=') + 1));
    else
      Die("unknown option " + arg);
  }
  if (o.mode == "publish") {
    if (o.target == "grpc")
      PublishGrpc(o);
    else if (o.target == "redis")
      PublishRedis(o);
    else if (o.target == "kafka")
      PublishKafka(o);
    else
      Die("unknown target " + o.target);
  } else if (o.mode == "latency") {
    if (o.target == "grpc")
      LatencyGrpc(o);
    else if (o.target == "redis")
      LatencyRedis(o);
    else if (o.target == "kafka")
      LatencyKafka(o);
    else
      Die("unknown target " + o.target);
  } else {
    Die("unknown mode " + o.mode);
  }
  return 0;
}
