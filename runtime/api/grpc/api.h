#pragma once

// Dapr's gRPC API (`dapr.proto.runtime.v1.Dapr`, contract §1) on --dapr-grpc-port, over the same
// building blocks as the HTTP API.
//
// Why this header has no gRPC types: gRPC and protobuf are ~20 shared libraries whose loading
// and relocation cost ~12 ms of CPU at exec on the machines we measure (more than remorad's
// whole cold start target). So remorad does not link them: the server lives in a module,
// libremora_grpc.so, that the runtime loads with dlopen on a background thread after the HTTP
// API listens (loader.h). The runtime talks to it only through this abstract interface. The
// module resolves the building blocks' symbols from the executable, which must therefore be
// linked with exported symbols (CMake ENABLE_EXPORTS, as remorad is).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "appchannel/app_channel.h"
#include "blocks/blocks.h"

namespace remora::runtime::grpc {

struct ApiHooks {
  // The Shutdown RPC, after its reply is on its way; `force` from dapr-force-shutdown metadata.
  std::function<void(bool force)> shutdown;
};

struct ApiConfig {
  std::vector<std::string> listen_addresses = {"127.0.0.1"};  // IP literals or host names
  int port = 0;                                               // 0: a free port
  uint64_t max_message_size = 4 * 1024 * 1024;  // receive and send limit (--max-body-size)
  std::string api_token;                        // DAPR_API_TOKEN; empty: no check
  bool api_logging = false;
  // The sidecar-to-sidecar API (proto/remora/internal/v1/invoke.proto), served when
  // Blocks.invocation is set: its port (0: a free one) and addresses (empty: listen_addresses).
  int internal_port = 0;
  std::vector<std::string> internal_listen_addresses;
};

// The gRPC app channel (--app-protocol grpc): the app's AppCallback server at host:port.
struct AppChannelConfig {
  std::string host = "127.0.0.1";  // --app-channel-address
  int port = 0;                    // --app-port
  std::string app_api_token;       // APP_API_TOKEN; sent as `dapr-api-token` metadata when set
  int max_concurrency = -1;        // --app-max-concurrency; <= 0: unlimited
  // ListTopicSubscriptions waits this long for the app to listen (it may still be starting).
  std::chrono::milliseconds subscribe_wait{30000};
  std::chrono::milliseconds event_timeout{60000};   // one OnTopicEvent
  std::chrono::milliseconds invoke_timeout{60000};  // one OnInvoke
  std::chrono::milliseconds health_timeout{500};    // one HealthCheck (--app-health-probe-timeout)
};

// A running gRPC API server.
class Api {
 public:
  // Shuts down with an immediate deadline if Shutdown was not called.
  virtual ~Api() = default;

  // The port it listens on (the chosen one when configured with 0).
  virtual int port() const = 0;

  // Stops accepting calls, lets calls in flight finish until `deadline`, then cancels the rest.
  // Returns when every call has completed, so the building blocks (and the event loops their
  // callbacks run on) must still be alive. Must not be called from a gRPC callback.
  virtual void Shutdown(std::chrono::system_clock::time_point deadline) = 0;

  // The port of the sidecar-to-sidecar API; 0 when it is not served.
  virtual int internal_port() const { return 0; }

  // The sidecar -> app channel over the app's AppCallback service (api/grpc/grpc_app_channel.h),
  // built here because gRPC lives in this module. It does not depend on the server: the caller
  // owns it and may destroy it before or after Shutdown (not from one of its own callbacks).
  virtual std::unique_ptr<AppChannel> CreateAppChannel(AppChannelConfig config) {
    (void)config;
    return nullptr;
  }
};

// Builds the service and listens on every address with one port. Blocks for as long as gRPC
// needs to start (its first server in a process creates thread pools and polling engines).
// Fails with a message naming the address and the OS error when a port cannot be bound (e.g.
// "cannot listen on 127.0.0.1:50001: Address already in use"). `blocks` as for the HTTP API:
// state, metadata, secrets and pubsub are required, and every block must outlive the server.
// grpc.health.v1 and reflection are not registered (daprd has neither).
using StartFn = absl::StatusOr<std::unique_ptr<Api>> (*)(Blocks blocks, ApiHooks hooks,
                                                         ApiConfig config);

// The module exports a `const StartFn` under this name (extern "C", so dlsym finds it).
inline constexpr char kStartSymbol[] = "remora_grpc_api_start";

}  // namespace remora::runtime::grpc
