#include "api/grpc/proxy.h"

#include <algorithm>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "api/grpc/dapr_service.h"
#include "api/grpc/status.h"
#include "remora/components/common/strings.h"
#include "remora/internal/v1/invoke.pb.h"
#include "remora/runtime/errors.h"

namespace remora::runtime::grpc {
namespace {

namespace iv1 = ::remora::internal::v1;

std::string ToBytes(const ::grpc::ByteBuffer& buffer) {
  std::vector<::grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const ::grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

::grpc::ByteBuffer FromBytes(const std::string& bytes) {
  ::grpc::Slice slice(bytes);
  return ::grpc::ByteBuffer(&slice, 1);
}

// Metadata gRPC itself owns (pseudo-headers, grpc-*, transport headers) cannot be passed on: the
// library sets it for each hop and rejects it from the application.
bool Transport(std::string_view name) {
  return name.empty() || name.starts_with(':') || name.starts_with("grpc-") ||
         name == "content-type" || name == "user-agent" || name == "te" || name == "host";
}

template <typename Map>
std::vector<std::pair<std::string, std::string>> Copy(const Map& md) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : md) {
    std::string name(k.data(), k.size());
    if (Transport(name)) continue;
    out.emplace_back(std::move(name), std::string(v.data(), v.size()));
  }
  return out;
}

std::string Header(const ::grpc::GenericCallbackServerContext& ctx, std::string_view name) {
  auto it = ctx.client_metadata().find(::grpc::string_ref(name.data(), name.size()));
  if (it == ctx.client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

void AppForwarder::SetApp(const AppChannelConfig& config) {
  ::grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_size_);
  args.SetMaxSendMessageSize(max_message_size_);
  std::string address = config.host.find(':') != std::string::npos && !config.host.starts_with('[')
                            ? StrCat("[", config.host, "]:", config.port)
                            : StrCat(config.host, ":", config.port);
  auto channel = ::grpc::CreateCustomChannel(address, ::grpc::InsecureChannelCredentials(), args);
  std::lock_guard lock(mu_);
  stub_ = std::make_shared<::grpc::GenericStub>(channel);
  app_address_ = std::move(address);
  app_token_ = config.app_api_token;
}

void AppForwarder::Forward(ProxyCall call, Callback<ProxyResult> done) {
  struct State {
    std::shared_ptr<::grpc::GenericStub> stub;
    ::grpc::ClientContext ctx;
    ::grpc::ByteBuffer request;
    ::grpc::ByteBuffer response;
    Callback<ProxyResult> done;
  };
  auto state = std::make_unique<State>();
  std::string token;
  {
    std::lock_guard lock(mu_);
    state->stub = stub_;
    token = app_token_;
  }
  if (state->stub == nullptr) {
    return std::move(done)(errors::Make(
        errors::Code::kDirectInvoke,
        StrCat("failed to proxy request: this sidecar has no gRPC app channel (--app-protocol "
               "grpc) for ",
               call.method)));
  }
  for (auto& [name, value] : call.metadata) {
    if (Transport(name) || name == "dapr-api-token") continue;
    state->ctx.AddMetadata(name, value);
  }
  if (!token.empty()) state->ctx.AddMetadata("dapr-api-token", token);
  state->ctx.set_deadline(std::chrono::system_clock::now() + call.timeout);
  state->request = FromBytes(call.payload);
  state->done = std::move(done);
  State* raw = state.release();
  raw->stub->UnaryCall(&raw->ctx, call.method, ::grpc::StubOptions(), &raw->request, &raw->response,
                       [raw](::grpc::Status status) {
                         std::unique_ptr<State> owned(raw);
                         ProxyResult result;
                         result.grpc_code = static_cast<int>(status.error_code());
                         result.grpc_message = status.error_message();
                         result.grpc_details = status.error_details();
                         if (status.ok()) result.payload = ToBytes(owned->response);
                         result.headers = Copy(owned->ctx.GetServerInitialMetadata());
                         result.trailers = Copy(owned->ctx.GetServerTrailingMetadata());
                         std::move(owned->done)(std::move(result));
                       });
}

// One proxied call: reads the request message, makes sure no second one follows (unary only),
// forwards it and answers with whatever came back.
class ProxyReactor final : public ::grpc::ServerGenericBidiReactor {
 public:
  ProxyReactor(ProxyService& service, ::grpc::GenericCallbackServerContext* ctx, std::string app_id,
               InvocationBlock* block)
      : service_(service), ctx_(ctx), app_id_(std::move(app_id)), block_(block) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (reads_++ == 0) {
      if (!ok) return Finish(::grpc::Status(::grpc::StatusCode::CANCELLED, "no request message"));
      return StartRead(&extra_);
    }
    if (ok) {
      return Finish(::grpc::Status(::grpc::StatusCode::UNIMPLEMENTED,
                                   StrCat("gRPC proxying supports unary calls only; ",
                                          ctx_->method(), " sent more than one request message")));
    }
    Dispatch();
  }

  void OnWriteDone(bool) override {}
  void OnDone() override { delete this; }

 private:
  void Dispatch() {
    ProxyCall call;
    call.method = ctx_->method();
    call.payload = ToBytes(request_);
    for (const auto& [k, v] : ctx_->client_metadata()) {
      std::string name(k.data(), k.size());
      // dapr-* is for this sidecar (target, token, stream flag), not for the app.
      if (Transport(name) || name.starts_with("dapr-")) continue;
      call.metadata.emplace_back(std::move(name), std::string(v.data(), v.size()));
    }
    auto left = ctx_->deadline() - std::chrono::system_clock::now();
    if (ctx_->deadline() != std::chrono::system_clock::time_point::max() &&
        left < std::chrono::hours(24)) {
      call.timeout = std::max(std::chrono::milliseconds(1),
                              std::chrono::duration_cast<std::chrono::milliseconds>(left));
    }
    if (app_id_ == block_->app_id()) {
      call.metadata.emplace_back("dapr-caller-app-id", app_id_);
      call.metadata.emplace_back("dapr-callee-app-id", app_id_);
      service_.forwarder_.Forward(std::move(call),
                                  [this](absl::StatusOr<ProxyResult> r) { Answer(std::move(r)); });
      return;
    }
    // Another app: through the block, for name resolution and resiliency; the internal API's
    // invoker recognises the content type and calls ProxyUnary.
    iv1::ProxyRequest proxied;
    proxied.set_method(call.method);
    proxied.set_payload(std::move(call.payload));
    for (auto& [name, value] : call.metadata) {
      iv1::Header* h = proxied.add_metadata();
      h->set_name(std::move(name));
      h->set_value(std::move(value));
    }
    InvokeRequest request;
    request.method = call.method.substr(call.method.starts_with('/') ? 1 : 0);
    request.content_type = kProxyContentType;
    request.data = proxied.SerializeAsString();
    block_->Invoke(app_id_, std::move(request), [this](absl::StatusOr<InvokeResponse> r) {
      if (!r.ok()) return Answer(r.status());
      iv1::ProxyResponse res;
      if (r->content_type != kProxyContentType || !res.ParseFromString(r->data)) {
        return Answer(MakeStatus(absl::StatusCode::kInternal,
                                 "gRPC proxy: the callee sidecar answered something else"));
      }
      ProxyResult out;
      out.grpc_code = res.grpc_code();
      out.grpc_message = std::move(*res.mutable_grpc_message());
      out.grpc_details = std::move(*res.mutable_grpc_details());
      out.payload = std::move(*res.mutable_payload());
      for (auto& h : *res.mutable_headers()) out.headers.emplace_back(h.name(), h.value());
      for (auto& h : *res.mutable_trailers()) out.trailers.emplace_back(h.name(), h.value());
      Answer(std::move(out));
    });
  }

  void Answer(absl::StatusOr<ProxyResult> result) {
    if (!result.ok()) return Finish(ToGrpcStatus(result.status()));
    for (const auto& [name, value] : result->headers) {
      if (!Transport(name)) ctx_->AddInitialMetadata(name, value);
    }
    for (const auto& [name, value] : result->trailers) {
      if (!Transport(name)) ctx_->AddTrailingMetadata(name, value);
    }
    ::grpc::Status status(static_cast<::grpc::StatusCode>(result->grpc_code), result->grpc_message,
                          result->grpc_details);
    if (!status.ok()) return Finish(status);
    response_ = FromBytes(result->payload);
    StartWriteAndFinish(&response_, ::grpc::WriteOptions(), status);
  }

  ProxyService& service_;
  ::grpc::GenericCallbackServerContext* ctx_;
  const std::string app_id_;
  InvocationBlock* block_;
  int reads_ = 0;
  ::grpc::ByteBuffer request_;
  ::grpc::ByteBuffer extra_;
  ::grpc::ByteBuffer response_;
};

::grpc::ServerGenericBidiReactor* ProxyService::CreateReactor(
    ::grpc::GenericCallbackServerContext* ctx) {
  std::string app_id = Header(*ctx, "dapr-app-id");
  InvocationBlock* block = invocation_.load();
  if (app_id.empty() || block == nullptr) return unknown_.CreateReactor(ctx);
  if (::grpc::Status status = dapr_.Authorize(*ctx); !status.ok()) {
    // The same answer UnknownMethods gives an unauthorized call.
    return unknown_.CreateReactor(ctx);
  }
  return new ProxyReactor(*this, ctx, std::move(app_id), block);
}

}  // namespace remora::runtime::grpc
