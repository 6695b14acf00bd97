#pragma once

// The building blocks one sidecar runs, as the API servers (HTTP routes, the gRPC module) see
// them. The runtime owns every block and keeps it alive longer than any server. A block this build
// or this configuration does not have is null; the APIs answer its routes with Dapr's
// "not configured" codes.

namespace remora::runtime {

class StateBlock;
class MetadataBlock;
class SecretsBlock;
class PubSubBlock;
class ConfigurationBlock;
class LockBlock;
class InvocationBlock;

struct Blocks {
  StateBlock* state = nullptr;
  MetadataBlock* metadata = nullptr;
  SecretsBlock* secrets = nullptr;
  PubSubBlock* pubsub = nullptr;
  ConfigurationBlock* configuration = nullptr;
  LockBlock* lock = nullptr;
  InvocationBlock* invocation = nullptr;
};

}  // namespace remora::runtime
