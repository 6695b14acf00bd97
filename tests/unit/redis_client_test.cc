// The shared Redis client against a real redis-server started by the test on a free port.

#include "remora/components/common/redis/client.h"

#include <utility>  // before Asio

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "remora/components/common/metadata.h"
#include "remora/components/common/strings.h"
#include "tests/tools/redis_server.h"
#include "tests/tools/test_env.h"

namespace remora::redis {
namespace {

using ::remora::testing::RedisServer;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;
using Map = std::map<std::string, std::string>;

// An io_context run by background threads for the duration of a test.
class IoThread {
 public:
  explicit IoThread(int threads = 1) : guard_(io_.get_executor()) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~IoThread() {
    guard_.reset();
    for (auto& t : threads_) t.join();  // returns once every handler of every client finished
  }
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

template <typename T>
class Waiter {
 public:
  Waiter() : promise_(std::make_shared<std::promise<T>>()), future_(promise_->get_future()) {}
  auto Callback() {
    return [p = promise_](T value) { p->set_value(std::move(value)); };
  }
  // Fails the test (and returns a status) if no callback arrives within `timeout`.
  T Get(milliseconds timeout = std::chrono::seconds(20)) {
    if (future_.wait_for(timeout) != std::future_status::ready) {
      ADD_FAILURE() << "no callback within " << timeout.count() << "ms";
      return T{};
    }
    return future_.get();
  }

