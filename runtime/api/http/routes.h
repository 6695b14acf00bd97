#pragma once

// Dapr's v1 HTTP API (contract §2) over the building blocks: parse → call a block → map the
// status through the one error table. No state logic lives here.

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "api/http/server.h"
#include "blocks/blocks.h"

namespace remora::runtime::http {

struct ApiHooks {
  std::function<bool()> ready;                    // components up and servers listening
  std::function<absl::Status()> outbound_health;  // backends reachable
  std::function<void(bool force)> shutdown;
};

// One request being answered (api/http/call.h); per-block route files take it.
struct Call;

struct ApiConfig {
  std::string app_id;
  std::string api_token;  // DAPR_API_TOKEN; empty: no check
  bool api_logging = false;
};

class DaprHttpApi : public Handler {
 public:
  // blocks.state, metadata, secrets and pubsub are required; the others may be null.
  DaprHttpApi(Blocks blocks, ApiHooks hooks, ApiConfig config);

  void Handle(Request& request, Reply reply) override;
  Response TooLarge(unsigned version, uint64_t limit) override;
  // Requests accepted but not answered yet (graceful shutdown waits for zero).
  int in_flight() const { return in_flight_.load(); }

 private:
  void Route(Call& call);
  void Fallback(Call& call);
  void GetState(Call& call, std::string_view store, std::string_view key);
  void SaveState(Call& call, std::string_view store);
  void DeleteState(Call& call, std::string_view store, std::string_view key);
  void BulkGetState(Call& call, std::string_view store);
  void Transaction(Call& call, std::string_view store);
  void GetMetadata(Call& call);
  void GetSecret(Call& call, std::string_view store, std::string_view key);
  void GetBulkSecret(Call& call, std::string_view store);
  // routes_configuration.cc
  void GetConfiguration(Call& call, std::string_view store);
  void SubscribeConfiguration(Call& call, std::string_view store);
  void UnsubscribeConfiguration(Call& call, std::string_view store, std::string_view id);
  void Publish(Call& call, std::string pubsub, std::string topic);
  void BulkPublish(Call& call, std::string pubsub, std::string topic);
  // routes_lock.cc
  void TryLock(Call& call, std::string_view store);
  void Unlock(Call& call, std::string_view store);

  Blocks blocks_;
  StateBlock& state_;
  MetadataBlock& metadata_;
  SecretsBlock& secrets_;
  PubSubBlock& pubsub_;
  ApiHooks hooks_;
  ApiConfig config_;
  std::atomic<int> in_flight_{0};
};

}  // namespace remora::runtime::http
