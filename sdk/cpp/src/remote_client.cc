// The remote transport: Dapr's gRPC API on a sidecar, through the synchronous generated stub.
//
// A serverless function has one client and few concurrent calls, so the synchronous stub is the
// simplest thing that is also fast: no completion-queue thread of our own, and the calling thread
// is the one that waits anyway.

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/grpcpp.h"
#include "remora/client.h"
#include "remora/components/common/strings.h"
#include "src/internal.h"

namespace remora {
namespace {

namespace pb = dapr::proto::runtime::v1;
namespace common = dapr::proto::common::v1;

constexpr int kDefaultGrpcPort = 50001;

std::string DefaultAddress() {
  int port = kDefaultGrpcPort;
  if (const char* env = std::getenv("DAPR_GRPC_PORT"); env != nullptr && *env != '\0') {
    int parsed = std::atoi(env);
    if (parsed > 0 && parsed < 65536) port = parsed;
  }
  // An IP literal, not "localhost": no resolver round trip on the first call, and remorad binds
  // 127.0.0.1 by default while "localhost" may resolve to ::1 first.
  return StrCat("127.0.0.1:", port);
}

common::StateOptions::StateConsistency ToProto(Consistency c) {
  switch (c) {
    case Consistency::kEventual:
      return common::StateOptions::CONSISTENCY_EVENTUAL;
    case Consistency::kStrong:
      return common::StateOptions::CONSISTENCY_STRONG;
    case Consistency::kUnspecified:
      break;
  }
  return common::StateOptions::CONSISTENCY_UNSPECIFIED;
}

common::StateOptions::StateConcurrency ToProto(Concurrency c) {
  switch (c) {
    case Concurrency::kFirstWrite:
      return common::StateOptions::CONCURRENCY_FIRST_WRITE;
    case Concurrency::kLastWrite:
      return common::StateOptions::CONCURRENCY_LAST_WRITE;
    case Concurrency::kUnspecified:
      break;
  }
  return common::StateOptions::CONCURRENCY_UNSPECIFIED;
}

template <typename ProtoMap>
void CopyMetadata(const Metadata& from, ProtoMap* to) {
  for (const auto& [k, v] : from) (*to)[k] = v;
}

template <typename ProtoMap>
Metadata FromProto(const ProtoMap& from) {
  return Metadata(from.begin(), from.end());
}

// Only sets the options message when something is specified, so the wire matches what Dapr's own
// SDKs send for "no options".
void SetOptions(const StateOptions& options, common::StateItem* item) {
  if (options.concurrency == Concurrency::kUnspecified &&
      options.consistency == Consistency::kUnspecified) {
    return;
  }
  item->mutable_options()->set_concurrency(ToProto(options.concurrency));
  item->mutable_options()->set_consistency(ToProto(options.consistency));
}

void ToProto(const StateItem& from, common::StateItem* to) {
  to->set_key(from.key);
  to->set_value(from.value);
  if (from.etag) to->mutable_etag()->set_value(*from.etag);
  CopyMetadata(from.metadata, to->mutable_metadata());
  SetOptions(from.options, to);
}

// The google.rpc.ErrorInfo reason inside a serialized google.rpc.Status (details = 3, each an Any
// with type_url = 1 and value = 2; ErrorInfo.reason = 1). Read as unknown fields so the SDK needs
// no copy of Google's protos.
std::string ReasonFromDetails(const std::string& details) {
  using google::protobuf::UnknownField;
  using google::protobuf::UnknownFieldSet;
  UnknownFieldSet status;
  if (details.empty() || !status.ParseFromString(details)) return "";
  for (int i = 0; i < status.field_count(); ++i) {
    const UnknownField& detail = status.field(i);
    if (detail.number() != 3 || detail.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    UnknownFieldSet any;
    if (!any.ParseFromString(detail.length_delimited())) continue;
    std::string type_url;
    const std::string* value = nullptr;
    for (int j = 0; j < any.field_count(); ++j) {
      const UnknownField& f = any.field(j);
      if (f.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
      if (f.number() == 1) type_url = f.length_delimited();
      if (f.number() == 2) value = &f.length_delimited();
    }
    constexpr std::string_view kErrorInfo = "google.rpc.ErrorInfo";
    if (value == nullptr || type_url.size() < kErrorInfo.size() ||
        std::string_view(type_url).substr(type_url.size() - kErrorInfo.size()) != kErrorInfo) {
      continue;
    }
    UnknownFieldSet info;
    if (!info.ParseFromString(*value)) continue;
    for (int j = 0; j < info.field_count(); ++j) {
      const UnknownField& f = info.field(j);
      if (f.number() == 1 && f.type() == UnknownField::TYPE_LENGTH_DELIMITED) {
        return f.length_delimited();
      }
    }
  }
  return "";
}

class RemoteClient final : public Client {
 public:
  explicit RemoteClient(const RemoteOptions& options)
      : address_(options.address.empty() ? DefaultAddress() : options.address),
        timeout_(options.timeout) {
    if (options.api_token) {
      api_token_ = *options.api_token;
    } else if (const char* env = std::getenv("DAPR_API_TOKEN"); env != nullptr) {
      api_token_ = env;
    }
    grpc::ChannelArguments args;
    // A sidecar that is not up yet must not cost a caller more than a connect attempt, and one
    // that comes up later must be found within about a second: short reconnect backoff (gRPC's
    // default grows to 120 s) and a short floor on the connect attempt (default 20 s).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // The client's connection is its own (gRPC would otherwise share one between channels with
    // equal arguments): destroying a client closes it, and no client depends on another's.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // The sidecar enforces its own --max-body-size; the client does not add a second, smaller one.
    args.SetMaxReceiveMessageSize(-1);
    // The channel starts IDLE: nothing connects until the first call.
    channel_ = grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
    stub_ = pb::Dapr::NewStub(channel_);
  }

  ~RemoteClient() override {
    stopping_.store(true);
    std::thread watcher;
    {
      std::lock_guard lock(watch_mu_);
      watcher = std::move(watcher_);
    }
    if (watcher.joinable()) watcher.join();
  }

  absl::StatusOr<State> GetState(const GetStateRequest& request) override {
    pb::GetStateRequest req;
    req.set_store_name(request.store);
    req.set_key(request.key);
    req.set_consistency(ToProto(request.consistency));
    CopyMetadata(request.metadata, req.mutable_metadata());
    pb::GetStateResponse resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    if (absl::Status s = Convert(stub_->GetState(&ctx, req, &resp)); !s.ok()) return s;
    State state;
    state.found = !resp.data().empty() || !resp.etag().empty();
    state.value = std::move(*resp.mutable_data());
    state.etag = std::move(*resp.mutable_etag());
    state.metadata = FromProto(resp.metadata());
    return state;
  }

  absl::Status SaveState(const SaveStateRequest& request) override {
    pb::SaveStateRequest req;
    req.set_store_name(request.store);
    for (const StateItem& item : request.items) ToProto(item, req.add_states());
    return Unary(&pb::Dapr::Stub::SaveState, req);
  }

  absl::Status DeleteState(const DeleteStateRequest& request) override {
    pb::DeleteStateRequest req;
    req.set_store_name(request.store);
    req.set_key(request.key);
    if (request.etag) req.mutable_etag()->set_value(*request.etag);
    if (request.options.concurrency != Concurrency::kUnspecified ||
        request.options.consistency != Consistency::kUnspecified) {
      req.mutable_options()->set_concurrency(ToProto(request.options.concurrency));
      req.mutable_options()->set_consistency(ToProto(request.options.consistency));
    }
    CopyMetadata(request.metadata, req.mutable_metadata());
    return Unary(&pb::Dapr::Stub::DeleteState, req);
  }

  absl::StatusOr<std::vector<BulkStateItem>> GetBulkState(
      const GetBulkStateRequest& request) override {
    pb::GetBulkStateRequest req;
    req.set_store_name(request.store);
    for (const std::string& key : request.keys) req.add_keys(key);
    req.set_parallelism(request.parallelism);
    CopyMetadata(request.metadata, req.mutable_metadata());
    pb::GetBulkStateResponse resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    if (absl::Status s = Convert(stub_->GetBulkState(&ctx, req, &resp)); !s.ok()) return s;
    std::vector<BulkStateItem> items;
    items.reserve(resp.items_size());
    for (pb::BulkStateItem& in : *resp.mutable_items()) {
      BulkStateItem out;
      out.key = std::move(*in.mutable_key());
      out.found = !in.data().empty() || !in.etag().empty();
      out.value = std::move(*in.mutable_data());
      out.etag = std::move(*in.mutable_etag());
      out.metadata = FromProto(in.metadata());
      out.error = std::move(*in.mutable_error());
      items.push_back(std::move(out));
    }
    return items;
  }

  absl::Status DeleteBulkState(const DeleteBulkStateRequest& request) override {
    pb::DeleteBulkStateRequest req;
    req.set_store_name(request.store);
    for (const DeleteItem& item : request.items) {
      common::StateItem* out = req.add_states();
      out->set_key(item.key);
      if (item.etag) out->mutable_etag()->set_value(*item.etag);
      CopyMetadata(item.metadata, out->mutable_metadata());
      SetOptions(item.options, out);
    }
    return Unary(&pb::Dapr::Stub::DeleteBulkState, req);
  }

  absl::Status ExecuteStateTransaction(const TransactionRequest& request) override {
    pb::ExecuteStateTransactionRequest req;
    req.set_storename(request.store);
    for (const TransactionOperation& op : request.operations) {
      pb::TransactionalStateOperation* out = req.add_operations();
      out->set_operationtype(op.type == TransactionOperation::Type::kUpsert ? "upsert" : "delete");
      ToProto(op.item, out->mutable_request());
      if (op.type == TransactionOperation::Type::kDelete) out->mutable_request()->clear_value();
    }
    CopyMetadata(request.metadata, req.mutable_metadata());
    return Unary(&pb::Dapr::Stub::ExecuteStateTransaction, req);
  }

  absl::StatusOr<SidecarMetadata> GetMetadata() override {
    pb::GetMetadataRequest req;
    pb::GetMetadataResponse resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    if (absl::Status s = Convert(stub_->GetMetadata(&ctx, req, &resp)); !s.ok()) return s;
    SidecarMetadata out;
    out.app_id = resp.id();
    out.runtime_version = resp.runtime_version();
    out.enabled_features.assign(resp.enabled_features().begin(), resp.enabled_features().end());
    for (const pb::RegisteredComponents& c : resp.registered_components()) {
      out.components.push_back(
          {c.name(), c.type(), c.version(), {c.capabilities().begin(), c.capabilities().end()}});
    }
    out.extended = FromProto(resp.extended_metadata());
    return out;
  }

  absl::Status SetMetadata(std::string_view key, std::string_view value) override {
    pb::SetMetadataRequest req;
    req.set_key(std::string(key));
    req.set_value(std::string(value));
    return Unary(&pb::Dapr::Stub::SetMetadata, req);
  }

  // ---- not yet implemented on this transport (filled in by the next commits) ----
  absl::Status PublishEvent(const PublishRequest&) override { return Todo("PublishEvent"); }
  absl::StatusOr<BulkPublishResult> BulkPublishEvent(const BulkPublishRequest&) override {
    return Todo("BulkPublishEvent");
  }
  absl::StatusOr<InvokeResponse> InvokeMethod(const InvokeRequest&) override {
    return Todo("InvokeMethod");
  }
  absl::StatusOr<Secret> GetSecret(const GetSecretRequest&) override { return Todo("GetSecret"); }
  absl::StatusOr<BulkSecret> GetBulkSecret(const GetBulkSecretRequest&) override {
    return Todo("GetBulkSecret");
  }
  absl::StatusOr<ConfigurationItems> GetConfiguration(const GetConfigurationRequest&) override {
    return Todo("GetConfiguration");
  }
  absl::StatusOr<std::string> SubscribeConfiguration(const SubscribeConfigurationRequest&,
                                                     ConfigurationHandler) override {
    return Todo("SubscribeConfiguration");
  }
  absl::Status UnsubscribeConfiguration(std::string_view, std::string_view) override {
    return Todo("UnsubscribeConfiguration");
  }
  absl::StatusOr<bool> TryLock(const TryLockRequest&) override { return Todo("TryLock"); }
  absl::StatusOr<UnlockStatus> Unlock(const UnlockRequest&) override { return Todo("Unlock"); }
  static absl::Status Todo(std::string_view what) {
    return MakeStatus(absl::StatusCode::kUnimplemented, StrCat(what, ": not implemented yet"));
  }

  absl::Status Shutdown() override {
    return Unary(&pb::Dapr::Stub::Shutdown, pb::ShutdownRequest());
  }

 private:
  void Prepare(grpc::ClientContext& ctx) const {
    // Fail fast (no wait_for_ready): a missing sidecar is an immediate UNAVAILABLE, not a wait
    // until the deadline.
    ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
    if (!api_token_.empty()) ctx.AddMetadata("dapr-api-token", api_token_);
  }

  // Calls an RPC whose response is google.protobuf.Empty.
  template <typename Request>
  absl::Status Unary(grpc::Status (pb::Dapr::Stub::*method)(grpc::ClientContext*, const Request&,
                                                            google::protobuf::Empty*),
                     const Request& request) {
    google::protobuf::Empty resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    return Convert((stub_.get()->*method)(&ctx, request, &resp));
  }

  // A synchronous client polls gRPC's sockets only inside its own calls, and a call on a channel
  // in TRANSIENT_FAILURE fails at once without polling. So after a failed connect, gRPC's
  // background reconnect attempts would hang until something polls (its backup poller, every
  // 5 s): a sidecar that came up would be found seconds late. A thread that waits on the
  // channel's state while it is not READY does the polling; it ends once connected.
  void KeepReconnecting() {
    std::lock_guard lock(watch_mu_);
    if (watching_ || stopping_.load()) return;
    if (watcher_.joinable()) watcher_.join();  // the previous watch has ended
    watching_ = true;
    watcher_ = std::thread([this] {
      while (!stopping_.load()) {
        grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
        if (state == GRPC_CHANNEL_READY) break;
        // Short waits bound how long the destructor joins this thread.
        channel_->WaitForStateChange(
            state, std::chrono::system_clock::now() + std::chrono::milliseconds(100));
      }
      std::lock_guard lock(watch_mu_);
      watching_ = false;
    });
  }

  // gRPC and absl share the canonical code numbers; the message is kept as the sidecar wrote it,
  // except that transport failures say which address and setting were involved.
  absl::Status Convert(const grpc::Status& status) {
    if (status.ok()) return absl::OkStatus();
    auto code = static_cast<absl::StatusCode>(status.error_code());
    std::string message = status.error_message();
    const bool connected = channel_->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
    if (!connected) KeepReconnecting();
    if (code == absl::StatusCode::kUnavailable && !connected) {
      message = StrCat("no Dapr sidecar answers at ", address_,
                       " (set RemoteOptions.address or DAPR_GRPC_PORT): ", message);
    } else if (code == absl::StatusCode::kDeadlineExceeded) {
      message = StrCat("the sidecar at ", address_, " did not answer within ", timeout_.count(),
                       " ms (RemoteOptions.timeout): ", message);
    }
    absl::Status out = MakeStatus(code, message);
    const std::string& details = status.error_details();
    if (!details.empty()) {
      sdk_internal::SetReason(out, ReasonFromDetails(details));
      out.SetPayload(Sv(sdk_internal::kGrpcStatusPayloadUrl), absl::Cord(details));
    }
    return out;
  }

  std::string address_;
  std::string api_token_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Dapr::Stub> stub_;

  std::atomic<bool> stopping_{false};
  std::mutex watch_mu_;
  bool watching_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread watcher_ ABSL_GUARDED_BY(watch_mu_);
};

}  // namespace

std::unique_ptr<Client> Client::Remote(const RemoteOptions& options) {
  return std::make_unique<RemoteClient>(options);
}

}  // namespace remora
