#pragma once

// Loads the gRPC API module (libremora_grpc.so, see api.h) and starts the server. No gRPC
// dependency: this is the only part of the gRPC API linked into the runtime library.

#include <string>

#include "api/grpc/api.h"

namespace remora::runtime::grpc {

// Where the module is looked up, first match wins: $REMORA_GRPC_MODULE, then the directory of
// the running executable, then <that directory>/../lib/remora/. The module stays loaded for the
// life of the process. Fails naming every path tried and the loader's error.
absl::StatusOr<std::unique_ptr<Api>> LoadAndStart(Blocks blocks, ApiHooks hooks, ApiConfig config);

}  // namespace remora::runtime::grpc
