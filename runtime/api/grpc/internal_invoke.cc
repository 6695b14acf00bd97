#include "api/grpc/internal_invoke.h"

#include <algorithm>
#include <climits>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <grpcpp/grpcpp.h>

#include "api/grpc/grpc_app_channel.h"
#include "api/grpc/proxy.h"
#include "remora/components/common/strings.h"
#include "remora/internal/v1/invoke.grpc.pb.h"
#include "remora/runtime/errors.h"
#include "remora/runtime/log.h"

namespace remora::runtime::grpc {
namespace {

namespace iv1 = ::remora::internal::v1;

std::string HostPort(std::string_view host, int port) {
  if (host.find(':') != std::string_view::npos && !host.starts_with('[')) {
    return StrCat("[", host, "]:", port);
  }
  return StrCat(host, ":", port);
}

// Go's rendering of a gRPC error, which is what daprd's messages show after "err: ".
std::string RpcError(const ::grpc::Status& status) {
  static constexpr const char* kNames[] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  int code = static_cast<int>(status.error_code());
  const char* name = code >= 0 && code <= 16 ? kNames[code] : "Unknown";
  return StrCat("rpc error: code = ", name, " desc = ", status.error_message());
}

// Headers / gRPC metadata into the repeated Header field of our internal proto.
void AddHeaders(std::vector<std::pair<std::string, std::string>> from,
                ::google::protobuf::RepeatedPtrField<iv1::Header>* to) {
  to->Reserve(static_cast<int>(from.size()));
  for (auto& [name, value] : from) {
    iv1::Header* h = to->Add();
    h->set_name(std::move(name));
    h->set_value(std::move(value));
  }
}

void ToProto(InvokeRequest&& in, const std::string& app_id, iv1::InvokeRequest* out) {
  out->set_app_id(app_id);
  out->set_method(std::move(in.method));
  out->set_verb(std::move(in.verb));
  out->set_query(std::move(in.query));
  out->set_content_type(std::move(in.content_type));
  out->set_data(std::move(in.data));
  AddHeaders(std::move(in.headers), out->mutable_headers());
}

InvokeRequest FromProto(iv1::InvokeRequest& in) {
  InvokeRequest out;
  out.method = std::move(*in.mutable_method());
  out.verb = std::move(*in.mutable_verb());
  out.query = std::move(*in.mutable_query());
  out.content_type = std::move(*in.mutable_content_type());
  out.data = std::move(*in.mutable_data());
  out.headers.reserve(in.headers_size());
  for (auto& h : *in.mutable_headers()) {
    out.headers.emplace_back(std::move(*h.mutable_name()), std::move(*h.mutable_value()));
  }
  return out;
}

class Service final : public iv1::Invocation::CallbackService {
 public:
  Service(InvocationBlock& block, AppForwarder& forwarder) : block_(block), forwarder_(forwarder) {}

  // Both RPCs first: refused while draining, and for another app id (a stale name-resolution
  // record pointing at a port another app's sidecar now uses).
  ::grpc::Status Admit(const std::string& app_id) const {
    if (draining_.load()) {
      return ::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "the sidecar is shutting down");
    }
    if (app_id != block_.app_id()) {
      return ::grpc::Status(
          ::grpc::StatusCode::NOT_FOUND,
          StrCat("this sidecar serves app id ", block_.app_id(), ", not ", app_id));
    }
    return ::grpc::Status::OK;
  }

  ::grpc::ServerUnaryReactor* ProxyUnary(::grpc::CallbackServerContext* ctx,
                                         const iv1::ProxyRequest* req,
                                         iv1::ProxyResponse* res) override {
    auto* reactor = ctx->DefaultReactor();
    if (::grpc::Status admitted = Admit(req->app_id()); !admitted.ok()) {
      reactor->Finish(admitted);
      return reactor;
    }
    ProxyCall call;
    call.method = req->method();
    call.payload = req->payload();
    for (const auto& h : req->metadata()) call.metadata.emplace_back(h.name(), h.value());
    auto left = ctx->deadline() - std::chrono::system_clock::now();
    if (left < std::chrono::hours(24)) {
      call.timeout = std::max(std::chrono::milliseconds(1),
                              std::chrono::duration_cast<std::chrono::milliseconds>(left));
    }
    calls_.fetch_add(1);
    forwarder_.Forward(std::move(call), [this, reactor, res](absl::StatusOr<ProxyResult> result) {
      if (!result.ok()) {
        // As CallLocal: this sidecar answered, its app channel could not.
        reactor->Finish(::grpc::Status(::grpc::StatusCode::FAILED_PRECONDITION,
                                       std::string(MessageOf(result.status()))));
      } else {
        res->set_grpc_code(result->grpc_code);
        res->set_grpc_message(std::move(result->grpc_message));
        res->set_grpc_details(std::move(result->grpc_details));
        res->set_payload(std::move(result->payload));
        AddHeaders(std::move(result->headers), res->mutable_headers());
        AddHeaders(std::move(result->trailers), res->mutable_trailers());
        reactor->Finish(::grpc::Status::OK);
      }
      calls_.fetch_sub(1);
    });
    return reactor;
  }

