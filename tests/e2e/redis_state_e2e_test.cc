// remorad with a state.redis component against a real redis-server: what it writes is Dapr's
// layout (read back directly from Redis), what daprd writes is readable through it, Redis away
// at start-up or killed mid-run costs errors but no restart, and concurrent compare-and-set
// increments through the HTTP API lose nothing.

#include <atomic>
#include <csignal>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/tools/redis_server.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kAppId[] = "e2eapp";

std::string ResourcesFor(int redis_port) {
  return WriteTempFile("statestore.yaml", StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: "127.0.0.1:)",
                                                 redis_port, R"("
  - name: redisPassword
    value: ""
)"));
}

// remorad on free ports, ready when its HTTP API answers /v1.0/healthz (not the outbound check,
// which stays 500 while Redis is away).
struct Sidecar {
  std::unique_ptr<ChildProcess> process;
  int http_port = 0;

  http::Response Call(const std::string& method, const std::string& target,
                      const std::string& body = "", const http::Headers& headers = {}) const {
    auto r = HttpCall("127.0.0.1", http_port, method, target, body, headers);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : http::Response{};
  }
  std::string Output() const { return process ? process->Output() : ""; }
};

absl::StatusOr<Sidecar> StartSidecar(int redis_port) {
  Sidecar s;
  s.http_port = FreePort();
  int grpc_port = FreePort();
  auto process =
      ChildProcess::Start({RemoradPath(), "--app-id", kAppId, "--dapr-http-port",
                           StrCat(s.http_port), "--dapr-grpc-port", StrCat(grpc_port),
                           "--metrics-port", "0", "--resources-path", ResourcesFor(redis_port)});
  if (!process.ok()) return process.status();
  s.process = *std::move(process);
  if (!WaitForHttp(s.http_port, "/v1.0/healthz", 204, std::chrono::seconds(10))) {
    return MakeStatus(absl::StatusCode::kDeadlineExceeded,
                      StrCat("remorad not ready; output:\n", s.process->Output()));
  }
  return s;
}

json ErrorBody(const http::Response& r) { return json::parse(r.body, nullptr, false); }

// Polls `call` until it returns true or `timeout` passes.
bool Eventually(const std::function<bool()>& call, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (call()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return call();
}

std::map<std::string, std::string> Hash(RedisServer& redis, const std::string& key) {
  absl::StatusOr<std::string> reply = redis.Command({"HGETALL", key});
  EXPECT_TRUE(reply.ok()) << reply.status();
  std::vector<std::string> lines = absl::StrSplit(reply.value_or(""), '\n');
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < lines.size(); i += 2) out[lines[i]] = lines[i + 1];
  return out;
}

class RedisStateE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    auto sidecar = StartSidecar(redis_->port());
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = *std::move(sidecar);
    ASSERT_TRUE(
        WaitForHttp(sidecar_.http_port, "/v1.0/healthz/outbound", 204, std::chrono::seconds(10)))
        << sidecar_.Output();
  }

  std::unique_ptr<RedisServer> redis_;
  Sidecar sidecar_;
};

TEST_F(RedisStateE2E, WritesDaprsLayoutAsDaprdWould) {
  auto save = sidecar_.Call(
      "POST", "/v1.0/state/statestore",
      R"([{"key":"planet","value":"DeathStar"},{"key":"order-1","value":{"qty":2,"id":"a"}}])");
  ASSERT_EQ(save.status, 204) << save.body;

  // The HTTP value's JSON text, quotes included, under "<appid>||<key>", version 1.
  EXPECT_EQ(redis_->Command({"TYPE", "e2eapp||planet"}).value_or(""), "hash");
  EXPECT_EQ(Hash(*redis_, "e2eapp||planet"),
            (std::map<std::string, std::string>{{"data", "\"DeathStar\""}, {"version", "1"}}));
  EXPECT_EQ(Hash(*redis_, "e2eapp||order-1")["data"], R"({"id":"a","qty":2})");

  auto get = sidecar_.Call("GET", "/v1.0/state/statestore/planet");
  ASSERT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "\"DeathStar\"");
  EXPECT_EQ(get.Header("ETag"), "1");

  // Another write bumps the version; an etag write under first-write checks it.
  ASSERT_EQ(sidecar_
                .Call("POST", "/v1.0/state/statestore",
                      R"([{"key":"planet","value":"Hoth","etag":"1",
                               "options":{"concurrency":"first-write"}}])")
                .status,
            204);
  EXPECT_EQ(Hash(*redis_, "e2eapp||planet")["version"], "2");
  auto stale = sidecar_.Call("POST", "/v1.0/state/statestore",
                             R"([{"key":"planet","value":"Endor","etag":"1",
                                  "options":{"concurrency":"first-write"}}])");
  EXPECT_EQ(stale.status, 409) << stale.body;
  EXPECT_EQ(ErrorBody(stale)["errorCode"], "ERR_STATE_SAVE");
  auto invalid = sidecar_.Call("POST", "/v1.0/state/statestore",
                               R"([{"key":"planet","value":"Endor","etag":"not-a-number"}])");
  EXPECT_EQ(invalid.status, 400) << invalid.body;
  EXPECT_EQ(ErrorBody(invalid)["errorCode"], "ERR_STATE_SAVE");

  // TTL: Redis' own expiry, reported back as metadata.ttlExpireTime.
  ASSERT_EQ(sidecar_
                .Call("POST", "/v1.0/state/statestore",
                      R"([{"key":"short","value":1,"metadata":{"ttlInSeconds":"100"}}])")
                .status,
            204);
  int64_t ttl = std::atoll(redis_->Command({"TTL", "e2eapp||short"}).value_or("0").c_str());
  EXPECT_GT(ttl, 90);
  EXPECT_FALSE(sidecar_.Call("GET", "/v1.0/state/statestore/short")
                   .Header("metadata.ttlExpireTime")
                   .empty());

  // Delete with the current etag removes the hash.
  EXPECT_EQ(
      sidecar_.Call("DELETE", "/v1.0/state/statestore/planet", "", {{"If-Match", "1"}}).status,
      409);
  EXPECT_EQ(
      sidecar_.Call("DELETE", "/v1.0/state/statestore/planet", "", {{"If-Match", "2"}}).status,
      204);
  EXPECT_EQ(redis_->Command({"EXISTS", "e2eapp||planet"}).value_or(""), "0");
}