 private:
  std::shared_ptr<std::promise<T>> promise_;
  std::future<T> future_;
};

absl::StatusOr<Reply> Call(Client& client, Args args,
                           std::optional<milliseconds> timeout = std::nullopt) {
  Waiter<absl::StatusOr<Reply>> w;
  client.Command(std::move(args), w.Callback(), timeout);
  return w.Get();
}

absl::StatusOr<std::vector<Reply>> RunPipeline(Client& client, std::vector<Args> commands) {
  Waiter<absl::StatusOr<std::vector<Reply>>> w;
  client.Pipeline(std::move(commands), w.Callback());
  return w.Get();
}

bool WaitUntil(const std::function<bool()>& condition, milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(5));  // poll interval
  }
  return condition();
}

std::string UniqueKey(std::string_view name) {
  static std::atomic<int> counter{0};
  return StrCat("redis-client-test:", static_cast<int64_t>(::getpid()), ":", counter++, ":", name);
}

Settings SettingsFor(int port) {
  Settings s;
  s.host = "127.0.0.1";
  s.port = port;
  s.dial_timeout = milliseconds(2000);
  s.read_timeout = milliseconds(3000);
  s.write_timeout = milliseconds(3000);
  s.min_retry_interval = milliseconds(10);
  s.max_retry_interval = milliseconds(200);
  s.pool_size = 3;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Settings

TEST(RedisSettingsTest, DefaultsAndHostForms) {
  absl::StatusOr<Settings> s = ParseSettings(components::Metadata(Map{{"redisHost", "redis"}}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->host, "redis");
  EXPECT_EQ(s->port, 6379);  // added when missing, as Dapr does
  EXPECT_EQ(s->db, 0);
  EXPECT_EQ(s->dial_timeout, milliseconds(5000));
  EXPECT_EQ(s->read_timeout, milliseconds(3000));
  EXPECT_EQ(s->write_timeout, milliseconds(3000));
  EXPECT_EQ(s->Address(), "redis:6379");

  s = ParseSettings(components::Metadata(Map{{"redisHost", " 10.0.0.5:7000 "}}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->host, "10.0.0.5");
  EXPECT_EQ(s->port, 7000);

  s = ParseSettings(components::Metadata(Map{{"redisHost", "[::1]:7001"}}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->host, "::1");
  EXPECT_EQ(s->port, 7001);
  EXPECT_EQ(s->Address(), "[::1]:7001");

  s = ParseSettings(components::Metadata(Map{{"redisHost", "::1"}}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->host, "::1");
  EXPECT_EQ(s->port, 6379);

  s = ParseSettings(components::Metadata(Map{{"redisHost", "redis"}, {"redisPort", "6390"}}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->port, 6390);
}

TEST(RedisSettingsTest, AllKeys) {
  components::Metadata md(
      Map{{"redisHost", "localhost:6380"}, {"redisPassword", "pw"},
          {"redisUsername", "alice"},      {"redisDB", "5"},
          {"dialTimeout", "2s"},           {"readTimeout", "1500"},  // bare integer: milliseconds
          {"writeTimeout", "-1"},                                    // negative: disabled
          {"redisMaxRetries", "7"},        {"redisMinRetryInterval", "20ms"},
          {"redisMaxRetryInterval", "1m"}, {"poolSize", "4"},
          {"enableTLS", "false"},          {"redisType", "node"},
          {"minIdleConns", "3"},           {"maxConnAge", "30m"},
          {"poolTimeout", "4s"},           {"idleTimeout", "5m"},
          {"idleCheckFrequency", "1m"},    {"failover", "false"},
          {"sentinelMasterName", ""},      {"useEntraID", "false"}});
  absl::StatusOr<Settings> s = ParseSettings(md);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->host, "localhost");
  EXPECT_EQ(s->port, 6380);
  EXPECT_EQ(s->password, "pw");
  EXPECT_EQ(s->username, "alice");
  EXPECT_EQ(s->db, 5);
  EXPECT_EQ(s->dial_timeout, milliseconds(2000));
  EXPECT_EQ(s->read_timeout, milliseconds(1500));
  EXPECT_LT(s->write_timeout.count(), 0);
  EXPECT_EQ(s->max_retries, 7);
  EXPECT_EQ(s->min_retry_interval, milliseconds(20));
  EXPECT_EQ(s->max_retry_interval, milliseconds(60000));
  EXPECT_EQ(s->pool_size, 4);
  // Every key was read, including the go-redis pool keys that change nothing here.
  EXPECT_THAT(md.Unused(), ::testing::IsEmpty());
}

TEST(RedisSettingsTest, LegacyAliasesAndComponentDefaults) {
  Settings defaults;
  defaults.max_retries = 3;
  defaults.min_retry_interval = milliseconds(2000);  // state.redis' default
  absl::StatusOr<Settings> s =
      ParseSettings(components::Metadata(Map{{"redisHost", "h"}}), defaults);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->min_retry_interval, milliseconds(2000));

  s = ParseSettings(
      components::Metadata(Map{{"redisHost", "h"}, {"maxRetries", "9"}, {"maxRetryBackoff", "1s"}}),
      defaults);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->max_retries, 9);
  EXPECT_EQ(s->min_retry_interval, milliseconds(1000));

  // Zero keeps the default (go-redis semantics); writeTimeout follows readTimeout.
  s = ParseSettings(components::Metadata(
      Map{{"redisHost", "h"}, {"readTimeout", "0"}, {"dialTimeout", "0s"}, {"poolSize", "0"}}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->read_timeout, milliseconds(3000));
  EXPECT_EQ(s->dial_timeout, milliseconds(5000));
  EXPECT_EQ(s->pool_size, Settings().pool_size);
  s = ParseSettings(components::Metadata(Map{{"redisHost", "h"}, {"readTimeout", "250ms"}}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->write_timeout, milliseconds(250));

  s = ParseSettings(components::Metadata(Map{{"redisHost", "h"}, {"poolSize", "500"}}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->pool_size, 16);  // capped: connections are pipelined
}

TEST(RedisSettingsTest, BadInputIsAnErrorNamingTheKey) {
  struct Case {
    Map values;
    std::string expected;
  };
  std::vector<Case> cases = {
      {{}, "redisHost is required"},
      {{{"redisHost", "  "}}, "redisHost is required"},
      {{{"redisHost", "h:port"}}, "not a port"},
      {{{"redisHost", "h:70000"}}, "not a port"},
      {{{"redisHost", "[::1"}}, "bad redisHost"},
      {{{"redisHost", "a:1,b:2"}}, "several hosts"},
      {{{"redisHost", "redis://user:pw@h:6379"}}, "not a URL"},
      {{{"redisHost", "h"}, {"redisPort", "x"}}, "redisPort"},
      {{{"redisHost", "h"}, {"redisDB", "one"}}, "redisDB"},
      {{{"redisHost", "h"}, {"redisDB", "-1"}}, "redisDB"},
      {{{"redisHost", "h"}, {"readTimeout", "soon"}}, "readTimeout"},
      {{{"redisHost", "h"}, {"dialTimeout", "5 parsecs"}}, "dialTimeout"},
      {{{"redisHost", "h"}, {"redisMaxRetries", "many"}}, "redisMaxRetries"},
      {{{"redisHost", "h"}, {"poolSize", "big"}}, "poolSize"},
      {{{"redisHost", "h"}, {"enableTLS", "perhaps"}}, "enableTLS"},
      {{{"redisHost", "h"}, {"enableTLS", "true"}}, "hiredis 0.14 has no TLS"},
      {{{"redisHost", "h"}, {"redisType", "cluster"}}, "cluster\" is not supported"},
      {{{"redisHost", "h"}, {"redisType", "ring"}}, "redisType"},
      {{{"redisHost", "h"}, {"failover", "true"}}, "Sentinel"},
      {{{"redisHost", "h"}, {"useAzureAD", "true"}}, "useAzureAD"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Settings> s = ParseSettings(components::Metadata(c.values));
    ASSERT_FALSE(s.ok()) << "accepted: " << c.expected;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(MessageOf(s.status())), HasSubstr(c.expected));
  }
}

TEST(RedisReplyTest, DebugString) {
  Reply r;
  r.type = Reply::Type::kArray;
  Reply a;
  a.type = Reply::Type::kString;
  a.str = std::string("a\0\"", 3);
  Reply i;
  i.type = Reply::Type::kInteger;
  i.integer = -4;
  r.elements = {a, i, Reply{}};
  EXPECT_EQ(r.DebugString(), "[\"a\\x00\\\"\", -4, (nil)]");
}

// ---------------------------------------------------------------------------------------------
// Against one shared redis-server

class RedisClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  static RedisServer* server_;
  IoThread io_;  // destroyed last: clients below are destroyed first
};
RedisServer* RedisClientTest::server_ = nullptr;

TEST_F(RedisClientTest, SetGetAndReplyTypes) {
  Client client(io_.io(), SettingsFor(server_->port()));
  const std::string key = UniqueKey("k");
  absl::StatusOr<Reply> r = Call(client, {"SET", key, "hello"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->is_status());
  EXPECT_EQ(r->str, "OK");

  r = Call(client, {"GET", key});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->is_string());
  EXPECT_EQ(r->str, "hello");
  EXPECT_EQ(*server_->Command({"GET", key}), "hello");  // really in Redis

  r = Call(client, {"GET", UniqueKey("missing")});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->is_nil());

  r = Call(client, {"RPUSH", key + ":list", "a", "b", "c"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->is_integer());
  EXPECT_EQ(r->integer, 3);
  r = Call(client, {"LRANGE", key + ":list", "0", "-1"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->DebugString(), R"(["a", "b", "c"])");
  EXPECT_TRUE(client.Health().ok()) << client.Health();
}

TEST_F(RedisClientTest, BinarySafeArgumentsAndValues) {
  Client client(io_.io(), SettingsFor(server_->port()));
  std::string key = UniqueKey(std::string("bin\0key\r\n", 9));
  std::string value;
  for (int i = 0; i < 256; ++i) value.push_back(static_cast<char>(i));
  value += std::string("\r\n$3\r\n\0end", 11);
  value += std::string(100000, 'x');  // larger than one socket read
  ASSERT_TRUE(Call(client, {"SET", key, value}).ok());
  absl::StatusOr<Reply> r = Call(client, {"GET", key});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->str.size(), value.size());
  EXPECT_TRUE(r->str == value);
  r = Call(client, {"STRLEN", key});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->integer, static_cast<int64_t>(value.size()));
}

TEST_F(RedisClientTest, ErrorRepliesAreRepliesNotStatuses) {
  Client client(io_.io(), SettingsFor(server_->port()));
  const std::string key = UniqueKey("text");
  ASSERT_TRUE(Call(client, {"SET", key, "not a number"}).ok());
  absl::StatusOr<Reply> r = Call(client, {"INCR", key});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->is_error());
  EXPECT_THAT(r->str, HasSubstr("not an integer"));

  r = Call(client, {"NO-SUCH-COMMAND", "x"});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->is_error());
  EXPECT_THAT(r->str, HasSubstr("unknown command"));

  // The connection is still fine afterwards.
  r = Call(client, {"PING"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->str, "PONG");
}

TEST_F(RedisClientTest, ConnectionStateCommandsAreRefused) {
  Client client(io_.io(), SettingsFor(server_->port()));
  for (Args args : std::vector<Args>{
           {}, {"subscribe", "c"}, {"SELECT", "1"}, {"MULTI"}, {"watch", "k"}, {"MONITOR"}}) {
    absl::StatusOr<Reply> r = Call(client, args);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  }
  Waiter<absl::StatusOr<std::vector<Reply>>> w;
  client.Pipeline({{"PING"}, {"PSUBSCRIBE", "*"}}, w.Callback());
  absl::StatusOr<std::vector<Reply>> replies = w.Get();
  ASSERT_FALSE(replies.ok());
  EXPECT_EQ(replies.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RedisClientTest, ThousandConcurrentCommandsFromSeveralThreads) {
  IoThread loops(2);  // an io_context run by two threads: the client's strand serialises it
  Client client(loops.io(), SettingsFor(server_->port()));  // three pipelined connections
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::mutex mu;
  std::vector<std::string> wrong;
  std::atomic<int> ok{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string payload = StrCat("payload-", t, "-", i);
        client.Command({"ECHO", payload}, [&, payload](absl::StatusOr<Reply> r) {
          if (r.ok() && r->str == payload) {
            ++ok;
          } else {
            std::lock_guard lock(mu);
            wrong.push_back(r.ok() ? r->DebugString() : r.status().ToString());
          }
          ++done;
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(
      WaitUntil([&] { return done.load() == kThreads * kPerThread; }, std::chrono::seconds(20)));
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_THAT(wrong, ::testing::IsEmpty());
}

TEST_F(RedisClientTest, OneConnectionAnswersInOrder) {
  Settings s = SettingsFor(server_->port());
  s.pool_size = 1;
  Client client(io_.io(), s);
  const std::string key = UniqueKey("counter");
  std::vector<int64_t> seen;  // only touched on the io thread
  std::atomic<int> done{0};
  for (int i = 0; i < 1000; ++i) {
    client.Command({"INCR", key}, [&](absl::StatusOr<Reply> r) {
      seen.push_back(r.ok() ? r->integer : -1);
      ++done;
    });
  }
  ASSERT_TRUE(WaitUntil([&] { return done.load() == 1000; }, std::chrono::seconds(20)));
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(seen[i], i + 1) << "at " << i;
}

TEST_F(RedisClientTest, PipelineRepliesInOrderAndTransactions) {
  Client client(io_.io(), SettingsFor(server_->port()));
  const std::string key = UniqueKey("p");
  std::vector<Args> incrs(1000, Args{"INCR", key});
  absl::StatusOr<std::vector<Reply>> replies = RunPipeline(client, incrs);
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ((*replies)[i].integer, i + 1) << "at " << i;

  // MULTI/EXEC run as one transaction on one connection, whatever else is in flight.
  const std::string tx = UniqueKey("tx");
  for (int i = 0; i < 50; ++i) client.Command({"PING"}, [](absl::StatusOr<Reply>) {});
  replies = RunPipeline(client, {{"MULTI"}, {"SET", tx, "1"}, {"INCR", tx}, {"EXEC"}});
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), 4u);
  EXPECT_EQ((*replies)[0].str, "OK");
  EXPECT_EQ((*replies)[1].str, "QUEUED");
  EXPECT_EQ((*replies)[3].DebugString(), "[OK, 2]");

  // An error reply inside a pipeline is that command's Reply.
  replies = RunPipeline(client, {{"SET", tx, "x"}, {"INCR", tx}, {"GET", tx}});
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_TRUE((*replies)[1].is_error());
  EXPECT_EQ((*replies)[2].str, "x");
}

TEST_F(RedisClientTest, SelectsTheConfiguredDatabase) {
  Settings s3 = SettingsFor(server_->port());
  s3.db = 3;
  Client db3(io_.io(), s3);
  Client db0(io_.io(), SettingsFor(server_->port()));
  const std::string key = UniqueKey("db");
  ASSERT_TRUE(Call(db3, {"SET", key, "in-3"}).ok());
  absl::StatusOr<Reply> r = Call(db0, {"GET", key});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->is_nil());
  r = Call(db3, {"GET", key});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->str, "in-3");
  EXPECT_THAT(*server_->Command({"INFO", "keyspace"}), HasSubstr("db3:keys="));

  // Every pooled connection selected the database, not just the first.
  Settings bad = SettingsFor(server_->port());
  bad.db = 100000;  // beyond the server's 16 databases
  Client out_of_range(io_.io(), bad);
  r = Call(out_of_range, {"PING"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr("SELECT failed"));
}

TEST_F(RedisClientTest, TimeoutFailsTheCommandAndTheClientRecovers) {
  Settings s = SettingsFor(server_->port());
  s.read_timeout = milliseconds(200);
  s.pool_size = 1;
  Client client(io_.io(), s);
  ASSERT_TRUE(Call(client, {"PING"}).ok());

  // The server stops answering for a second; the command gives up at readTimeout.
  Clock::time_point start = Clock::now();
  absl::StatusOr<Reply> r = Call(client, {"DEBUG", "SLEEP", "1"});
  milliseconds took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_GE(took, milliseconds(190));
  EXPECT_LT(took, milliseconds(900));

  // Once the server is back, commands work again without recreating the client.
  EXPECT_TRUE(WaitUntil([&] { return Call(client, {"PING"}).ok(); }, std::chrono::seconds(10)));

  // A per-command timeout longer than the block succeeds.
  r = Call(client, {"DEBUG", "SLEEP", "0.3"}, milliseconds(2000));
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST_F(RedisClientTest, DedicatedConnectionForBlockingCommands) {
  Client client(io_.io(), SettingsFor(server_->port()));
  std::unique_ptr<DedicatedConnection> blocking = client.Dedicated();
  const std::string list = UniqueKey("queue");

  Waiter<absl::StatusOr<Reply>> popped;
  blocking->Command({"BLPOP", list, "5"}, popped.Callback(), milliseconds(8000));
  // The pool keeps working while the dedicated connection blocks.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Call(client, {"PING"}).ok());
  ASSERT_TRUE(Call(client, {"RPUSH", list, "job-1"}).ok());
  absl::StatusOr<Reply> r = popped.Get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->DebugString(), StrCat("[\"", list, "\", \"job-1\"]"));
  EXPECT_TRUE(blocking->Health().ok());

  // Destroying it cancels a command that is still blocked.
  Waiter<absl::StatusOr<Reply>> cancelled;
  blocking->Command({"BLPOP", list, "5"}, cancelled.Callback(), milliseconds(8000));
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<std::string> clients = server_->Command({"CLIENT", "LIST"});
        return clients.ok() && clients->find("cmd=blpop") != std::string::npos;
      },
      std::chrono::seconds(5)));
  Clock::time_point start = Clock::now();
  blocking.reset();
  r = cancelled.Get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
}

TEST_F(RedisClientTest, DestroyingTheClientCancelsPendingCommands) {
  auto client = std::make_unique<Client>(io_.io(), SettingsFor(server_->port()));
  ASSERT_TRUE(Call(*client, {"PING"}).ok());
  Waiter<absl::StatusOr<Reply>> w;
  client->Command({"BLPOP", UniqueKey("never"), "10"}, w.Callback(), milliseconds(20000));
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<std::string> clients = server_->Command({"CLIENT", "LIST"});
        return clients.ok() && clients->find("cmd=blpop") != std::string::npos;
      },
      std::chrono::seconds(5)));
  client.reset();
  absl::StatusOr<Reply> r = w.Get(std::chrono::seconds(3));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
}

