// Starts the real remorad binary on free ports and drives Dapr's HTTP API, good and bad input.

#include <csignal>
#include <string>

#include "remora/runtime/asio.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class HttpE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto started = StartRemorad({"--app-id", "e2e", "--max-body-size", "64Ki"});
    ASSERT_TRUE(started.ok()) << started.status();
    sidecar_ = new Remorad(*std::move(started));
  }
  static void TearDownTestSuite() {
    delete sidecar_;
    sidecar_ = nullptr;
  }

  static http::Response Call(const std::string& method, const std::string& target,
                             const std::string& body = "", const http::Headers& headers = {}) {
    auto r = HttpCall("127.0.0.1", sidecar_->http_port, method, target, body, headers);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : http::Response{};
  }
  static json ErrorBody(const http::Response& r) { return json::parse(r.body, nullptr, false); }

  static Remorad* sidecar_;
};
Remorad* HttpE2E::sidecar_ = nullptr;

TEST_F(HttpE2E, HealthRoutesAnswer204) {
  EXPECT_EQ(Call("GET", "/v1.0/healthz").status, 204);
  EXPECT_EQ(Call("GET", "/v1.0/healthz/outbound").status, 204);
  auto mismatch = Call("GET", "/v1.0/healthz?appid=other");
  EXPECT_EQ(mismatch.status, 500);
  EXPECT_EQ(ErrorBody(mismatch)["errorCode"], "ERR_HEALTH_APPID_NOT_MATCH");
}

TEST_F(HttpE2E, SaveGetDeleteRoundTripKeepsJsonStringQuotes) {
  auto save = Call(
      "POST", "/v1.0/state/statestore",
      R"([{"key":"planet","value":"DeathStar"},{"key":"obj","value":{"b":1,"a":[true,null]}}])");
  ASSERT_EQ(save.status, 204) << save.body;

  auto get = Call("GET", "/v1.0/state/statestore/planet");
  ASSERT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "\"DeathStar\"");  // 11 bytes, quotes kept (contract §8)
  EXPECT_FALSE(get.Header("ETag").empty());
  EXPECT_EQ(get.Header("Content-Type"), "application/json");

  auto obj = Call("GET", "/v1.0/state/statestore/obj");
  ASSERT_EQ(obj.status, 200);
  EXPECT_EQ(json::parse(obj.body), json::parse(R"({"a":[true,null],"b":1})"));

  // The JS SDK sends an empty query string.
  EXPECT_EQ(Call("GET", "/v1.0/state/statestore/planet?").status, 200);

  EXPECT_EQ(Call("DELETE", "/v1.0/state/statestore/planet").status, 204);
  EXPECT_EQ(Call("GET", "/v1.0/state/statestore/planet").status, 204);
  EXPECT_EQ(Call("GET", "/v1.0/state/statestore/never-written").status, 204);
}

TEST_F(HttpE2E, PutSavesTooAndEmptyArrayIsANoOp) {
  EXPECT_EQ(Call("PUT", "/v1.0/state/statestore", R"([{"key":"put-key","value":42}])").status, 204);
  EXPECT_EQ(Call("GET", "/v1.0/state/statestore/put-key").body, "42");
  EXPECT_EQ(Call("POST", "/v1.0/state/statestore", "[]").status, 204);
}

