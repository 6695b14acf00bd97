// Closed-loop load generator for bench/redis_state.sh: N clients, each with one request in flight,
// doing a state GET or SAVE of one key either directly against Redis with hiredis (the very
// commands state.redis sends) or through remorad's gRPC API with the C++ SDK. It prints one line:
//
//   LOAD_RESULT requests=<n> duration_us=<d> p50_us=<p> p99_us=<p> errors=<e>
//
//   redis_state_load --target redis --redis 127.0.0.1:6379 --op get --clients 32 --threads 2
//   redis_state_load --target grpc --grpc 127.0.0.1:50001 --op save --clients 1
//
// `redis_state_load --free-port` prints a free loopback port and exits.
// Options: --target redis|grpc, --op get|save, --clients N (1), --threads T (redis only; each
// thread drives clients/threads connections with poll(), like wrk; default 1), --duration S (10),
// --warmup S (1, not recorded), --key K (bench-1k), --app-id A (bench: Redis key "A||K", as
// remorad scopes it), --store S (statestore, grpc), --value-file F (the SAVE value; required for
// save).
//
// Redis: GET is HGETALL + PTTL pipelined on one connection, SAVE is EVALSHA of state.redis' set
// script with the arguments remorad sends for a save without etag or TTL (the script is loaded
// first). gRPC: one thread and one remora::Client per client (the SDK's calls are synchronous).
// Latency: from sending a request to its last reply byte, every request recorded, exact
// percentiles.

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "components/state/redis/redis_store.h"
#include "remora/client.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string target = "redis";
  std::string op = "get";
  int clients = 1;
  int threads = 1;
  double duration = 10;
  double warmup = 1;
  std::string key = "bench-1k";
  std::string app_id = "bench";
  std::string store = "statestore";
  std::string redis = "127.0.0.1:6379";
  std::string grpc = "127.0.0.1:50001";
  std::string value;
};

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "redis_state_load: " << message << "\n";
  std::exit(2);
}

// Per-thread results; latencies in ns.
struct Tally {
  std::vector<int64_t> latencies;
  int64_t errors = 0;
};

// Runs until `stop`, recording only while `record` is set.
struct Phase {
  std::atomic<bool> record{false};
  std::atomic<bool> stop{false};
};

// ---- hiredis, non-blocking, several connections per thread ------------------------------------

class RedisConn {
 public:
  RedisConn(const std::string& host, int port, std::vector<std::vector<std::string>> commands)
      : commands_(std::move(commands)) {
    ctx_ = redisConnect(host.c_str(), port);
    if (ctx_ == nullptr || ctx_->err)
      Die("cannot connect to Redis: " + std::string(ctx_ ? ctx_->errstr : "oom"));
    // Connected blocking; from here on the socket is driven with poll().
    int fd = ctx_->fd;
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    ctx_->flags &= ~REDIS_BLOCK;
  }
  ~RedisConn() { redisFree(ctx_); }
  int fd() const { return ctx_->fd; }
  bool want_write() const { return want_write_; }

  void Send() {
    for (const auto& cmd : commands_) {
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (const auto& a : cmd) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data());
    }
    pending_ = commands_.size();
    sent_ = Clock::now();
    Flush();
  }

  void Flush() {
    int done = 0;
    if (redisBufferWrite(ctx_, &done) == REDIS_ERR) Die("write: " + std::string(ctx_->errstr));
    want_write_ = !done;
  }

  // Reads what arrived; true when the request completed (its latency in *ns, errors counted).
  bool Read(int64_t* ns, bool* error) {
    if (redisBufferRead(ctx_) == REDIS_ERR) Die("read: " + std::string(ctx_->errstr));
    for (;;) {
      void* reply = nullptr;
      if (redisReaderGetReply(ctx_->reader, &reply) == REDIS_ERR) Die("protocol error");
      if (reply == nullptr) return false;
      auto* r = static_cast<redisReply*>(reply);
      if (r->type == REDIS_REPLY_ERROR) {
        if (!*error) std::cerr << "redis error: " << std::string(r->str, r->len) << "\n";
        *error = true;
      }
      freeReplyObject(r);
      if (--pending_ == 0) {
        *ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - sent_).count();
        return true;
      }
    }
  }

 private:
  redisContext* ctx_ = nullptr;
  std::vector<std::vector<std::string>> commands_;
  size_t pending_ = 0;
  Clock::time_point sent_;
  bool want_write_ = false;
};

void RedisThread(const Options& o, int conns, const std::vector<std::vector<std::string>>& commands,
                 Phase* phase, Tally* tally) {
  const size_t colon = o.redis.rfind(':');
  const std::string host = o.redis.substr(0, colon);
  const int port = std::atoi(o.redis.c_str() + colon + 1);
  std::vector<std::unique_ptr<RedisConn>> c;
  for (int i = 0; i < conns; ++i) c.push_back(std::make_unique<RedisConn>(host, port, commands));
  std::vector<pollfd> fds(conns);
  for (auto& conn : c) conn->Send();
  while (!phase->stop.load(std::memory_order_relaxed)) {
    for (int i = 0; i < conns; ++i) {
      fds[i].fd = c[i]->fd();
      fds[i].events = POLLIN | (c[i]->want_write() ? POLLOUT : 0);
      fds[i].revents = 0;
    }
    if (::poll(fds.data(), fds.size(), 100) < 0) continue;
    for (int i = 0; i < conns; ++i) {
      if (fds[i].revents & POLLOUT) c[i]->Flush();
      if (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) {
        int64_t ns = 0;
        bool error = false;
        if (c[i]->Read(&ns, &error)) {
          if (phase->record.load(std::memory_order_relaxed)) {
            tally->latencies.push_back(ns);
            if (error) ++tally->errors;
          }
          c[i]->Send();
        }
      }
    }
  }
}