TEST_F(RedisClientTest, DestroyingTheClientInsideItsOwnCallbackIsSafe) {
  Settings s = SettingsFor(server_->port());
  s.pool_size = 1;  // everything below on one connection, in this order
  auto client = std::make_shared<std::unique_ptr<Client>>(std::make_unique<Client>(io_.io(), s));
  ASSERT_TRUE(Call(**client, {"PING"}).ok());
  Waiter<bool> destroyed;
  Waiter<absl::StatusOr<Reply>> next;  // its reply may arrive in the same read: still delivered
  Waiter<absl::StatusOr<Reply>> blocked;
  // Issued from one handler on the io thread, so no reply is processed before all three are sent.
  boost::asio::post(io_.io(), [&, client] {
    (*client)->Command(
        {"PING"}, [client, cb = destroyed.Callback()](absl::StatusOr<Reply>) mutable {
          client->reset();  // on the io thread, inside a reply callback, with replies still due
          cb(true);
        });
    (*client)->Command({"PING"}, next.Callback());
    (*client)->Command({"BLPOP", UniqueKey("never"), "10"}, blocked.Callback(),
                       milliseconds(20000));
  });
  EXPECT_TRUE(destroyed.Get());
  absl::StatusOr<Reply> r = next.Get(std::chrono::seconds(3));
  EXPECT_TRUE(r.ok() || r.status().code() == absl::StatusCode::kCancelled) << r.status();
  r = blocked.Get(std::chrono::seconds(3));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
}