TEST_F(RedisStateE2E, ReadsWhatDaprdWrote) {
  // What daprd's state.redis leaves for key "from-daprd" of app e2eapp after two writes.
  ASSERT_TRUE(redis_
                  ->Command({"HSET", "e2eapp||from-daprd", "data", R"({"written":"by daprd"})",
                             "version", "2"})
                  .ok());
  auto get = sidecar_.Call("GET", "/v1.0/state/statestore/from-daprd");
  ASSERT_EQ(get.status, 200);
  EXPECT_EQ(get.body, R"({"written":"by daprd"})");
  EXPECT_EQ(get.Header("ETag"), "2");

  auto bulk =
      sidecar_.Call("POST", "/v1.0/state/statestore/bulk", R"({"keys":["from-daprd","missing"]})");
  ASSERT_EQ(bulk.status, 200) << bulk.body;
  json items = json::parse(bulk.body);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0]["key"], "from-daprd");
  EXPECT_EQ(items[0]["data"], json::parse(R"({"written":"by daprd"})"));
  EXPECT_EQ(items[0]["etag"], "2");

  // A transaction continues daprd's version sequence.
  auto tx = sidecar_.Call("POST", "/v1.0/state/statestore/transaction",
                          R"({"operations":[
                               {"operation":"upsert","request":{"key":"from-daprd","value":"x","etag":"2"}},
                               {"operation":"upsert","request":{"key":"new","value":"y"}}]})");
  ASSERT_EQ(tx.status, 204) << tx.body;
  EXPECT_EQ(Hash(*redis_, "e2eapp||from-daprd"),
            (std::map<std::string, std::string>{{"data", "\"x\""}, {"version", "3"}}));
  EXPECT_EQ(Hash(*redis_, "e2eapp||new")["data"], "\"y\"");
}

TEST_F(RedisStateE2E, RedisKilledMidRunFailsThenRecoversWithoutRestart) {
  ASSERT_EQ(sidecar_.Call("POST", "/v1.0/state/statestore", R"([{"key":"k","value":1}])").status,
            204);
  redis_->Kill();

  // Errors with Dapr's codes, fast, and the outbound health says so.
  ASSERT_TRUE(
      Eventually([&] { return sidecar_.Call("GET", "/v1.0/healthz/outbound").status == 500; },
                 absl::Seconds(10)));
  const absl::Time start = absl::Now();
  auto get = sidecar_.Call("GET", "/v1.0/state/statestore/k");
  EXPECT_EQ(get.status, 500);
  EXPECT_EQ(ErrorBody(get)["errorCode"], "ERR_STATE_GET");
  EXPECT_THAT(get.body, HasSubstr(redis_->address()));
  auto save = sidecar_.Call("POST", "/v1.0/state/statestore", R"([{"key":"k","value":2}])");
  EXPECT_EQ(save.status, 500);
  EXPECT_EQ(ErrorBody(save)["errorCode"], "ERR_STATE_SAVE");
  EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << "requests did not fail fast";

  // Same port, fresh (empty) Redis: the same remorad recovers by itself.
  ASSERT_TRUE(redis_->Restart().ok());
  EXPECT_TRUE(Eventually(
      [&] {
        return sidecar_.Call("POST", "/v1.0/state/statestore", R"([{"key":"k","value":3}])")
                   .status == 204;
      },
      absl::Seconds(10)))
      << sidecar_.Output();
  EXPECT_EQ(sidecar_.Call("GET", "/v1.0/state/statestore/k").body, "3");
  EXPECT_EQ(Hash(*redis_, "e2eapp||k")["data"], "3");
  EXPECT_TRUE(
      Eventually([&] { return sidecar_.Call("GET", "/v1.0/healthz/outbound").status == 204; },
                 absl::Seconds(10)));
  EXPECT_TRUE(sidecar_.process->Running());
}

