// The distributed lock end to end: remorad with lock.redis against a real redis-server, driven over
// HTTP (/v1.0-alpha1/lock|unlock/{store}) and gRPC (TryLockAlpha1/UnlockAlpha1): Dapr's bodies and
// unlock statuses, the lock keys in Redis for each keyPrefix, bad input and unknown or missing
// stores with Dapr's codes, and Redis going away (an error, never a crash).

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/tools/redis_server.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

namespace v1 = ::dapr::proto::runtime::v1;
using ::nlohmann::json;
using ::testing::HasSubstr;

std::string Component(const std::string& name, const std::string& type,
                      const std::string& metadata) {
  return StrCat("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: { name: ", name,
                " }\nspec:\n  type: ", type, "\n  version: v1\n  metadata:\n", metadata, "---\n");
}

struct Answer {
  int status = 0;
  json body;
};

class LockE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto redis = RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = redis->release();
    std::string host = StrCat("  - { name: redisHost, value: \"", redis_->address(), "\" }\n");
    std::string resources = WriteTempFile(
        "lock.yaml",
        Component("lockstore", "lock.redis", host) +
            Component("byname", "lock.redis", host + "  - { name: keyPrefix, value: name }\n") +
            Component("noprefix", "lock.redis", host + "  - { name: keyPrefix, value: none }\n") +
            Component("custom", "lock.redis", host + "  - { name: keyPrefix, value: Shared }\n"));
    auto sidecar = StartRemorad({"--app-id", "lockapp", "--resources-path", resources});
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = new Remorad(*std::move(sidecar));
    stub_ = v1::Dapr::NewStub(::grpc::CreateChannel(StrCat("127.0.0.1:", sidecar_->grpc_port),
                                                    ::grpc::InsecureChannelCredentials()))
                .release();
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete sidecar_;
    delete redis_;
  }

  static Answer Post(const std::string& target, const std::string& body, int port = 0) {
    auto r = HttpCall("127.0.0.1", port ? port : sidecar_->http_port, "POST", target, body,
                      {{"Content-Type", "application/json"}});
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    Answer a;
    a.status = r->status;
    a.body = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    return a;
  }
  static Answer Lock(const std::string& store, const std::string& id, const std::string& owner,
                     int expiry = 60) {
    return Post(StrCat("/v1.0-alpha1/lock/", store),
                json{{"resourceId", id}, {"lockOwner", owner}, {"expiryInSeconds", expiry}}.dump());
  }
  static Answer Unlock(const std::string& store, const std::string& id, const std::string& owner) {
    return Post(StrCat("/v1.0-alpha1/unlock/", store),
                json{{"resourceId", id}, {"lockOwner", owner}}.dump());
  }

  static ::grpc::Status GrpcLock(const std::string& store, const std::string& id,
                                 const std::string& owner, int expiry, v1::TryLockResponse* res) {
    v1::TryLockRequest req;
    req.set_store_name(store);
    req.set_resource_id(id);
    req.set_lock_owner(owner);
    req.set_expiry_in_seconds(expiry);
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->TryLockAlpha1(&ctx, req, res);
  }
  static ::grpc::Status GrpcUnlock(const std::string& store, const std::string& id,
                                   const std::string& owner, v1::UnlockResponse* res) {
    v1::UnlockRequest req;
    req.set_store_name(store);
    req.set_resource_id(id);
    req.set_lock_owner(owner);
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->UnlockAlpha1(&ctx, req, res);
  }

  static RedisServer* redis_;
  static Remorad* sidecar_;
  static v1::Dapr::Stub* stub_;
};

RedisServer* LockE2E::redis_ = nullptr;
Remorad* LockE2E::sidecar_ = nullptr;
v1::Dapr::Stub* LockE2E::stub_ = nullptr;