TEST_F(RedisClientTest, SubscriptionReceivesMessages) {
  Client client(io_.io(), SettingsFor(server_->port()));
  std::mutex mu;
  std::vector<Message> messages;
  std::atomic<int> subscribed{0};
  const std::string channel = UniqueKey("chan");
  const std::string pattern = UniqueKey("pat") + ":*";
  absl::StatusOr<std::unique_ptr<Subscription>> sub = client.Subscribe(
      {.channels = {channel}, .patterns = {pattern}},
      [&](const Message& m) {
        std::lock_guard lock(mu);
        messages.push_back(m);
      },
      [&](absl::Status s) {
        if (s.ok()) ++subscribed;
      });
  ASSERT_TRUE(sub.ok()) << sub.status();
  ASSERT_TRUE(WaitUntil([&] { return subscribed.load() == 1; }, std::chrono::seconds(5)));

  std::string payload("bin\0ary\r\n", 9);
  EXPECT_EQ(*server_->Command({"PUBLISH", channel, payload}), "1");
  const std::string matching = pattern.substr(0, pattern.size() - 1) + "x";
  EXPECT_EQ(*server_->Command({"PUBLISH", matching, "p"}), "1");
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::lock_guard lock(mu);
        return messages.size() == 2;
      },
      std::chrono::seconds(5)));
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(messages[0].channel, channel);
    EXPECT_TRUE(messages[0].payload == payload);
    EXPECT_EQ(messages[0].pattern, "");
    EXPECT_EQ(messages[1].channel, matching);
    EXPECT_EQ(messages[1].pattern, pattern);
    EXPECT_EQ(messages[1].payload, "p");
  }

  // Destroying the subscription unsubscribes: nobody listens any more.
  sub->reset();
  EXPECT_TRUE(WaitUntil(
      [&] {
        return *server_->Command({"PUBLISH", channel, "x"}) == "0";
      },
      std::chrono::seconds(5)));

  EXPECT_FALSE(client.Subscribe({}, [](const Message&) {}).ok());
}

