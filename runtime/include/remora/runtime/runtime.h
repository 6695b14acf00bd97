#pragma once

// The Remora runtime as a library. remorad is a thin main around it; the C++ SDK's embedded mode
// creates one in-process without servers.

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "blocks/blocks.h"
#include "remora/runtime/config_resource.h"
#include "remora/runtime/options.h"

namespace boost::asio {
class io_context;
}

namespace remora::runtime {

class StateBlock;
class MetadataBlock;
class PubSubBlock;
class AppChannel;
class SecretsBlock;
class LockBlock;
class ConfigurationBlock;
class Registry;
struct ComponentSpec;
class InvocationBlock;
class AppHealthMonitor;
class HealthGatedChannel;
namespace nameresolution {
class Resolver;
}
namespace resiliency {
class AppPolicies;
}

class Runtime {
 public:
  // Loads the resources (or the in-memory defaults when no resources path is given), creates
  // every component and starts the event loops. Nothing listens yet. A component that fails to
  // initialise stops start-up with an error naming it, unless its spec says ignoreErrors.
  static absl::StatusOr<std::unique_ptr<Runtime>> Create(const Options& options);
  ~Runtime();

  // Binds the HTTP API on the configured port, then starts the gRPC API on a background thread
  // once the first health probe has been answered, or after 100 ms (loading gRPC takes longer
  // than the rest of start-up and would slow the first HTTP answers). A gRPC failure is logged
  // and ends Wait() with exit code 1. grpc_port() is 0 until gRPC listens.
  absl::Status StartServers();
  // Serves until SIGINT/SIGTERM or a shutdown request; returns the process exit code.
  int Wait();
  // Graceful unless `force` (then the process exits with code 1 about 100 ms later, as daprd).
  void RequestShutdown(bool force);

  int http_port() const;
  int grpc_port() const;
  const Options& options() const { return options_; }
  StateBlock& state() { return *state_; }
  MetadataBlock& metadata() { return *metadata_; }
  PubSubBlock& pubsub() { return *pubsub_; }
  SecretsBlock& secrets() { return *secrets_; }
  // Every block, for the API servers (null where this build has none).
  Blocks blocks();
  // True once components are initialised and the HTTP API listens (GET /v1.0/healthz). The
  // gRPC API may still be starting: /v1.0/healthz/outbound, which SDKs poll before their first
  // call, waits for it too.
  bool ready() const { return ready_.load(); }

 private:
  explicit Runtime(const Options& options);
  absl::Status LoadComponents();
  absl::Status LoadSecretStores(const std::vector<ComponentSpec>& specs, const Registry& registry);
  void StartGrpc();
  absl::Status CreateInvocation(const std::optional<ConfigurationSpec::NameResolution>& spec,
                                const std::vector<ResiliencySpec>& resiliencies);
  void RegisterInternalPort(int port);
  void StartSubscriptions();
  // --enable-app-health-check: starts the monitor over app_channel_ and returns the channel
  // pub/sub must deliver through (deliveries held back while the app is unhealthy); otherwise
  // app_channel_ itself.
  AppChannel* WatchAppHealth();
  bool AwaitGrpcStartSlot();

  struct Loops;
  struct Servers;
  Options options_;
  std::unique_ptr<Loops> loops_;
  std::unique_ptr<StateBlock> state_;
  std::unique_ptr<SecretsBlock> secrets_;  // destroyed before loops_, which its stores run on
  std::unique_ptr<MetadataBlock> metadata_;
  // The HTTP app channel (--app-protocol http with --app-port); outlives pubsub_, which uses it.
  std::unique_ptr<AppChannel> app_channel_;
  // What pub/sub delivers through when app health checks are on (wraps app_channel_).
  std::unique_ptr<HealthGatedChannel> gated_channel_;
  std::unique_ptr<PubSubBlock> pubsub_;  // destroyed before loops_, which its brokers run on
  std::unique_ptr<LockBlock> lock_;      // destroyed before loops_, which its stores run on
  std::unique_ptr<nameresolution::Resolver> resolver_;
  std::unique_ptr<resiliency::AppPolicies> app_policies_;  // used by invocation_
  // Uses app_channel_ and resolver_; app_health_ probes app_channel_.
  std::unique_ptr<InvocationBlock> invocation_;
  std::unique_ptr<AppHealthMonitor> app_health_;
  std::unique_ptr<ConfigurationBlock> configuration_;  // destroyed before loops_, like pubsub_
  std::unique_ptr<Servers> servers_;
  std::atomic<bool> ready_{false};
  std::atomic<int> shutdown_{0};  // 0 running, 1 graceful, 2 forced
};

}  // namespace remora::runtime