TEST_F(LockE2E, HttpLockUnlockWithDaprsBodiesAndKeys) {
  Answer a = Lock("lockstore", "order-1", "worker-a");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, json({{"success", true}}));
  // Dapr's key (lock||<appId>||<resourceId>) holding the owner, with the expiry.
  EXPECT_EQ(redis_->Command({"GET", "lock||lockapp||order-1"}).value_or(""), "worker-a");
  int ttl = std::atoi(redis_->Command({"TTL", "lock||lockapp||order-1"}).value_or("0").c_str());
  EXPECT_GT(ttl, 50);

  Answer taken = Lock("lockstore", "order-1", "worker-b");
  EXPECT_EQ(taken.status, 200);
  EXPECT_EQ(taken.body, json({{"success", false}})) << "false is emitted, not omitted";

  EXPECT_EQ(Unlock("lockstore", "order-1", "worker-b").body, json({{"status", 2}}));
  Answer released = Unlock("lockstore", "order-1", "worker-a");
  EXPECT_EQ(released.status, 200);
  EXPECT_EQ(released.body, json({{"status", 0}}));
  EXPECT_EQ(Unlock("lockstore", "order-1", "worker-a").body, json({{"status", 1}}));
  EXPECT_EQ(redis_->Command({"EXISTS", "lock||lockapp||order-1"}).value_or(""), "0");
}

TEST_F(LockE2E, KeyPrefixOptionsAsDaprd) {
  EXPECT_EQ(Lock("byname", "r", "o").body, json({{"success", true}}));
  EXPECT_EQ(Lock("noprefix", "r", "o").body, json({{"success", true}}));
  EXPECT_EQ(Lock("custom", "r", "o").body, json({{"success", true}}));
  EXPECT_EQ(redis_->Command({"GET", "lock||byname||r"}).value_or(""), "o");
  EXPECT_EQ(redis_->Command({"GET", "lock||r"}).value_or(""), "o");
  EXPECT_EQ(redis_->Command({"GET", "lock||Shared||r"}).value_or(""), "o");
  // Stores with different prefixes lock different keys; the same prefix shares the lock.
  EXPECT_EQ(Lock("lockstore", "r", "other").body, json({{"success", true}}));
  for (const char* store : {"byname", "noprefix", "custom", "lockstore"}) {
    EXPECT_EQ(Unlock(store, "r", "o").body,
              json({{"status", store == std::string("lockstore") ? 2 : 0}}))
        << store;
  }
}

TEST_F(LockE2E, HttpBodiesAsProtojsonDecodesThem) {
  // The proto field names and an expiry given as a string are accepted; unknown fields ignored.
  Answer a = Post("/v1.0-alpha1/lock/lockstore",
                  R"({"resource_id":"pj","lock_owner":"o","expiryInSeconds":"30","extra":1})");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, json({{"success", true}}));
  EXPECT_EQ(Post("/v1.0-alpha1/unlock/lockstore", R"({"resourceId":"pj","lockOwner":"o"})").body,
            json({{"status", 0}}));
}

