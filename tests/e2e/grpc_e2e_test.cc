// Starts the real remorad binary on free ports and drives Dapr's gRPC API with a stub generated
// from our .proto files: state, metadata, errors with their ErrorInfo details, the API token,
// message size limits, unimplemented RPCs and shutdown.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

namespace v1 = ::dapr::proto::runtime::v1;
namespace common = ::dapr::proto::common::v1;
using ::testing::Contains;
using ::testing::HasSubstr;

constexpr char kStore[] = "statestore";

// A stub on a fresh channel to 127.0.0.1:`port`; every call gets a deadline.
class Client {
 public:
  explicit Client(int port, std::string token = "")
      : channel_(::grpc::CreateChannel(StrCat("127.0.0.1:", port),
                                       ::grpc::InsecureChannelCredentials())),
        stub_(v1::Dapr::NewStub(channel_)),
        token_(std::move(token)) {}

  std::unique_ptr<::grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<::grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (!token_.empty()) ctx->AddMetadata("dapr-api-token", token_);
    return ctx;
  }

  ::grpc::Status Save(const std::string& key, const std::string& value,
                      std::optional<std::string> etag = std::nullopt) {
    v1::SaveStateRequest req;
    req.set_store_name(kStore);
    common::StateItem* item = req.add_states();
    item->set_key(key);
    item->set_value(value);
    if (etag) item->mutable_etag()->set_value(*etag);
    google::protobuf::Empty res;
    return stub_->SaveState(Context().get(), req, &res);
  }

  ::grpc::Status Get(const std::string& key, v1::GetStateResponse* res,
                     const std::string& store = kStore) {
    v1::GetStateRequest req;
    req.set_store_name(store);
    req.set_key(key);
    return stub_->GetState(Context().get(), req, res);
  }

  ::grpc::Status Delete(const std::string& key, std::optional<std::string> etag = std::nullopt) {
    v1::DeleteStateRequest req;
    req.set_store_name(kStore);
    req.set_key(key);
    if (etag) req.mutable_etag()->set_value(*etag);
    google::protobuf::Empty res;
    return stub_->DeleteState(Context().get(), req, &res);
  }

  // A method by full name, with an empty request (for RPCs our .proto does not declare).
  ::grpc::Status CallByName(const std::string& method) {
    ::grpc::GenericStub generic(channel_);
    auto ctx = Context();
    ::grpc::CompletionQueue cq;
    ::grpc::ByteBuffer request, response;
    auto call = generic.PrepareUnaryCall(ctx.get(), method, request, &cq);
    call->StartCall();
    ::grpc::Status status;
    call->Finish(&response, &status, reinterpret_cast<void*>(1));
    void* tag;
    bool ok;
    cq.Next(&tag, &ok);
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    return status;
  }

  v1::Dapr::Stub& stub() { return *stub_; }

 private:
  std::shared_ptr<::grpc::Channel> channel_;
  std::unique_ptr<v1::Dapr::Stub> stub_;
  std::string token_;
};

// The google.rpc.ErrorInfo in a status' binary details, if any.
std::optional<google::rpc::ErrorInfo> ErrorInfoOf(const ::grpc::Status& status) {
  if (status.error_details().empty()) return std::nullopt;
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return std::nullopt;
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return info;
  }
  return std::nullopt;
}

class GrpcE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto started = StartRemorad({"--app-id", "grpc-e2e", "--max-body-size", "64Ki"});
    ASSERT_TRUE(started.ok()) << started.status();
    sidecar_ = new Remorad(*std::move(started));
    client_ = new Client(sidecar_->grpc_port);
  }
  static void TearDownTestSuite() {
    delete client_;
    delete sidecar_;
    client_ = nullptr;
    sidecar_ = nullptr;
  }
  static Remorad* sidecar_;
  static Client* client_;
};
Remorad* GrpcE2E::sidecar_ = nullptr;
Client* GrpcE2E::client_ = nullptr;

TEST_F(GrpcE2E, StartupLogNamesBothPorts) {
  std::string out = sidecar_->process->Output();
  EXPECT_THAT(out, HasSubstr(StrCat("HTTP API on port ", sidecar_->http_port)));
  EXPECT_THAT(out, HasSubstr(StrCat("gRPC API listening on port ", sidecar_->grpc_port)));
}

TEST_F(GrpcE2E, SaveGetDeleteRoundTrip) {
  ASSERT_TRUE(client_->Save("planet", "DeathStar").ok());
  v1::GetStateResponse got;
  ASSERT_TRUE(client_->Get("planet", &got).ok());
  EXPECT_EQ(got.data(), "DeathStar");  // raw bytes: no JSON quoting over gRPC
  EXPECT_FALSE(got.etag().empty());

  ASSERT_TRUE(client_->Delete("planet").ok());
  v1::GetStateResponse gone;
  ::grpc::Status s = client_->Get("planet", &gone);
  EXPECT_TRUE(s.ok()) << s.error_message();  // a missing key is not an error
  EXPECT_TRUE(gone.data().empty());
  EXPECT_TRUE(gone.etag().empty());
}