// ---- gRPC through the SDK ----------------------------------------------------------------------

void GrpcThread(const Options& o, Phase* phase, Tally* tally) {
  remora::RemoteOptions options;
  options.address = o.grpc;
  std::unique_ptr<remora::Client> client = remora::Client::Remote(options);
  while (!phase->stop.load(std::memory_order_relaxed)) {
    Clock::time_point start = Clock::now();
    bool ok;
    if (o.op == "get") {
      absl::StatusOr<remora::State> got = client->GetState(o.store, o.key);
      ok = got.ok() && got->found;
    } else {
      ok = client->SaveState(o.store, o.key, o.value).ok();
    }
    int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    if (phase->record.load(std::memory_order_relaxed)) {
      tally->latencies.push_back(ns);
      if (!ok) ++tally->errors;
    }
  }
}

Options Parse(int argc, char** argv) {
  Options o;
  std::string value_file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value for " + a);
      return argv[++i];
    };
    if (a == "--target")
      o.target = next();
    else if (a == "--op")
      o.op = next();
    else if (a == "--clients")
      o.clients = std::atoi(next().c_str());
    else if (a == "--threads")
      o.threads = std::atoi(next().c_str());
    else if (a == "--duration")
      o.duration = std::atof(next().c_str());
    else if (a == "--warmup")
      o.warmup = std::atof(next().c_str());
    else if (a == "--key")
      o.key = next();
    else if (a == "--app-id")
      o.app_id = next();
    else if (a == "--store")
      o.store = next();
    else if (a == "--redis")
      o.redis = next();
    else if (a == "--grpc")
      o.grpc = next();
    else if (a == "--value-file")
      value_file = next();
    else
      Die("unknown option " + a);
  }
  if (o.target != "redis" && o.target != "grpc") Die("--target is redis or grpc");
  if (o.op != "get" && o.op != "save") Die("--op is get or save");
  if (o.clients < 1 || o.threads < 1) Die("--clients and --threads must be >= 1");
  o.threads = std::min(o.threads, o.clients);
  if (!value_file.empty()) {
    std::ifstream in(value_file, std::ios::binary);
    if (!in) Die("cannot read " + value_file);
    std::stringstream ss;
    ss << in.rdbuf();
    o.value = ss.str();
  } else if (o.op == "save") {
    Die("--value-file is required for save");
  }
  return o;
}

}  // namespace

// A TCP port on 127.0.0.1 that was free a moment ago, for the script.
int PrintFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("no free port");
  }
  std::printf("%d\n", ntohs(addr.sin_port));
  ::close(fd);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--free-port") == 0) return PrintFreePort();
  const Options o = Parse(argc, argv);
  namespace rs = remora::components::state::redis;
  const std::string redis_key = o.app_id.empty() ? o.key : o.app_id + "||" + o.key;
  std::vector<std::vector<std::string>> commands;
  if (o.op == "get") {
    commands = {{"HGETALL", redis_key}, {"PTTL", redis_key}};
  } else {
    commands = {{"EVALSHA", rs::SetScript().sha1, "1", redis_key, "0", o.value, "1", ""}};
  }

  if (o.target == "redis" && o.op == "save") {
    // Load the script once, as remorad has (or will have) done.
    const size_t colon = o.redis.rfind(':');
    redisContext* c =
        redisConnect(o.redis.substr(0, colon).c_str(), std::atoi(o.redis.c_str() + colon + 1));
    if (c == nullptr || c->err) Die("cannot connect to Redis");
    const std::string source(rs::SetScript().source);
    const char* args[] = {"SCRIPT", "LOAD", source.c_str()};
    size_t lens[] = {6, 4, source.size()};
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, 3, args, lens));
    if (r == nullptr || r->type != REDIS_REPLY_STRING || rs::SetScript().sha1 != r->str) {
      Die("SCRIPT LOAD failed");
    }
    freeReplyObject(r);
    redisFree(c);
  }

  Phase phase;
  const int workers = o.target == "redis" ? o.threads : o.clients;
  std::vector<Tally> tallies(workers);
  for (auto& t : tallies) t.latencies.reserve(1 << 20);
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    if (o.target == "redis") {
      int conns = o.clients / o.threads + (w < o.clients % o.threads ? 1 : 0);
      threads.emplace_back(RedisThread, std::cref(o), conns, std::cref(commands), &phase,
                           &tallies[w]);
    } else {
      threads.emplace_back(GrpcThread, std::cref(o), &phase, &tallies[w]);
    }
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  phase.record = true;
  const Clock::time_point start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.duration));
  phase.record = false;
  const Clock::time_point end = Clock::now();
  phase.stop = true;
  for (auto& t : threads) t.join();

  std::vector<int64_t> all;
  int64_t errors = 0;
  for (auto& t : tallies) {
    all.insert(all.end(), t.latencies.begin(), t.latencies.end());
    errors += t.errors;
  }
  if (all.empty()) Die("no request completed");
  std::sort(all.begin(), all.end());
  auto at = [&](double q) { return all[static_cast<size_t>(q * (all.size() - 1))] / 1000; };
  std::printf("LOAD_RESULT requests=%zu duration_us=%lld p50_us=%lld p99_us=%lld errors=%lld\n",
              all.size(),
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::microseconds>(end - start).count()),
              static_cast<long long>(at(0.50)), static_cast<long long>(at(0.99)),
              static_cast<long long>(errors));
  return errors == 0 ? 0 : 1;
}