TEST_F(LockE2E, HttpBadInputWithDaprsCodes) {
  struct Case {
    std::string target, body, code, message;
    int status;
  };
  const std::vector<Case> cases = {
      {"/v1.0-alpha1/lock/lockstore", R"({"lockOwner":"o","expiryInSeconds":5})",
       "ERR_MALFORMED_REQUEST", "ResourceId is empty in lock store lockstore", 400},
      {"/v1.0-alpha1/lock/lockstore", R"({"resourceId":"r","expiryInSeconds":5})",
       "ERR_MALFORMED_REQUEST", "LockOwner is empty in lock store lockstore", 400},
      {"/v1.0-alpha1/lock/lockstore", R"({"resourceId":"r","lockOwner":"o"})",
       "ERR_MALFORMED_REQUEST", "ExpiryInSeconds is not positive in lock store lockstore", 400},
      {"/v1.0-alpha1/lock/lockstore", R"({"resourceId":"r","lockOwner":"o","expiryInSeconds":-3})",
       "ERR_MALFORMED_REQUEST", "ExpiryInSeconds is not positive in lock store lockstore", 400},
      {"/v1.0-alpha1/lock/lockstore", R"({"resourceId":"r",)", "ERR_MALFORMED_REQUEST",
       "failed deserializing HTTP body", 400},
      {"/v1.0-alpha1/lock/lockstore", R"({"resourceId":7,"lockOwner":"o","expiryInSeconds":5})",
       "ERR_MALFORMED_REQUEST", "resourceId", 400},
      {"/v1.0-alpha1/lock/lockstore", R"({"resourceId":"r","lockOwner":"o","expiryInSeconds":1.5})",
       "ERR_MALFORMED_REQUEST", "expiryInSeconds", 400},
      {"/v1.0-alpha1/unlock/lockstore", R"({"resourceId":"r"})", "ERR_MALFORMED_REQUEST",
       "LockOwner is empty in lock store lockstore", 400},
      {"/v1.0-alpha1/unlock/lockstore", "", "ERR_MALFORMED_REQUEST",
       "ResourceId is empty in lock store lockstore", 400},
      {"/v1.0-alpha1/lock/nope", R"({"resourceId":"r","lockOwner":"o","expiryInSeconds":5})",
       "ERR_LOCK_STORE_NOT_FOUND", "lock store nope not found", 400},
      {"/v1.0-alpha1/unlock/nope", R"({"resourceId":"r","lockOwner":"o"})",
       "ERR_LOCK_STORE_NOT_FOUND", "lock store nope not found", 400},
      {"/v1.0-alpha1/lock/lockstore",
       R"({"resourceId":"a||b","lockOwner":"o","expiryInSeconds":5})", "ERR_TRY_LOCK",
       "can't contain '||'", 500},
      {"/v1.0-alpha1/unlock/lockstore", R"({"resourceId":"a||b","lockOwner":"o"})", "ERR_UNLOCK",
       "can't contain '||'", 500},
  };
  for (const Case& c : cases) {
    Answer a = Post(c.target, c.body);
    EXPECT_EQ(a.status, c.status) << c.target << " " << c.body;
    EXPECT_EQ(a.body.value("errorCode", ""), c.code) << c.target << " " << c.body;
    EXPECT_THAT(a.body.value("message", ""), HasSubstr(c.message)) << c.target << " " << c.body;
  }
}