TEST_F(RedisStateE2E, ConcurrentCompareAndSetIncrementsLoseNothing) {
  ASSERT_EQ(
      sidecar_.Call("POST", "/v1.0/state/statestore", R"([{"key":"counter","value":0}])").status,
      204);
  constexpr int kClients = 8;
  const absl::Time until = absl::Now() + absl::Seconds(3);
  std::atomic<int> successes{0}, conflicts{0}, errors{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      while (absl::Now() < until) {
        auto got =
            HttpCall("127.0.0.1", sidecar_.http_port, "GET", "/v1.0/state/statestore/counter");
        if (!got.ok() || got->status != 200) {
          ++errors;
          return;
        }
        const int64_t value = std::atoll(got->body.c_str());
        json item = {{"key", "counter"},
                     {"value", value + 1},
                     {"etag", got->Header("ETag")},
                     {"options", {{"concurrency", "first-write"}}}};
        auto put = HttpCall("127.0.0.1", sidecar_.http_port, "POST", "/v1.0/state/statestore",
                            json::array({item}).dump());
        if (!put.ok()) {
          ++errors;
          return;
        }
        if (put->status == 204) {
          ++successes;
        } else if (put->status == 409) {
          ++conflicts;
        } else {
          ++errors;
          return;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(successes.load(), 0);
  auto final_value = sidecar_.Call("GET", "/v1.0/state/statestore/counter");
  ASSERT_EQ(final_value.status, 200);
  EXPECT_EQ(final_value.body, StrCat(successes.load()))
      << successes.load() << " successful writes, " << conflicts.load() << " conflicts";
  EXPECT_EQ(Hash(*redis_, "e2eapp||counter")["version"], StrCat(successes.load() + 1));
  std::cout << "[   INFO   ] " << successes.load() << " increments, " << conflicts.load()
            << " etag conflicts from " << kClients << " clients\n";
}

TEST(RedisStateStartupE2E, RedisDownAtStartThenUp) {
  const int redis_port = FreePort();  // nothing listens here yet
  auto sidecar = StartSidecar(redis_port);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();

  ASSERT_TRUE(
      Eventually([&] { return sidecar->Call("GET", "/v1.0/healthz/outbound").status == 500; },
                 absl::Seconds(10)));
  auto outbound = sidecar->Call("GET", "/v1.0/healthz/outbound");
  EXPECT_EQ(ErrorBody(outbound)["errorCode"], "ERR_OUTBOUND_HEALTH_NOT_READY") << outbound.body;
  const absl::Time start = absl::Now();
  auto get = sidecar->Call("GET", "/v1.0/state/statestore/k");
  EXPECT_EQ(get.status, 500) << get.body;
  EXPECT_EQ(ErrorBody(get)["errorCode"], "ERR_STATE_GET");
  EXPECT_THAT(get.body, HasSubstr(StrCat("127.0.0.1:", redis_port)));
  auto save = sidecar->Call("POST", "/v1.0/state/statestore", R"([{"key":"k","value":1}])");
  EXPECT_EQ(save.status, 500) << save.body;
  EXPECT_EQ(ErrorBody(save)["errorCode"], "ERR_STATE_SAVE");
  EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << "requests did not fail fast";
  EXPECT_EQ(sidecar->Call("GET", "/v1.0/healthz").status, 204) << "the sidecar itself is up";

  auto redis = RedisServer::Start({}, redis_port);
  ASSERT_TRUE(redis.ok()) << redis.status();
  EXPECT_TRUE(Eventually(
      [&] {
        return sidecar->Call("POST", "/v1.0/state/statestore", R"([{"key":"k","value":1}])")
                   .status == 204;
      },
      absl::Seconds(10)))
      << sidecar->Output();
  EXPECT_EQ(sidecar->Call("GET", "/v1.0/state/statestore/k").body, "1");
  // (Polled: the outbound check also waits for the gRPC API, which starts in the background.)
  EXPECT_TRUE(
      Eventually([&] { return sidecar->Call("GET", "/v1.0/healthz/outbound").status == 204; },
                 absl::Seconds(10)));
}

}  // namespace
}  // namespace remora::testing