TEST_F(HttpE2E, EtagsGuardWritesAndDeletes) {
  ASSERT_EQ(Call("POST", "/v1.0/state/statestore", R"([{"key":"guarded","value":1}])").status, 204);
  std::string etag = Call("GET", "/v1.0/state/statestore/guarded").Header("ETag");
  ASSERT_FALSE(etag.empty());

  json ok = json::array({{{"key", "guarded"}, {"value", 2}, {"etag", etag}}});
  ASSERT_EQ(Call("POST", "/v1.0/state/statestore", ok.dump()).status, 204);
  std::string etag2 = Call("GET", "/v1.0/state/statestore/guarded").Header("ETag");
  EXPECT_NE(etag, etag2);

  // The first etag is stale now.
  json stale = json::array({{{"key", "guarded"}, {"value", 3}, {"etag", etag}}});
  auto conflict = Call("POST", "/v1.0/state/statestore", stale.dump());
  EXPECT_EQ(conflict.status, 409);
  EXPECT_EQ(ErrorBody(conflict)["errorCode"], "ERR_STATE_SAVE");
  EXPECT_EQ(Call("GET", "/v1.0/state/statestore/guarded").body, "2");

  auto del_stale = Call("DELETE", "/v1.0/state/statestore/guarded", "", {{"If-Match", etag}});
  EXPECT_EQ(del_stale.status, 409);
  EXPECT_EQ(ErrorBody(del_stale)["errorCode"], "ERR_STATE_DELETE");
  // state.in-memory's etags are opaque UUIDs: a malformed one is simply a mismatch, as in Dapr.
  auto del_bad =
      Call("DELETE", "/v1.0/state/statestore/guarded", "", {{"If-Match", "%%not-an-etag"}});
  EXPECT_EQ(del_bad.status, 409);
  EXPECT_EQ(Call("DELETE", "/v1.0/state/statestore/guarded", "", {{"If-Match", etag2}}).status,
            204);

  // first-write: a write without an etag to an existing key fails.
  ASSERT_EQ(Call("POST", "/v1.0/state/statestore", R"([{"key":"fw","value":1}])").status, 204);
  auto fw = Call("POST", "/v1.0/state/statestore",
                 R"([{"key":"fw","value":2,"options":{"concurrency":"first-write"}}])");
  EXPECT_EQ(fw.status, 409);
  auto bad_option = Call("POST", "/v1.0/state/statestore",
                         R"([{"key":"fw","value":2,"options":{"concurrency":"sometimes"}}])");
  EXPECT_EQ(bad_option.status, 500);
  EXPECT_THAT(ErrorBody(bad_option)["message"].get<std::string>(), HasSubstr("sometimes"));
}

TEST_F(HttpE2E, BulkGetUsesDataField) {
  ASSERT_EQ(Call("POST", "/v1.0/state/statestore",
                 R"([{"key":"b1","value":{"n":1}},{"key":"b2","value":"two"}])")
                .status,
            204);
  auto bulk = Call("POST", "/v1.0/state/statestore/bulk",
                   R"({"keys":["b1","b2","b-missing"],"parallelism":4})");
  ASSERT_EQ(bulk.status, 200) << bulk.body;
  json items = json::parse(bulk.body);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0]["key"], "b1");
  EXPECT_EQ(items[0]["data"], json::parse(R"({"n":1})"));
  EXPECT_TRUE(items[0].contains("etag"));
  EXPECT_EQ(items[1]["data"], "two");
  EXPECT_EQ(items[2]["key"], "b-missing");
  EXPECT_FALSE(items[2].contains("data"));
  EXPECT_EQ(Call("POST", "/v1.0/state/statestore/bulk", R"({"keys":[]})").body, "[]");
}

TEST_F(HttpE2E, TransactionIsAtomic) {
  ASSERT_EQ(Call("POST", "/v1.0/state/statestore", R"([{"key":"tx-old","value":"x"}])").status,
            204);
  auto tx = Call("POST", "/v1.0/state/statestore/transaction", R"({"operations":[
      {"operation":"upsert","request":{"key":"tx-new","value":"y"}},
      {"operation":"delete","request":{"key":"tx-old"}}]})");
  ASSERT_EQ(tx.status, 204) << tx.body;
  EXPECT_EQ(Call("GET", "/v1.0/state/statestore/tx-new").body, "\"y\"");
  EXPECT_EQ(Call("GET", "/v1.0/state/statestore/tx-old").status, 204);

  // A stale etag in one operation leaves the other one unapplied.
  auto failed = Call("POST", "/v1.0/state/statestore/transaction", R"({"operations":[
      {"operation":"upsert","request":{"key":"tx-a","value":"a"}},
      {"operation":"upsert","request":{"key":"tx-new","value":"z","etag":"stale"}}]})");
  EXPECT_EQ(failed.status, 500);
  EXPECT_EQ(ErrorBody(failed)["errorCode"], "ERR_STATE_TRANSACTION");
  EXPECT_EQ(Call("GET", "/v1.0/state/statestore/tx-a").status, 204);
  EXPECT_EQ(Call("GET", "/v1.0/state/statestore/tx-new").body, "\"y\"");

  auto unknown = Call("POST", "/v1.0/state/statestore/transaction",
                      R"({"operations":[{"operation":"merge","request":{"key":"k"}}]})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(ErrorBody(unknown)["errorCode"], "ERR_NOT_SUPPORTED_STATE_OPERATION");
}

