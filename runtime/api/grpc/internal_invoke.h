#pragma once

// The sidecar-to-sidecar side of service invocation, inside the gRPC module:
// - InternalApi: a gRPC server on --dapr-internal-grpc-port serving remora.internal.v1.Invocation
//   (proto/remora/internal/v1/invoke.proto); CallLocal hands the call to this sidecar's app
//   through InvocationBlock::InvokeLocal.
// - GrpcRemoteInvoker: InvocationBlock's RemoteInvoker; one channel per peer sidecar ("host:port"),
//   kept for the life of the module, calls on gRPC's callback API.
// The API server (server.cc) starts both when Blocks.invocation is set and hands the invoker to
// the block; it takes it back before shutting down.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "blocks/invocation/invocation_block.h"

namespace remora::runtime::grpc {
class AppForwarder;
}

namespace remora::runtime::grpc {

class InternalApi {
 public:
  // Listens on every address with one port (0: a free one); errors name the address. ProxyUnary
  // (gRPC proxying) goes to the app through `forwarder`, which must outlive this object. The
  // invoker sends requests whose content type is kProxyContentType (proxy.h) as ProxyUnary.
  static absl::StatusOr<std::unique_ptr<InternalApi>> Start(
      InvocationBlock& block, AppForwarder& forwarder, const std::vector<std::string>& addresses,
      int port, uint64_t max_message_size);
  virtual ~InternalApi() = default;
  virtual int port() const = 0;
  // Lets calls in flight finish until `deadline`, then cancels the rest; returns when all are done.
  virtual void Shutdown(std::chrono::system_clock::time_point deadline) = 0;
  // The client side, for InvocationBlock::SetRemoteInvoker; lives as long as this object.
  virtual RemoteInvoker& invoker() = 0;
};

}  // namespace remora::runtime::grpc
