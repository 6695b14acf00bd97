#pragma once

// The metadata building block: what GET /v1.0/metadata and gRPC GetMetadata report. Protocol-free;
// each API layer renders the snapshot in its own format.

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "appchannel/app_channel.h"

namespace remora::runtime {

struct ComponentInfo {
  std::string name;
  std::string type;
  std::string version;
  std::vector<std::string> capabilities;
};

struct AppConnectionInfo {
  int port = 0;
  std::string protocol;
  std::string channel_address;
  int max_concurrency = 0;  // 0 or less: unlimited (omitted)
  bool health_check = false;
  std::string health_check_path;
  std::string health_probe_interval;
  std::string health_probe_timeout;
  int health_threshold = 0;
};

struct MetadataSnapshot {
  std::string app_id;
  std::string runtime_version;
  std::vector<std::string> enabled_features;
  std::vector<ComponentInfo> components;
  std::map<std::string, std::string> extended;  // always has daprRuntimeVersion
  AppConnectionInfo app_connection;
  std::vector<SubscriptionSpec> subscriptions;  // every type; rendered as §2.8 `subscriptions`
};

class MetadataBlock {
 public:
  MetadataBlock(std::string app_id, AppConnectionInfo app_connection);

  // Components are registered once at start-up, before the APIs serve.
  void AddComponent(ComponentInfo info) { components_.push_back(std::move(info)); }
  // PUT /v1.0/metadata/{key}, gRPC SetMetadata.
  void Set(std::string key, std::string value);
  // The pub/sub block's current subscriptions (it calls this whenever they change).
  void SetSubscriptions(std::vector<SubscriptionSpec> subscriptions);
  MetadataSnapshot Snapshot() const;

 private:
  std::string app_id_;
  AppConnectionInfo app_connection_;
  std::vector<ComponentInfo> components_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> extended_ ABSL_GUARDED_BY(mu_);
  std::vector<SubscriptionSpec> subscriptions_ ABSL_GUARDED_BY(mu_);
};

// "1.18.3+remora.<version>": compares equal to the Dapr release whose API we implement, and says
// what it really is.
std::string RuntimeVersion();

}  // namespace remora::runtime
