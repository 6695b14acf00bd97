#include "blocks/metadata/metadata_block.h"

#include "remora/components/common/strings.h"

namespace remora::runtime {

std::string RuntimeVersion() { return StrCat("1.18.3+remora.", REMORA_VERSION); }

MetadataBlock::MetadataBlock(std::string app_id, AppConnectionInfo app_connection)
    : app_id_(std::move(app_id)), app_connection_(std::move(app_connection)) {}

void MetadataBlock::Set(std::string key, std::string value) {
  std::lock_guard lock(mu_);
  extended_[std::move(key)] = std::move(value);
}

void MetadataBlock::SetSubscriptions(std::vector<SubscriptionSpec> subscriptions) {
  std::lock_guard lock(mu_);
  subscriptions_ = std::move(subscriptions);
}

MetadataSnapshot MetadataBlock::Snapshot() const {
  MetadataSnapshot snapshot;
  snapshot.app_id = app_id_;
  snapshot.runtime_version = RuntimeVersion();
  snapshot.components = components_;
  snapshot.app_connection = app_connection_;
  {
    std::lock_guard lock(mu_);
    snapshot.extended = extended_;
    snapshot.subscriptions = subscriptions_;
  }
  snapshot.extended["daprRuntimeVersion"] = snapshot.runtime_version;
  return snapshot;
}

}  // namespace remora::runtime