// ---------------------------------------------------------------------------------------------
// Authentication (own servers)

TEST(RedisAuthTest, PasswordAndAclUser) {
  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start(
      {"--requirepass", "s3cret", "--user", "alice", "on", ">alicepw", "~*", "&*", "+@all"});
  ASSERT_TRUE(server.ok()) << server.status();
  IoThread io;
  {
    Settings s = SettingsFor((*server)->port());
    s.password = "s3cret";
    Client client(io.io(), s);
    absl::StatusOr<Reply> r = Call(client, {"SET", "k", "v"});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->str, "OK");
    EXPECT_TRUE(client.Health().ok());
  }
  {
    Settings s = SettingsFor((*server)->port());
    s.username = "alice";
    s.password = "alicepw";
    Client client(io.io(), s);
    absl::StatusOr<Reply> r = Call(client, {"ACL", "WHOAMI"});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->str, "alice");
  }
  {
    Settings s = SettingsFor((*server)->port());
    s.password = "wrong";
    Client client(io.io(), s);
    absl::StatusOr<Reply> r = Call(client, {"GET", "k"});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr("AUTH failed"));
    EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr("WRONGPASS"));
    EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr((*server)->address()));
    EXPECT_THAT(std::string(MessageOf(client.Health())), HasSubstr("WRONGPASS"));
  }
  {
    Client client(io.io(), SettingsFor((*server)->port()));  // no password
    absl::StatusOr<Reply> r = Call(client, {"GET", "k"});
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr("NOAUTH"));
    EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr("redisPassword"));
  }
}