  ::grpc::ServerUnaryReactor* CallLocal(::grpc::CallbackServerContext* ctx,
                                        const iv1::InvokeRequest* req,
                                        iv1::InvokeResponse* res) override {
    auto* reactor = ctx->DefaultReactor();
    if (::grpc::Status admitted = Admit(req->app_id()); !admitted.ok()) {
      reactor->Finish(admitted);
      return reactor;
    }
    calls_.fetch_add(1);
    block_.InvokeLocal(
        FromProto(const_cast<iv1::InvokeRequest&>(*req)),
        [this, reactor, res](absl::StatusOr<InvokeResponse> result) {
          if (!result.ok()) {
            ::grpc::StatusCode code = static_cast<::grpc::StatusCode>(result.status().code());
            errors::Code dapr;
            // This sidecar answered, its app did not: not UNAVAILABLE, which the caller reads as
            // "the callee sidecar is unreachable" and retries.
            if (errors::CodeOf(result.status(), &dapr)) {
              code = ::grpc::StatusCode::FAILED_PRECONDITION;
            }
            reactor->Finish(::grpc::Status(code, std::string(MessageOf(result.status()))));
          } else {
            res->set_http_status(result->http_status);
            res->set_grpc_code(result->grpc_code);
            res->set_grpc_message(std::move(result->grpc_message));
            res->set_content_type(std::move(result->content_type));
            res->set_data(std::move(result->data));
            AddHeaders(std::move(result->headers), res->mutable_headers());
            reactor->Finish(::grpc::Status::OK);
          }
          calls_.fetch_sub(1);
        });
    return reactor;
  }

