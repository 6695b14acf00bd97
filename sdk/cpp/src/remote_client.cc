// The remote transport: Dapr's gRPC API on a sidecar, through the synchronous generated stub.
//
// A serverless function has one client and few concurrent calls, so the synchronous stub is the
// simplest thing that is also fast: no completion-queue thread of our own, and the calling thread
// is the one that waits anyway.

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <future>
#include <map>
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

template <typename ProtoMap>
ConfigurationItems ItemsFromProto(const ProtoMap& from) {
  ConfigurationItems out;
  for (const auto& [key, item] : from) {
    out[key] = {item.value(), item.version(), FromProto(item.metadata())};
  }
  return out;
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
    std::map<std::string, std::shared_ptr<ConfigSubscription>> subs;
    {
      std::lock_guard lock(subs_mu_);
      subs.swap(subs_);
    }
    for (auto& [id, sub] : subs) StopSubscription(*sub);
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

  absl::Status PublishEvent(const PublishRequest& request) override {
    pb::PublishEventRequest req;
    req.set_pubsub_name(request.pubsub);
    req.set_topic(request.topic);
    req.set_data(request.data);
    req.set_data_content_type(request.content_type);
    CopyMetadata(request.metadata, req.mutable_metadata());
    return Unary(&pb::Dapr::Stub::PublishEvent, req);
  }

  absl::StatusOr<BulkPublishResult> BulkPublishEvent(const BulkPublishRequest& request) override {
    pb::BulkPublishRequest req;
    req.set_pubsub_name(request.pubsub);
    req.set_topic(request.topic);
    CopyMetadata(request.metadata, req.mutable_metadata());
    for (size_t i = 0; i < request.entries.size(); ++i) {
      const BulkPublishEntry& in = request.entries[i];
      pb::BulkPublishRequestEntry* out = req.add_entries();
      out->set_entry_id(in.entry_id.empty() ? std::to_string(i) : in.entry_id);
      out->set_event(in.event);
      out->set_content_type(in.content_type);
      CopyMetadata(in.metadata, out->mutable_metadata());
    }
    pb::BulkPublishResponse resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    if (absl::Status s = Convert(stub_->BulkPublishEvent(&ctx, req, &resp)); !s.ok()) return s;
    BulkPublishResult out;
    for (pb::BulkPublishResponseFailedEntry& f : *resp.mutable_failedentries()) {
      out.failed_entries.push_back(
          {std::move(*f.mutable_entry_id()), std::move(*f.mutable_error())});
    }
    return out;
  }

  absl::StatusOr<InvokeResponse> InvokeMethod(const InvokeRequest& request) override {
    pb::InvokeServiceRequest req;
    req.set_id(request.app_id);
    common::InvokeRequest* message = req.mutable_message();
    message->set_method(request.method);
    message->mutable_data()->set_value(request.data);
    message->set_content_type(request.content_type);
    common::HTTPExtension::Verb verb = common::HTTPExtension::NONE;
    if (!request.verb.empty()) {
      std::string upper = request.verb;
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (!common::HTTPExtension::Verb_Parse(upper, &verb) || verb == common::HTTPExtension::NONE) {
        return MakeStatus(absl::StatusCode::kInvalidArgument,
                          StrCat("InvokeRequest.verb: unknown HTTP verb '", request.verb, "'"));
      }
    }
    message->mutable_http_extension()->set_verb(verb);
    message->mutable_http_extension()->set_querystring(request.query);
    common::InvokeResponse resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    for (const auto& [name, value] : request.headers) {
      // gRPC metadata keys are lower case; HTTP header names are case-insensitive anyway.
      std::string key = name;
      for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      ctx.AddMetadata(key, value);
    }
    if (absl::Status s = Convert(stub_->InvokeService(&ctx, req, &resp)); !s.ok()) return s;
    InvokeResponse out;
    out.data = std::move(*resp.mutable_data()->mutable_value());
    out.content_type = std::move(*resp.mutable_content_type());
    // Headers first, then trailers: a trailer of the same name wins, as it was sent last.
    for (const auto* md : {&ctx.GetServerInitialMetadata(), &ctx.GetServerTrailingMetadata()}) {
      for (const auto& [k, v] : *md) {
        std::string key(k.data(), k.size());
        if (key == "dapr-http-status") {
          out.http_status = std::atoi(std::string(v.data(), v.size()).c_str());
          continue;
        }
        out.headers[key] = std::string(v.data(), v.size());
      }
    }
    return out;
  }

  absl::StatusOr<Secret> GetSecret(const GetSecretRequest& request) override {
    pb::GetSecretRequest req;
    req.set_store_name(request.store);
    req.set_key(request.key);
    CopyMetadata(request.metadata, req.mutable_metadata());
    pb::GetSecretResponse resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    if (absl::Status s = Convert(stub_->GetSecret(&ctx, req, &resp)); !s.ok()) return s;
    return FromProto(resp.data());
  }

  absl::StatusOr<BulkSecret> GetBulkSecret(const GetBulkSecretRequest& request) override {
    pb::GetBulkSecretRequest req;
    req.set_store_name(request.store);
    CopyMetadata(request.metadata, req.mutable_metadata());
    pb::GetBulkSecretResponse resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    if (absl::Status s = Convert(stub_->GetBulkSecret(&ctx, req, &resp)); !s.ok()) return s;
    BulkSecret out;
    for (const auto& [name, secret] : resp.data()) out[name] = FromProto(secret.secrets());
    return out;
  }

  absl::StatusOr<ConfigurationItems> GetConfiguration(
      const GetConfigurationRequest& request) override {
    pb::GetConfigurationRequest req;
    req.set_store_name(request.store);
    for (const std::string& key : request.keys) req.add_keys(key);
    CopyMetadata(request.metadata, req.mutable_metadata());
    pb::GetConfigurationResponse resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    if (absl::Status s = Convert(stub_->GetConfiguration(&ctx, req, &resp)); !s.ok()) return s;
    return ItemsFromProto(resp.items());
  }

  absl::StatusOr<std::string> SubscribeConfiguration(const SubscribeConfigurationRequest& request,
                                                     ConfigurationHandler handler) override {
    pb::SubscribeConfigurationRequest req;
    req.set_store_name(request.store);
    for (const std::string& key : request.keys) req.add_keys(key);
    CopyMetadata(request.metadata, req.mutable_metadata());

    auto sub = std::make_shared<ConfigSubscription>();
    sub->store = request.store;
    // No deadline: the stream lives until unsubscribed. Only the wait for its first message (the
    // subscription id) is bounded, below.
    if (!api_token_.empty()) sub->ctx.AddMetadata("dapr-api-token", api_token_);
    sub->reader = stub_->SubscribeConfiguration(&sub->ctx, req);

    auto first = std::make_shared<std::promise<absl::StatusOr<std::string>>>();
    std::future<absl::StatusOr<std::string>> first_result = first->get_future();
    sub->thread = std::thread([this, sub, first, handler = std::move(handler)] {
      ReadConfigurationStream(*sub, *first, handler);
    });
    if (first_result.wait_for(timeout_) != std::future_status::ready) {
      sub->ctx.TryCancel();
      sub->thread.join();
      return MakeStatus(
          absl::StatusCode::kDeadlineExceeded,
          StrCat("the sidecar at ", address_, " did not accept the configuration ",
                 "subscription within ", timeout_.count(), " ms (RemoteOptions.timeout)"));
    }
    absl::StatusOr<std::string> id = first_result.get();
    if (!id.ok()) {
      sub->thread.join();
      return id.status();
    }
    std::lock_guard lock(subs_mu_);
    subs_[*id] = sub;
    return id;
  }

  absl::Status UnsubscribeConfiguration(std::string_view store, std::string_view id) override {
    pb::UnsubscribeConfigurationRequest req;
    req.set_store_name(std::string(store));
    req.set_id(std::string(id));
    pb::UnsubscribeConfigurationResponse resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    absl::Status status = Convert(stub_->UnsubscribeConfiguration(&ctx, req, &resp));
    // Whatever the sidecar says, this client stops listening: the caller asked for no more calls.
    std::shared_ptr<ConfigSubscription> sub;
    {
      std::lock_guard lock(subs_mu_);
      if (auto it = subs_.find(std::string(id)); it != subs_.end()) {
        sub = std::move(it->second);
        subs_.erase(it);
      }
    }
    if (sub != nullptr) StopSubscription(*sub);
    if (!status.ok()) return status;
    if (!resp.ok()) {
      return MakeStatus(absl::StatusCode::kNotFound,
                        resp.message().empty()
                            ? StrCat("the sidecar has no configuration subscription ", id)
                            : resp.message());
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> TryLock(const TryLockRequest& request) override {
    pb::TryLockRequest req;
    req.set_store_name(request.store);
    req.set_resource_id(request.resource);
    req.set_lock_owner(request.owner);
    req.set_expiry_in_seconds(request.expiry_seconds);
    pb::TryLockResponse resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    if (absl::Status s = Convert(stub_->TryLockAlpha1(&ctx, req, &resp)); !s.ok()) return s;
    return resp.success();
  }

  absl::StatusOr<UnlockStatus> Unlock(const UnlockRequest& request) override {
    pb::UnlockRequest req;
    req.set_store_name(request.store);
    req.set_resource_id(request.resource);
    req.set_lock_owner(request.owner);
    pb::UnlockResponse resp;
    grpc::ClientContext ctx;
    Prepare(ctx);
    if (absl::Status s = Convert(stub_->UnlockAlpha1(&ctx, req, &resp)); !s.ok()) return s;
    switch (resp.status()) {
      case pb::UnlockResponse::SUCCESS:
        return UnlockStatus::kSuccess;
      case pb::UnlockResponse::LOCK_DOES_NOT_EXIST:
        return UnlockStatus::kLockDoesNotExist;
      case pb::UnlockResponse::LOCK_BELONGS_TO_OTHERS:
        return UnlockStatus::kLockBelongsToOthers;
      default:
        return UnlockStatus::kInternalError;
    }
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

  // One SubscribeConfiguration stream and the thread that reads it.
  struct ConfigSubscription {
    std::string store;
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<pb::SubscribeConfigurationResponse>> reader;
    std::thread thread;
  };

  // Runs on the subscription's thread: the first message carries the id (handed to the
  // subscriber through `first`), each later one is an update for the handler.
  void ReadConfigurationStream(ConfigSubscription& sub,
                               std::promise<absl::StatusOr<std::string>>& first,
                               const ConfigurationHandler& handler) {
    pb::SubscribeConfigurationResponse msg;
    if (!sub.reader->Read(&msg)) {
      absl::Status status = Convert(sub.reader->Finish());
      if (status.ok()) {
        status = MakeStatus(absl::StatusCode::kInternal,
                            "the sidecar ended the configuration subscription without an id");
      }
      first.set_value(status);
      return;
    }
    first.set_value(msg.id());
    // An id-only message is the acknowledgement; real updates carry items.
    if (msg.items_size() > 0 && handler) handler({msg.id(), ItemsFromProto(msg.items())});
    while (sub.reader->Read(&msg)) {
      if (msg.items_size() > 0 && handler) handler({msg.id(), ItemsFromProto(msg.items())});
    }
    (void)sub.reader->Finish();
  }

  // Cancels the stream and waits for its thread, unless called from that thread (a handler
  // unsubscribing itself): then the thread ends on its own after the handler returns.
  static void StopSubscription(ConfigSubscription& sub) {
    sub.ctx.TryCancel();
    if (sub.thread.get_id() == std::this_thread::get_id()) {
      sub.thread.detach();
    } else if (sub.thread.joinable()) {
      sub.thread.join();
    }
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

  std::mutex subs_mu_;
  std::map<std::string, std::shared_ptr<ConfigSubscription>> subs_ ABSL_GUARDED_BY(subs_mu_);
};

}  // namespace

std::unique_ptr<Client> Client::Remote(const RemoteOptions& options) {
  return std::make_unique<RemoteClient>(options);
}

}  // namespace remora