// ---------------------------------------------------------------------------------------------
// Redis going away and coming back (own servers)

TEST(RedisRecoveryTest, ServerDownAtCreationThenStarted) {
  const int port = remora::testing::FreePort();
  IoThread io;
  Client client(io.io(), SettingsFor(port));

  Clock::time_point start = Clock::now();
  absl::StatusOr<Reply> r = Call(client, {"PING"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr(StrCat("127.0.0.1:", port)));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
  EXPECT_FALSE(client.Health().ok());
  EXPECT_THAT(std::string(MessageOf(client.Health())), HasSubstr(StrCat("127.0.0.1:", port)));

  // Later calls fail fast too (no queueing while disconnected).
  start = Clock::now();
  r = Call(client, {"PING"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(Clock::now() - start, milliseconds(100));

  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start({}, port);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE(WaitUntil([&] { return Call(client, {"PING"}).ok(); }, std::chrono::seconds(10)));
  EXPECT_TRUE(WaitUntil([&] { return client.Health().ok(); }, std::chrono::seconds(10)));
  r = Call(client, {"SET", "after", "start"});
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST(RedisRecoveryTest, ServerKilledAndRestarted) {
  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  IoThread io;
  Client client(io.io(), SettingsFor((*server)->port()));
  std::unique_ptr<DedicatedConnection> dedicated = client.Dedicated();
  ASSERT_TRUE(Call(client, {"SET", "k", "v"}).ok());

  // In flight when the server dies: fails with UNAVAILABLE, not a hang.
  Waiter<absl::StatusOr<Reply>> blocked;
  dedicated->Command({"BLPOP", "nothing", "10"}, blocked.Callback(), milliseconds(20000));
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<std::string> clients = (*server)->Command({"CLIENT", "LIST"});
        return clients.ok() && clients->find("cmd=blpop") != std::string::npos;
      },
      std::chrono::seconds(5)));
  (*server)->Kill();
  absl::StatusOr<Reply> r = blocked.Get(std::chrono::seconds(5));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();

  // While it is down, commands fail quickly with UNAVAILABLE.
  for (int i = 0; i < 5; ++i) {
    Clock::time_point start = Clock::now();
    r = Call(client, {"GET", "k"});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
    EXPECT_LT(Clock::now() - start, milliseconds(500));
  }
  EXPECT_TRUE(WaitUntil([&] { return !client.Health().ok(); }, std::chrono::seconds(5)));

  ASSERT_TRUE((*server)->Restart().ok());
  EXPECT_TRUE(WaitUntil([&] { return Call(client, {"PING"}).ok(); }, std::chrono::seconds(10)));
  r = Call(client, {"SET", "k", "again"});
  EXPECT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(WaitUntil(
      [&] {
        Waiter<absl::StatusOr<Reply>> w;
        dedicated->Command({"PING"}, w.Callback());
        return w.Get().ok();
      },
      std::chrono::seconds(10)));
  // Every pooled connection came back, not just one.
  std::atomic<int> good{0};
  for (int i = 0; i < 30; ++i) {
    absl::StatusOr<Reply> each = Call(client, {"GET", "k"});
    if (each.ok() && each->str == "again") ++good;
  }
  EXPECT_EQ(good.load(), 30);
  EXPECT_TRUE(client.Health().ok());
}

TEST(RedisRecoveryTest, SubscriptionResubscribesAfterRestart) {
  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  IoThread io;
  Client client(io.io(), SettingsFor((*server)->port()));
  std::mutex mu;
  std::vector<std::string> payloads;
  std::vector<bool> statuses;
  absl::StatusOr<std::unique_ptr<Subscription>> sub = client.Subscribe(
      {.channels = {"events"}, .patterns = {}},
      [&](const Message& m) {
        std::lock_guard lock(mu);
        payloads.push_back(m.payload);
      },
      [&](absl::Status s) {
        std::lock_guard lock(mu);
        statuses.push_back(s.ok());
      });
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto status_count = [&] {
    std::lock_guard lock(mu);
    return statuses.size();
  };
  ASSERT_TRUE(WaitUntil([&] { return status_count() == 1; }, std::chrono::seconds(5)));
  EXPECT_EQ(*(*server)->Command({"PUBLISH", "events", "one"}), "1");
  // Received before the kill (Redis may answer PUBLISH before it writes to the subscriber).
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::lock_guard lock(mu);
        return payloads.size() == 1;
      },
      std::chrono::seconds(5)));

  (*server)->Kill();
  ASSERT_TRUE(WaitUntil([&] { return status_count() == 2; }, std::chrono::seconds(5)));
  ASSERT_TRUE((*server)->Restart().ok());
  ASSERT_TRUE(WaitUntil([&] { return status_count() == 3; }, std::chrono::seconds(10)));
  EXPECT_EQ(*(*server)->Command({"PUBLISH", "events", "two"}), "1");
  EXPECT_TRUE(WaitUntil(
      [&] {
        std::lock_guard lock(mu);
        return payloads.size() == 2;
      },
      std::chrono::seconds(5)));
  std::lock_guard lock(mu);
  EXPECT_EQ(payloads, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(statuses, (std::vector<bool>{true, false, true}));
}