TEST_F(GrpcE2E, BinaryValuesKeepNulBytesAndReadBackRawOverHttp) {
  const std::string value("\x00\x01 bin\x00\xff\xfe{\"not\":json", 20);
  ASSERT_EQ(value.size(), 20u);
  ASSERT_TRUE(client_->Save("blob", value).ok());
  v1::GetStateResponse got;
  ASSERT_TRUE(client_->Get("blob", &got).ok());
  EXPECT_EQ(got.data(), value);

  // One core, two protocols: HTTP returns the very bytes gRPC stored.
  auto http = HttpCall("127.0.0.1", sidecar_->http_port, "GET", "/v1.0/state/statestore/blob");
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->status, 200);
  EXPECT_EQ(http->body, value);
  EXPECT_EQ(http->Header("ETag"), got.etag());
}

TEST_F(GrpcE2E, ValueWrittenOverHttpReadsAsItsJsonOverGrpc) {
  auto http = HttpCall("127.0.0.1", sidecar_->http_port, "POST", "/v1.0/state/statestore",
                       R"([{"key":"from-http","value":"text"}])");
  ASSERT_TRUE(http.ok()) << http.status();
  ASSERT_EQ(http->status, 204);
  v1::GetStateResponse got;
  ASSERT_TRUE(client_->Get("from-http", &got).ok());
  EXPECT_EQ(got.data(), "\"text\"");
}

TEST_F(GrpcE2E, EtagMismatchIsAbortedAndMatchingEtagWins) {
  ASSERT_TRUE(client_->Save("guarded", "v1").ok());
  v1::GetStateResponse got;
  ASSERT_TRUE(client_->Get("guarded", &got).ok());
  const std::string etag = got.etag();

  ::grpc::Status stale = client_->Save("guarded", "v2", "not-" + etag);
  EXPECT_EQ(stale.error_code(), ::grpc::StatusCode::ABORTED) << stale.error_message();
  ::grpc::Status stale_delete = client_->Delete("guarded", "not-" + etag);
  EXPECT_EQ(stale_delete.error_code(), ::grpc::StatusCode::ABORTED);
  ASSERT_TRUE(client_->Get("guarded", &got).ok());
  EXPECT_EQ(got.data(), "v1");

  EXPECT_TRUE(client_->Save("guarded", "v2", etag).ok());
  ASSERT_TRUE(client_->Get("guarded", &got).ok());
  EXPECT_EQ(got.data(), "v2");
  EXPECT_NE(got.etag(), etag);
  EXPECT_TRUE(client_->Delete("guarded", got.etag()).ok());
}

TEST_F(GrpcE2E, UnknownStoreIsInvalidArgumentWithErrorInfo) {
  v1::GetStateResponse got;
  ::grpc::Status s = client_->Get("k", &got, "nope");
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("nope"));
  auto info = ErrorInfoOf(s);
  ASSERT_TRUE(info.has_value()) << "no ErrorInfo in the status details";
  EXPECT_EQ(info->reason(), "DAPR_STATE_NOT_FOUND");
  EXPECT_EQ(info->domain(), "dapr.io");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(::grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(details.message(), s.error_message());
}