  // True when no call is left before `deadline`.
  bool Drain(std::chrono::system_clock::time_point deadline) {
    draining_.store(true);
    while (calls_.load() > 0) {
      if (std::chrono::system_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

 private:
  InvocationBlock& block_;
  AppForwarder& forwarder_;
  std::atomic<int> calls_{0};
  std::atomic<bool> draining_{false};
};

class Invoker final : public RemoteInvoker {
 public:
  explicit Invoker(int max_message_size) : max_message_size_(max_message_size) {}

  void Invoke(const std::string& target, const std::string& app_id, InvokeRequest request,
              std::chrono::milliseconds timeout, Callback<InvokeResponse> done) override {
    if (request.content_type == kProxyContentType) {
      return Proxy(target, app_id, std::move(request), timeout, std::move(done));
    }
    struct CallState {
      ::grpc::ClientContext ctx;
      iv1::InvokeRequest req;
      iv1::InvokeResponse res;
      Callback<InvokeResponse> done;
    };
    auto* call = new CallState;
    call->done = std::move(done);
    ToProto(std::move(request), app_id, &call->req);
    call->ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    Stub(target)->async()->CallLocal(
        &call->ctx, &call->req, &call->res, [call](::grpc::Status status) {
          std::unique_ptr<CallState> owned(call);
          if (!status.ok()) {
            // Reads as daprd's errors do after "err: " (the callee sidecar's own reason nested).
            return std::move(owned->done)(
                MakeStatus(static_cast<absl::StatusCode>(status.error_code()), RpcError(status)));
          }
          InvokeResponse out;
          iv1::InvokeResponse& res = owned->res;
          out.http_status = res.http_status();
          out.grpc_code = res.grpc_code();
          out.grpc_message = std::move(*res.mutable_grpc_message());
          out.content_type = std::move(*res.mutable_content_type());
          out.data = std::move(*res.mutable_data());
          out.headers.reserve(res.headers_size());
          for (auto& h : *res.mutable_headers()) {
            out.headers.emplace_back(std::move(*h.mutable_name()), std::move(*h.mutable_value()));
          }
          std::move(owned->done)(std::move(out));
        });
  }

 private:
  // A proxied gRPC call (proxy.h): the ProxyRequest travels in `data`; the headers the block
  // added (caller/callee ids, trace context) join its metadata.
  void Proxy(const std::string& target, const std::string& app_id, InvokeRequest request,
             std::chrono::milliseconds timeout, Callback<InvokeResponse> done) {
    struct CallState {
      ::grpc::ClientContext ctx;
      iv1::ProxyRequest req;
      iv1::ProxyResponse res;
      Callback<InvokeResponse> done;
    };
    auto* call = new CallState;
    call->done = std::move(done);
    if (!call->req.ParseFromString(request.data)) {
      std::unique_ptr<CallState> owned(call);
      return std::move(owned->done)(
          MakeStatus(absl::StatusCode::kInternal, "gRPC proxy: malformed proxy request"));
    }
    call->req.set_app_id(app_id);
    AddHeaders(std::move(request.headers), call->req.mutable_metadata());
    call->ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    Stub(target)->async()->ProxyUnary(
        &call->ctx, &call->req, &call->res, [call](::grpc::Status status) {
          std::unique_ptr<CallState> owned(call);
          if (!status.ok()) {
            return std::move(owned->done)(
                MakeStatus(static_cast<absl::StatusCode>(status.error_code()), RpcError(status)));
          }
          InvokeResponse out;
          out.grpc_code = owned->res.grpc_code();
          out.http_status = HttpStatusFromGrpcCode(out.grpc_code);
          out.content_type = kProxyContentType;
          out.data = owned->res.SerializeAsString();
          std::move(owned->done)(std::move(out));
        });
  }

  iv1::Invocation::Stub* Stub(const std::string& target) {
    std::lock_guard lock(mu_);
    auto& stub = stubs_[target];
    if (!stub) {
      ::grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(max_message_size_);
      args.SetMaxSendMessageSize(max_message_size_);
      // A peer that went away must be noticed before the next call hangs on a dead connection.
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
      args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
      auto channel =
          ::grpc::CreateCustomChannel(target, ::grpc::InsecureChannelCredentials(), args);
      stub = iv1::Invocation::NewStub(channel);
    }
    return stub.get();
  }

  const int max_message_size_;
  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<iv1::Invocation::Stub>> stubs_;
};

class InternalServer final : public InternalApi {
 public:
  InternalServer(InvocationBlock& block, AppForwarder& forwarder, int max_message_size)
      : service_(block, forwarder), invoker_(max_message_size) {}
  ~InternalServer() override { Shutdown(std::chrono::system_clock::now()); }

  absl::Status Listen(const std::vector<std::string>& addresses, int port, int max_message_size) {
    ::grpc::ServerBuilder builder;
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.SetMaxReceiveMessageSize(max_message_size);
    builder.SetMaxSendMessageSize(max_message_size);
    // With a free port and several addresses each would get its own port: serve the first only.
    std::vector<std::string> used = addresses;
    if (port == 0 && used.size() > 1) used.resize(1);
    std::vector<int> selected(used.size(), 0);
    for (size_t i = 0; i < used.size(); ++i) {
      builder.AddListeningPort(HostPort(used[i], port), ::grpc::InsecureServerCredentials(),
                               &selected[i]);
    }
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || used.empty() ||
        !std::all_of(selected.begin(), selected.end(), [](int p) { return p > 0; })) {
      server_.reset();
      return MakeStatus(absl::StatusCode::kUnavailable,
                        StrCat("internal gRPC API: cannot listen on ",
                               used.empty() ? std::string("<no address>") : HostPort(used[0], port),
                               " (--dapr-internal-grpc-port)"));
    }
    port_ = selected.front();
    return absl::OkStatus();
  }

  int port() const override { return port_; }
  RemoteInvoker& invoker() override { return invoker_; }

  void Shutdown(std::chrono::system_clock::time_point deadline) override {
    if (!server_) return;
    service_.Drain(deadline);
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    server_.reset();
  }

 private:
  Service service_;
  Invoker invoker_;
  std::unique_ptr<::grpc::Server> server_;
  int port_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<InternalApi>> InternalApi::Start(
    InvocationBlock& block, AppForwarder& forwarder, const std::vector<std::string>& addresses,
    int port, uint64_t max_message_size) {
  const int limit = static_cast<int>(std::min<uint64_t>(max_message_size, INT_MAX));
  auto api = std::make_unique<InternalServer>(block, forwarder, limit);
  if (absl::Status s = api->Listen(addresses, port, limit); !s.ok()) return s;
  return std::unique_ptr<InternalApi>(std::move(api));
}

}  // namespace remora::runtime::grpc