TEST_F(LockE2E, GrpcLockUnlockAndCodes) {
  v1::TryLockResponse lock;
  ASSERT_TRUE(GrpcLock("lockstore", "g1", "alice", 60, &lock).ok());
  EXPECT_TRUE(lock.success());
  // The same lock over HTTP: one lock, whichever protocol took it.
  EXPECT_EQ(Lock("lockstore", "g1", "bob").body, json({{"success", false}}));
  v1::TryLockResponse again;
  ASSERT_TRUE(GrpcLock("lockstore", "g1", "bob", 60, &again).ok());
  EXPECT_FALSE(again.success());

  v1::UnlockResponse other, mine, missing;
  ASSERT_TRUE(GrpcUnlock("lockstore", "g1", "bob", &other).ok());
  EXPECT_EQ(other.status(), v1::UnlockResponse::LOCK_BELONGS_TO_OTHERS);
  ASSERT_TRUE(GrpcUnlock("lockstore", "g1", "alice", &mine).ok());
  EXPECT_EQ(mine.status(), v1::UnlockResponse::SUCCESS);
  ASSERT_TRUE(GrpcUnlock("lockstore", "g1", "alice", &missing).ok());
  EXPECT_EQ(missing.status(), v1::UnlockResponse::LOCK_DOES_NOT_EXIST);

  v1::TryLockResponse ignored;
  ::grpc::Status empty_id = GrpcLock("lockstore", "", "alice", 60, &ignored);
  EXPECT_EQ(empty_id.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(empty_id.error_message(), "ResourceId is empty in lock store lockstore");
  EXPECT_EQ(GrpcLock("lockstore", "g2", "", 60, &ignored).error_code(),
            ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GrpcLock("lockstore", "g2", "alice", 0, &ignored).error_code(),
            ::grpc::StatusCode::INVALID_ARGUMENT);
  ::grpc::Status unknown = GrpcLock("nope", "g2", "alice", 60, &ignored);
  EXPECT_EQ(unknown.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(unknown.error_message(), "lock store nope not found");
  v1::UnlockResponse ignored_unlock;
  EXPECT_EQ(GrpcUnlock("nope", "g2", "alice", &ignored_unlock).error_code(),
            ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GrpcUnlock("lockstore", "g2", "", &ignored_unlock).error_code(),
            ::grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(LockE2E, MetadataListsTheLockStores) {
  auto r = HttpCall("127.0.0.1", sidecar_->http_port, "GET", "/v1.0/metadata");
  ASSERT_TRUE(r.ok()) << r.status();
  json metadata = json::parse(r->body);
  int locks = 0;
  for (const json& c : metadata["components"]) {
    if (c.value("type", "") == "lock.redis") ++locks;
  }
  EXPECT_EQ(locks, 4) << r->body;
}

// Runs last in this suite (gtest keeps declaration order): Redis goes away and comes back.
TEST_F(LockE2E, RedisDownIsAnErrorNotACrashAndRecovers) {
  redis_->Kill();
  Answer failed;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  do {
    failed = Lock("lockstore", "down", "o");
  } while (failed.status == 200 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(failed.status, 500);
  EXPECT_EQ(failed.body.value("errorCode", ""), "ERR_TRY_LOCK");
  EXPECT_THAT(failed.body.value("message", ""), HasSubstr("failed to try acquiring lock"));
  EXPECT_THAT(failed.body.value("message", ""), HasSubstr(redis_->address()));
  Answer unlock = Unlock("lockstore", "down", "o");
  EXPECT_EQ(unlock.status, 500);
  EXPECT_EQ(unlock.body.value("errorCode", ""), "ERR_UNLOCK");
  v1::TryLockResponse ignored;
  EXPECT_EQ(GrpcLock("lockstore", "down", "o", 60, &ignored).error_code(),
            ::grpc::StatusCode::INTERNAL);
  auto outbound = HttpCall("127.0.0.1", sidecar_->http_port, "GET", "/v1.0/healthz/outbound");
  ASSERT_TRUE(outbound.ok());
  EXPECT_EQ(outbound->status, 500);
  EXPECT_TRUE(sidecar_->process->Running());

  ASSERT_TRUE(redis_->Restart().ok());
  Answer back;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    back = Lock("lockstore", "back", "o");
    if (back.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (back.status != 200 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(back.status, 200);
  EXPECT_EQ(back.body, json({{"success", true}}));
}

// Without a lock store (remorad's built-in defaults have none): Dapr's "not configured" codes.
TEST(LockE2ENoStore, NotConfigured) {
  auto sidecar = StartRemorad({"--app-id", "nolock"});
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto r = HttpCall("127.0.0.1", sidecar->http_port, "POST", "/v1.0-alpha1/lock/lockstore",
                    R"({"resourceId":"r","lockOwner":"o","expiryInSeconds":5})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 500);
  json body = json::parse(r->body, nullptr, false);
  EXPECT_EQ(body.value("errorCode", ""), "ERR_LOCK_STORE_NOT_CONFIGURED");
  EXPECT_EQ(body.value("message", ""), "lock store is not configured");
  auto stub = v1::Dapr::NewStub(::grpc::CreateChannel(StrCat("127.0.0.1:", sidecar->grpc_port),
                                                      ::grpc::InsecureChannelCredentials()));
  v1::UnlockRequest req;
  req.set_store_name("lockstore");
  req.set_resource_id("r");
  req.set_lock_owner("o");
  v1::UnlockResponse res;
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ::grpc::Status s = stub->UnlockAlpha1(&ctx, req, &res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), "lock store is not configured");
}

}  // namespace
}  // namespace remora::testing
