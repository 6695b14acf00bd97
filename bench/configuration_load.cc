// Load tool of bench/configuration.sh.
//
//   configuration_load --free-port
//   configuration_load --mode get --target config|state --grpc HOST:PORT [--count N] [--window W]
//   configuration_load --mode latency --http-port P --redis HOST:PORT --app-port P [--count N]
//                      [--warmup N]
//
// get: `count` unary calls over one gRPC channel with `window` in flight (async completion
// queue): GetConfiguration(configstore, [bench-key]) or, for the same-run comparison,
// GetState(statestore, bench-key). Prints GET_RESULT calls=... duration_us=... errors=...
//
// latency: an HTTP app (tests/tools/test_app) on --app-port subscribes through remorad
// (GET /v1.0/configuration/configstore/subscribe?key=bench-lat); then, one at a time, a SET of
// "<i>||<i>" straight to Redis and the time until the app's handler has the POST carrying value
// <i>, in this process's steady clock. Prints LATENCY_RESULT updates=... p50_us=... p99_us=...
// errors=... (an update not seen within 2 s counts as an error).

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"
#include "tests/tools/test_app.h"
#include "tests/tools/test_env.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = dapr::proto::runtime::v1;

struct Options {
  std::string mode = "get";
  std::string target = "config";
  std::string grpc = "127.0.0.1:50001";
  std::string redis = "127.0.0.1:6379";
  int http_port = 3500;
  int app_port = 0;
  int count = 20000;
  int window = 32;
  int warmup = 100;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "configuration_load: %s\n", message.c_str());
  std::exit(1);
}

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
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

void Get(const Options& o) {
  auto channel = grpc::CreateChannel(o.grpc, grpc::InsecureChannelCredentials());
  auto stub = v1::Dapr::NewStub(channel);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)))
    Die("no gRPC server");
  const bool config = o.target == "config";
  struct Call {
    grpc::ClientContext ctx;
    grpc::Status status;
    v1::GetConfigurationResponse config;
    v1::GetStateResponse state;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::GetConfigurationResponse>> config_reader;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::GetStateResponse>> state_reader;
  };
  v1::GetConfigurationRequest config_req;
  config_req.set_store_name("configstore");
  config_req.add_keys("bench-key");
  v1::GetStateRequest state_req;
  state_req.set_store_name("statestore");
  state_req.set_key("bench-key");
  grpc::CompletionQueue cq;
  int next = 0, in_flight = 0;
  long errors = 0;
  auto start_one = [&] {
    auto* call = new Call();
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (config) {
      call->config_reader = stub->AsyncGetConfiguration(&call->ctx, config_req, &cq);
      call->config_reader->Finish(&call->config, &call->status, call);
    } else {
      call->state_reader = stub->AsyncGetState(&call->ctx, state_req, &cq);
      call->state_reader->Finish(&call->state, &call->status, call);
    }
    ++next;
    ++in_flight;
  };
  const auto t0 = Clock::now();
  while (next < o.count && in_flight < o.window) start_one();
  void* tag;
  bool ok;
  while (in_flight > 0 && cq.Next(&tag, &ok)) {
    auto* call = static_cast<Call*>(tag);
    --in_flight;
    // An answer without the item counts as an error: the benchmark must read something.
    bool good =
        ok && call->status.ok() &&
        (config ? call->config.items().count("bench-key") == 1 : !call->state.data().empty());
    if (!good) {
      if (errors == 0) {
        std::fprintf(stderr, "configuration_load: get failed: %s\n",
                     call->status.error_message().c_str());
      }
      ++errors;
    }
    delete call;
    if (next < o.count) start_one();
  }
  const auto t1 = Clock::now();
  std::printf("GET_RESULT calls=%d duration_us=%.0f errors=%ld\n", o.count, Us(t1 - t0), errors);
}

void Latency(const Options& o) {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Clock::time_point> arrivals;  // value -> when the app had it
  auto app = remora::testing::TestApp::Start({.port = o.app_port});
  if (!app.ok()) Die(std::string(app.status().message()));
  (*app)->SetPolicy([&](const remora::testing::TestApp::Event& e) {
    auto now = Clock::now();
    if (e.json.is_object() && e.json.contains("items") && e.json["items"].contains("bench-lat")) {
      std::string value = e.json["items"]["bench-lat"].value("value", "");
      std::lock_guard lock(mu);
      arrivals.emplace(value, now);
      cv.notify_all();
    }
    return remora::testing::TestApp::Answer{};
  });
  auto sub = remora::testing::HttpCall("127.0.0.1", o.http_port, "GET",
                                       "/v1.0/configuration/configstore/subscribe?key=bench-lat");
  if (!sub.ok() || sub->status != 200) Die("subscribe failed");
  size_t colon = o.redis.rfind(':');
  redisContext* redis =
      redisConnect(o.redis.substr(0, colon).c_str(), std::atoi(o.redis.substr(colon + 1).c_str()));
  if (redis == nullptr || redis->err) Die("cannot connect to redis " + o.redis);
  std::vector<double> latency;
  long errors = 0;
  for (int i = 0; i < o.warmup + o.count; ++i) {
    std::string value = std::to_string(i);
    std::string stored = value + "||" + value;
    const auto t0 = Clock::now();
    auto* reply = static_cast<redisReply*>(
        redisCommand(redis, "SET bench-lat %b", stored.data(), stored.size()));
    if (reply == nullptr) Die("redis SET failed");
    freeReplyObject(reply);
    std::unique_lock lock(mu);
    bool seen = cv.wait_for(lock, std::chrono::seconds(2), [&] { return arrivals.count(value); });
    if (!seen) {
      ++errors;
      continue;
    }
    if (i >= o.warmup) latency.push_back(Us(arrivals[value] - t0));
  }
  redisFree(redis);
  std::printf("LATENCY_RESULT updates=%zu p50_us=%.1f p99_us=%.1f errors=%ld\n", latency.size(),
              Percentile(latency, 0.5), Percentile(latency, 0.99), errors);
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
    else if (arg == "--http-port")
      o.http_port = std::atoi(v.c_str());
    else if (arg == "--app-port")
      o.app_port = std::atoi(v.c_str());
    else if (arg == "--count")
      o.count = std::atoi(v.c_str());
    else if (arg == "--window")
      o.window = std::max(1, std::atoi(v.c_str()));
    else if (arg == "--warmup")
      o.warmup = std::atoi(v.c_str());
    else
      Die("unknown option " + arg);
  }
  if (o.mode == "get") {
    if (o.target != "config" && o.target != "state") Die("unknown target " + o.target);
    Get(o);
  } else if (o.mode == "latency") {
    Latency(o);
  } else {
    Die("unknown mode " + o.mode);
  }
  return 0;
}