TEST_F(HttpE2E, TtlExpiresKeys) {
  ASSERT_EQ(Call("POST", "/v1.0/state/statestore",
                 R"([{"key":"short","value":1,"metadata":{"ttlInSeconds":"1"}}])")
                .status,
            204);
  auto get = Call("GET", "/v1.0/state/statestore/short");
  ASSERT_EQ(get.status, 200);
  EXPECT_FALSE(get.Header("metadata.ttlExpireTime").empty());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int status = 200;
  while (status == 200 && std::chrono::steady_clock::now() < deadline) {
    status = Call("GET", "/v1.0/state/statestore/short").status;
    if (status == 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(status, 204);
}

TEST_F(HttpE2E, BadInputGetsDaprErrors) {
  auto malformed = Call("POST", "/v1.0/state/statestore", "[{\"key\": ");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(ErrorBody(malformed)["errorCode"], "ERR_MALFORMED_REQUEST");

  auto not_array = Call("POST", "/v1.0/state/statestore", R"({"key":"k"})");
  EXPECT_EQ(not_array.status, 400);
  EXPECT_EQ(ErrorBody(not_array)["errorCode"], "ERR_MALFORMED_REQUEST");

  auto no_key = Call("POST", "/v1.0/state/statestore", R"([{"value":1}])");
  EXPECT_EQ(no_key.status, 400);
  EXPECT_EQ(ErrorBody(no_key)["message"], "\"key\" is a required field");

  auto unknown_store = Call("GET", "/v1.0/state/nosuchstore/k");
  EXPECT_EQ(unknown_store.status, 400);
  json body = ErrorBody(unknown_store);
  EXPECT_EQ(body["errorCode"], "ERR_STATE_STORE_NOT_FOUND");
  EXPECT_THAT(body["message"].get<std::string>(), HasSubstr("nosuchstore"));
  EXPECT_EQ(body["details"][0]["reason"], "DAPR_STATE_NOT_FOUND");

  auto illegal = Call("GET", "/v1.0/state/statestore/a||b");
  EXPECT_EQ(illegal.status, 400);
  EXPECT_EQ(ErrorBody(illegal)["errorCode"], "ERR_MALFORMED_REQUEST");

  auto bad_escape = Call("GET", "/v1.0/state/statestore/%zz");
  EXPECT_EQ(bad_escape.status, 400);

  auto unknown_route = Call("GET", "/v1.0/nothing/here");
  EXPECT_EQ(unknown_route.status, 404);
  EXPECT_EQ(ErrorBody(unknown_route)["errorCode"], "ERR_DIRECT_INVOKE");
}

TEST_F(HttpE2E, OversizedBodyAnswers413AndSidecarStaysUp) {
  std::string big = "[{\"key\":\"big\",\"value\":\"" + std::string(100 * 1024, 'x') + "\"}]";
  auto r = Call("POST", "/v1.0/state/statestore", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(ErrorBody(r)["errorCode"], "ERR_BODY_READ");
  EXPECT_EQ(Call("GET", "/v1.0/healthz").status, 204);
  EXPECT_EQ(Call("GET", "/v1.0/state/statestore/big").status, 204);
}

// A header that announces an absurd body must not make the sidecar allocate it.
TEST_F(HttpE2E, AbsurdContentLengthIsRejectedWithoutAllocating) {
  for (const char* length : {"100000000000", "18446744073709551615", "-5", "abc"}) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket socket(io);
    socket.connect({boost::asio::ip::make_address("127.0.0.1"),
                    static_cast<unsigned short>(sidecar_->http_port)});
    std::string request = std::string("POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\n") +
                          "Content-Length: " + length + "\r\n\r\n[{\"key\":";
    boost::asio::write(socket, boost::asio::buffer(request));
    char buf[64] = {};
    boost::system::error_code ec;
    size_t n = socket.read_some(boost::asio::buffer(buf, sizeof(buf) - 1), ec);
    std::string status_line(buf, n);
    EXPECT_TRUE(status_line.starts_with("HTTP/1.1 413") || status_line.starts_with("HTTP/1.1 400"))
        << length << ": " << status_line;
  }
  EXPECT_EQ(Call("GET", "/v1.0/healthz").status, 204);
}

TEST_F(HttpE2E, MetadataListsComponentsAndExtendedValues) {
  ASSERT_EQ(Call("PUT", "/v1.0/metadata/team", "blue").status, 204);
  auto r = Call("GET", "/v1.0/metadata");
  ASSERT_EQ(r.status, 200);
  json m = json::parse(r.body);
  EXPECT_EQ(m["id"], "e2e");
  EXPECT_EQ(m["extended"]["team"], "blue");
  EXPECT_TRUE(m["extended"].contains("daprRuntimeVersion"));
  ASSERT_TRUE(m["components"].is_array());
  EXPECT_EQ(m["components"][0]["name"], "statestore");
  EXPECT_EQ(m["components"][0]["type"], "state.in-memory");
  EXPECT_THAT(m["components"][0]["capabilities"].get<std::vector<std::string>>(),
              ::testing::IsSupersetOf({"ETAG", "TRANSACTIONAL", "TTL"}));
}

TEST(HttpE2EToken, ApiTokenIsEnforcedExceptOnHealth) {
  auto started = StartRemorad({"--app-id", "tok"}, {{"DAPR_API_TOKEN", "s3cret"}});
  ASSERT_TRUE(started.ok()) << started.status();
  int port = started->http_port;
  auto none = HttpCall("127.0.0.1", port, "GET", "/v1.0/state/statestore/k");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->body, "invalid api token");
  auto wrong = HttpCall("127.0.0.1", port, "GET", "/v1.0/state/statestore/k", "",
                        {{"dapr-api-token", "guess"}});
  EXPECT_EQ(wrong->status, 401);
  auto right = HttpCall("127.0.0.1", port, "GET", "/v1.0/state/statestore/k", "",
                        {{"dapr-api-token", "s3cret"}});
  EXPECT_EQ(right->status, 204);
  EXPECT_EQ(HttpCall("127.0.0.1", port, "GET", "/v1.0/healthz")->status, 204);
  EXPECT_EQ(HttpCall("127.0.0.1", port, "GET", "/v1.0/metadata")->status, 401);
}

TEST(HttpE2EShutdown, ShutdownRouteStopsTheProcessCleanly) {
  auto started = StartRemorad({"--app-id", "bye"});
  ASSERT_TRUE(started.ok()) << started.status();
  auto r = HttpCall("127.0.0.1", started->http_port, "POST", "/v1.0/shutdown");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(started->process->Wait(std::chrono::seconds(10)), 0);
}

TEST(HttpE2EShutdown, SigtermStopsTheProcessCleanly) {
  auto started = StartRemorad({"--app-id", "term"});
  ASSERT_TRUE(started.ok()) << started.status();
  started->process->Signal(SIGTERM);
  EXPECT_EQ(started->process->Wait(std::chrono::seconds(10)), 0);
}

TEST(HttpE2EStartup, ResourcesPathLoadsComponentsAndNamesBadFiles) {
  std::string dir = WriteTempFile("stores.yaml", R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orders
spec:
  type: state.in-memory
  version: v1
  metadata:
  - name: keyPrefix
    value: name
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: optional
spec:
  type: state.nosuch
  version: v1
  ignoreErrors: true
)");
  auto started = StartRemorad({"--app-id", "res", "--resources-path", dir});
  ASSERT_TRUE(started.ok()) << started.status();
  int port = started->http_port;
  EXPECT_EQ(HttpCall("127.0.0.1", port, "POST", "/v1.0/state/orders", R"([{"key":"o","value":1}])")
                ->status,
            204);
  EXPECT_EQ(HttpCall("127.0.0.1", port, "GET", "/v1.0/state/orders/o")->body, "1");
  // No default store when a resources path is given.
  EXPECT_EQ(HttpCall("127.0.0.1", port, "GET", "/v1.0/state/statestore/o")->status, 400);

  std::string bad = WriteTempFile("bad.yaml", R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: broken
spec:
  type: state.nosuch
  version: v1
)");
  auto failed = ChildProcess::Start({RemoradPath(), "--resources-path", bad, "--dapr-http-port",
                                     std::to_string(FreePort()), "--dapr-grpc-port",
                                     std::to_string(FreePort())});
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ((*failed)->Wait(std::chrono::seconds(10)), 1);
  EXPECT_THAT((*failed)->Output(), HasSubstr("bad.yaml"));
  EXPECT_THAT((*failed)->Output(), HasSubstr("state.nosuch"));
}

TEST(HttpE2EStartup, BadFlagsExitWithCode1) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--no-such-flag"},
                                        std::vector<std::string>{"--dapr-http-port", "abc"}}) {
    args.insert(args.begin(), RemoradPath());
    auto p = ChildProcess::Start(args);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ((*p)->Wait(std::chrono::seconds(10)), 1) << args[1];
  }
  auto version = ChildProcess::Start({RemoradPath(), "--version"});
  ASSERT_TRUE(version.ok());
  EXPECT_EQ((*version)->Wait(std::chrono::seconds(10)), 0);
  EXPECT_THAT((*version)->Output(), HasSubstr("remorad"));
}

}  // namespace
}  // namespace remora::testing
