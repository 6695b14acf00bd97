#pragma once

// gRPC proxying (contract §1.6): a call to the sidecar's gRPC port for a method the sidecar does
// not serve, carrying metadata `dapr-app-id: X`, reaches app X's own gRPC server; the answer
// (message, status, details, initial and trailing metadata) comes back unchanged.
//
//   own app id  -> AppForwarder: a generic unary call to the app (--app-protocol grpc) with the
//                  caller's metadata minus dapr-*, plus dapr-caller-app-id/dapr-callee-app-id and
//                  APP_API_TOKEN as dapr-api-token
//   another id  -> InvocationBlock::Invoke (name resolution, resiliency) -> the internal API's
//                  ProxyUnary on the callee sidecar -> its AppForwarder -> its app
//
// Unary calls only: a client that sends a second message gets UNIMPLEMENTED; a server-streaming
// method fails as the app's extra messages cannot be passed on through a unary call. Errors of the
// sidecars themselves (unknown app id, callee unreachable, no gRPC app) are Dapr's
// ERR_DIRECT_INVOKE statuses. No `dapr-app-id`: UnknownMethods' UNIMPLEMENTED, as before.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>

#include "absl/status/statusor.h"
#include "api/grpc/api.h"
#include "blocks/invocation/invocation_block.h"

namespace remora::runtime::grpc {

class DaprService;
class UnknownMethods;

// The content type that marks an InvokeRequest/InvokeResponse travelling through InvocationBlock
// as a proxied gRPC call: `data` holds a serialized remora.internal.v1.ProxyRequest/ProxyResponse.
inline constexpr char kProxyContentType[] = "application/x-remora-grpc-proxy";

struct ProxyCall {
  std::string method;  // "/package.Service/Method"
  std::string payload;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::chrono::milliseconds timeout{60000};
};

struct ProxyResult {
  int grpc_code = 0;
  std::string grpc_message;
  std::string grpc_details;
  std::string payload;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> trailers;
};

// Calls this sidecar's gRPC app. Thread-safe; Forward's callback runs on a gRPC thread.
class AppForwarder {
 public:
  explicit AppForwarder(int max_message_size) : max_message_size_(max_message_size) {}
  // Set when the runtime creates the gRPC app channel; until then Forward fails.
  void SetApp(const AppChannelConfig& config);
  // The error is a sidecar failure (no gRPC app, app unreachable/slow); any status the app
  // answers is a ProxyResult.
  void Forward(ProxyCall call, Callback<ProxyResult> done);

 private:
  const int max_message_size_;
  std::mutex mu_;
  std::shared_ptr<::grpc::GenericStub> stub_;
  std::string app_address_;
  std::string app_token_;
};

// The generic service registered on the public gRPC port in place of UnknownMethods.
class ProxyService final : public ::grpc::CallbackGenericService {
 public:
  ProxyService(const DaprService& dapr, UnknownMethods& unknown, AppForwarder& forwarder)
      : dapr_(dapr), unknown_(unknown), forwarder_(forwarder) {}
  // Set with the internal API; null: only the own app id can be called.
  void SetInvocation(InvocationBlock* block) { invocation_.store(block); }
  ::grpc::ServerGenericBidiReactor* CreateReactor(
      ::grpc::GenericCallbackServerContext* ctx) override;

 private:
  friend class ProxyReactor;
  const DaprService& dapr_;
  UnknownMethods& unknown_;
  AppForwarder& forwarder_;
  std::atomic<InvocationBlock*> invocation_{nullptr};
};

}  // namespace remora::runtime::grpc
