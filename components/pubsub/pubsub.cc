#include "remora/components/pubsub/pubsub.h"

#include <algorithm>
#include <mutex>

namespace remora::components::pubsub {

const char* FeatureName(Feature feature) {
  switch (feature) {
    case Feature::kMessageTTL: return "MESSAGE_TTL";
    case Feature::kSubscribeWildcards: return "SUBSCRIBE_WILDCARDS";
    case Feature::kBulkPublish: return "BULK_PUBSUB";
    case Feature::kBulkSubscribe: return "BULK_SUBSCRIBE_IMMEDIATE";
  }
  return "";
}

bool PubSub::HasFeature(Feature feature) const {
  auto features = Features();
  return std::find(features.begin(), features.end(), feature) != features.end();
}

void PubSub::BulkPublish(std::vector<BulkPublishEntry> entries, Callback<BulkPublishResult> done) {
  if (entries.empty()) return std::move(done)(BulkPublishResult{});
  // Shared by every per-entry completion; the last one to finish answers.
  struct State {
    std::mutex mu;
    size_t pending;
    BulkPublishResult result;
    Callback<BulkPublishResult> done;
  };
  auto state = std::make_shared<State>();
  state->pending = entries.size();
  state->done = std::move(done);
  for (auto& entry : entries) {
    Publish(std::move(entry.request), [state, id = entry.entry_id](absl::Status s) {
      bool last;
      {
        std::lock_guard lock(state->mu);
        if (!s.ok()) state->result.failed.push_back({id, std::string(s.message())});
        last = --state->pending == 0;
      }
      if (last) std::move(state->done)(std::move(state->result));
    });
  }
}

}  // namespace remora::components::pubsub