TEST_F(GrpcE2E, IllegalAndEmptyKeysAreInvalidArgument) {
  v1::GetStateResponse got;
  ::grpc::Status illegal = client_->Get("a||b", &got);
  EXPECT_EQ(illegal.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(illegal.error_message(), HasSubstr("a||b"));
  auto info = ErrorInfoOf(illegal);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "DAPR_STATE_ILLEGAL_KEY");

  ::grpc::Status empty = client_->Save("", "x");
  EXPECT_EQ(empty.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(empty.error_message(), "state key cannot be empty");
  auto empty_info = ErrorInfoOf(empty);
  ASSERT_TRUE(empty_info.has_value());
  EXPECT_EQ(empty_info->reason(), "ERR_STATE_SAVE");
}

TEST_F(GrpcE2E, TransactionAppliesAllOperationsAndRejectsUnknownOnes) {
  ASSERT_TRUE(client_->Save("tx-old", "old").ok());
  v1::ExecuteStateTransactionRequest req;
  req.set_storename(kStore);
  auto add = [&req](const std::string& type, const std::string& key, const std::string& value) {
    v1::TransactionalStateOperation* op = req.add_operations();
    op->set_operationtype(type);
    op->mutable_request()->set_key(key);
    op->mutable_request()->set_value(value);
  };
  add("upsert", "tx-a", "A");
  add("upsert", "tx-b", std::string("B\0B", 3));
  add("delete", "tx-old", "");
  google::protobuf::Empty res;
  ::grpc::Status s = client_->stub().ExecuteStateTransaction(client_->Context().get(), req, &res);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::GetStateResponse got;
  ASSERT_TRUE(client_->Get("tx-a", &got).ok());
  EXPECT_EQ(got.data(), "A");
  ASSERT_TRUE(client_->Get("tx-b", &got).ok());
  EXPECT_EQ(got.data(), std::string("B\0B", 3));
  ASSERT_TRUE(client_->Get("tx-old", &got).ok());
  EXPECT_TRUE(got.data().empty());

  // An unknown operation fails the whole transaction before anything is written.
  v1::ExecuteStateTransactionRequest bad;
  bad.set_storename(kStore);
  v1::TransactionalStateOperation* ok_op = bad.add_operations();
  ok_op->set_operationtype("upsert");
  ok_op->mutable_request()->set_key("tx-never");
  ok_op->mutable_request()->set_value("x");
  bad.add_operations()->set_operationtype("patch");
  s = client_->stub().ExecuteStateTransaction(client_->Context().get(), bad, &res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(s.error_message(), "operation type patch not supported");
  ASSERT_TRUE(client_->Get("tx-never", &got).ok());
  EXPECT_TRUE(got.data().empty());
}

TEST_F(GrpcE2E, BulkGetAndBulkDelete) {
  ASSERT_TRUE(client_->Save("bulk-1", "one").ok());
  ASSERT_TRUE(client_->Save("bulk-2", std::string("t\0o", 3)).ok());

  v1::GetBulkStateRequest req;
  req.set_store_name(kStore);
  for (const char* k : {"bulk-1", "bulk-missing", "bulk-2"}) req.add_keys(k);
  req.set_parallelism(2);
  v1::GetBulkStateResponse res;
  ::grpc::Status s = client_->stub().GetBulkState(client_->Context().get(), req, &res);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(res.items_size(), 3);
  EXPECT_EQ(res.items(0).key(), "bulk-1");
  EXPECT_EQ(res.items(0).data(), "one");
  EXPECT_FALSE(res.items(0).etag().empty());
  EXPECT_EQ(res.items(1).key(), "bulk-missing");
  EXPECT_TRUE(res.items(1).data().empty());
  EXPECT_TRUE(res.items(1).error().empty());
  EXPECT_EQ(res.items(2).key(), "bulk-2");
  EXPECT_EQ(res.items(2).data(), std::string("t\0o", 3));

  v1::DeleteBulkStateRequest del;
  del.set_store_name(kStore);
  del.add_states()->set_key("bulk-1");
  del.add_states()->set_key("bulk-2");
  google::protobuf::Empty empty;
  s = client_->stub().DeleteBulkState(client_->Context().get(), del, &empty);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::GetStateResponse got;
  ASSERT_TRUE(client_->Get("bulk-1", &got).ok());
  EXPECT_TRUE(got.data().empty());
  ASSERT_TRUE(client_->Get("bulk-2", &got).ok());
  EXPECT_TRUE(got.data().empty());
}

TEST_F(GrpcE2E, MetadataReportsComponentsAndSetMetadataIsSharedWithHttp) {
  v1::SetMetadataRequest set;
  set.set_key("team");
  set.set_value("rebels");
  google::protobuf::Empty empty;
  ASSERT_TRUE(client_->stub().SetMetadata(client_->Context().get(), set, &empty).ok());

  v1::GetMetadataResponse md;
  ::grpc::Status s =
      client_->stub().GetMetadata(client_->Context().get(), v1::GetMetadataRequest(), &md);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(md.id(), "grpc-e2e");
  EXPECT_THAT(md.runtime_version(), HasSubstr("1.18.3"));
  const v1::RegisteredComponents* store = nullptr;
  for (const auto& c : md.registered_components()) {
    if (c.name() == "statestore") store = &c;
  }
  ASSERT_NE(store, nullptr) << md.DebugString();
  EXPECT_EQ(store->type(), "state.in-memory");
  EXPECT_EQ(store->version(), "v1");
  EXPECT_THAT(store->capabilities(), Contains("ETAG"));
  EXPECT_THAT(store->capabilities(), Contains("TRANSACTIONAL"));
  EXPECT_EQ(md.extended_metadata().at("team"), "rebels");
  EXPECT_TRUE(md.extended_metadata().contains("daprRuntimeVersion"));
  EXPECT_EQ(md.actor_runtime().runtime_status(), v1::ActorRuntime::DISABLED);

  auto http = HttpCall("127.0.0.1", sidecar_->http_port, "GET", "/v1.0/metadata");
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(nlohmann::json::parse(http->body)["extended"]["team"], "rebels");
}

TEST_F(GrpcE2E, UnimplementedRpcsNameThemselves) {
  v1::InvokeBindingRequest binding;
  v1::InvokeBindingResponse binding_res;
  ::grpc::Status s = client_->stub().InvokeBinding(client_->Context().get(), binding, &binding_res);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(s.error_message(), "InvokeBinding is not implemented in this build of remorad");

  // An RPC of Dapr's service that our .proto does not declare.
  s = client_->CallByName("/dapr.proto.runtime.v1.Dapr/RegisterActorTimer");
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(s.error_message(), "RegisterActorTimer is not implemented in this build of remorad");

  // daprd serves no grpc.health.v1.
  s = client_->CallByName("/grpc.health.v1.Health/Check");
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(GrpcE2E, MessagesOverMaxBodySizeAreRejectedAndTheSidecarStaysUp) {
  ::grpc::Status s = client_->Save("huge", std::string(80 * 1024, 'x'));
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_TRUE(client_->Save("small", std::string(32 * 1024, 'x')).ok());
}

TEST(GrpcE2EToken, ApiTokenIsEnforcedOnEveryRpc) {
  auto started = StartRemorad({"--app-id", "tok"}, {{"DAPR_API_TOKEN", "s3cret"}});
  ASSERT_TRUE(started.ok()) << started.status();
  v1::GetStateResponse got;

  ::grpc::Status none = Client(started->grpc_port).Get("k", &got);
  EXPECT_EQ(none.error_code(), ::grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(none.error_message(), "missing api token in request metadata");

  ::grpc::Status wrong = Client(started->grpc_port, "guess").Get("k", &got);
  EXPECT_EQ(wrong.error_code(), ::grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(wrong.error_message(), "authentication error: api token mismatch");

  Client right(started->grpc_port, "s3cret");
  EXPECT_TRUE(right.Save("k", "v").ok());
  EXPECT_TRUE(right.Get("k", &got).ok());
  EXPECT_EQ(got.data(), "v");

  // Unimplemented and unknown RPCs check the token first, as daprd's interceptor does.
  v1::PublishEventRequest publish;
  google::protobuf::Empty empty;
  auto ctx = std::make_unique<::grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  Client anonymous(started->grpc_port);
  EXPECT_EQ(anonymous.stub().PublishEvent(ctx.get(), publish, &empty).error_code(),
            ::grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(anonymous.CallByName("/dapr.proto.runtime.v1.Dapr/RegisterActorTimer").error_code(),
            ::grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(right.CallByName("/dapr.proto.runtime.v1.Dapr/RegisterActorTimer").error_code(),
            ::grpc::StatusCode::UNIMPLEMENTED);
}

TEST(GrpcE2EShutdown, ShutdownRpcStopsTheProcessCleanly) {
  auto started = StartRemorad({"--app-id", "bye"});
  ASSERT_TRUE(started.ok()) << started.status();
  Client client(started->grpc_port);
  google::protobuf::Empty empty;
  auto asked = std::chrono::steady_clock::now();
  ::grpc::Status s = client.stub().Shutdown(client.Context().get(), v1::ShutdownRequest(), &empty);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(started->process->Wait(std::chrono::seconds(10)), 0);
  // Nothing is in flight, so nothing should wait for --dapr-graceful-shutdown-seconds (5 s).
  EXPECT_LT(std::chrono::steady_clock::now() - asked, std::chrono::seconds(3))
      << started->process->Output();
}

TEST(GrpcE2EShutdown, ForcedShutdownExitsWithCodeOne) {
  auto started = StartRemorad({"--app-id", "bye-now"});
  ASSERT_TRUE(started.ok()) << started.status();
  Client client(started->grpc_port);
  auto ctx = client.Context();
  ctx->AddMetadata("dapr-force-shutdown", "true");
  google::protobuf::Empty empty;
  ::grpc::Status s = client.stub().Shutdown(ctx.get(), v1::ShutdownRequest(), &empty);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(started->process->Wait(std::chrono::seconds(10)), 1);
}

TEST(GrpcE2EStartup, GrpcPortInUseStopsRemoradWithAClearError) {
  // Hold a listening socket on a port, then ask remorad to serve gRPC there.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int busy = ntohs(addr.sin_port);

  auto child = ChildProcess::Start({RemoradPath(), "--dapr-http-port", std::to_string(FreePort()),
                                    "--dapr-grpc-port", std::to_string(busy), "--metrics-port",
                                    std::to_string(FreePort())});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ((*child)->Wait(std::chrono::seconds(20)), 1);
  EXPECT_THAT((*child)->Output(),
              HasSubstr(StrCat("cannot listen on 127.0.0.1:", busy, ": Address already in use")));
  ::close(fd);
}

}  // namespace
}  // namespace remora::testing