TEST(RedisRecoveryTest, ServerThatNeverAnswersHonoursDialTimeout) {
  // A listener that never accepts: the kernel completes the TCP handshake, but AUTH/PING never
  // gets an answer, so only dialTimeout ends the attempt.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 64), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  IoThread io;
  Settings s = SettingsFor(ntohs(addr.sin_port));
  s.dial_timeout = milliseconds(300);
  s.read_timeout = milliseconds(5000);
  {
    Client client(io.io(), s);
    Clock::time_point start = Clock::now();
    absl::StatusOr<Reply> r = Call(client, {"PING"});  // waits for the first attempt
    milliseconds took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
    EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr("dialTimeout"));
    EXPECT_GE(took, milliseconds(250));
    EXPECT_LT(took, milliseconds(3000));
    EXPECT_THAT(std::string(MessageOf(client.Health())), HasSubstr("dialTimeout"));
  }
  {
    // With a shorter readTimeout, a command waiting for the first attempt gives up first.
    s.read_timeout = milliseconds(100);
    s.dial_timeout = milliseconds(5000);
    Client client(io.io(), s);
    absl::StatusOr<Reply> r = Call(client, {"PING"});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
    EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr("still connecting"));
  }
  ::close(fd);
}

}  // namespace
}  // namespace remora::redis
