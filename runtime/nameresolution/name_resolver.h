#pragma once

// Name resolution for service invocation: app id -> the address of a sidecar of that app, for
// its internal gRPC API (--dapr-internal-grpc-port). Chosen by the Configuration's
// `spec.nameResolution` (contract §4.4):
//
//   spec:
//     nameResolution:
//       component: directory          # directory (default) | kubernetes
//       configuration:
//         path: /shared/remora/apps   # see directory_resolver.h / dns_resolver.h
//
// Thread-safety: every method may be called from any thread, concurrently.

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace remora::runtime::nameresolution {

// What a sidecar announces about itself.
struct Registration {
  std::string app_id;
  std::string namespace_;
  std::string host;  // how other sidecars reach this one (DAPR_HOST_IP, else the listen address)
  int port = 0;      // the internal gRPC port
};

// `spec.nameResolution` of the Configuration.
struct Config {
  std::string component;  // empty: the default ("directory")
  std::string version;
  std::map<std::string, std::string> configuration;  // scalar values as strings
};

class Resolver {
 public:
  virtual ~Resolver() = default;

  // Announces this sidecar once its internal port listens. Called once.
  virtual absl::Status Register(const Registration& self) = 0;

  // Withdraws the announcement (graceful shutdown). Idempotent.
  virtual void Unregister() = 0;

  // "host:port" of a sidecar of `app_id` (in `namespace_`; empty = this sidecar's), suitable as a
  // gRPC target. NOT_FOUND naming the app id when nothing is known about it. Must not block on the
  // network (the DNS form leaves the lookup to gRPC's own asynchronous resolver).
  virtual absl::StatusOr<std::string> Resolve(const std::string& app_id,
                                              const std::string& namespace_) = 0;

  // The component's name for logs and metadata ("directory", "kubernetes").
  virtual std::string Name() const = 0;
};

// Creates the resolver `config` names; INVALID_ARGUMENT naming the component or key when the
// configuration is unusable, NOT_FOUND for an unknown component.
absl::StatusOr<std::unique_ptr<Resolver>> CreateResolver(const Config& config);

}  // namespace remora::runtime::nameresolution
