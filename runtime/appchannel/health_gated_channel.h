#pragma once

// Holds pub/sub deliveries back while the app is unhealthy (--enable-app-health-check): wraps the
// app channel the pub/sub block delivers through, and fails each delivery with UNAVAILABLE
// without calling the app while the health monitor says the app is down. The block treats that
// like any failed delivery (its retry policy, then a nack), so the broker keeps the events and
// redelivers them once the app is back; nothing is acked that the app did not answer.
// (daprd unsubscribes its topics instead; for the app the effect is the same: no deliveries
// while it is unhealthy, none lost.) Everything else goes straight to the wrapped channel.

#include <atomic>
#include <utility>
#include <vector>

#include "appchannel/app_channel.h"

namespace remora::runtime {

class HealthGatedChannel final : public AppChannel {
 public:
  // `inner` must outlive this channel.
  explicit HealthGatedChannel(AppChannel& inner) : inner_(inner) {}

  // From the health monitor's on_change; any thread.
  void SetHealthy(bool healthy) { healthy_.store(healthy); }

  void ListSubscriptions(Callback<std::vector<SubscriptionSpec>> done) override {
    inner_.ListSubscriptions(std::move(done));
  }
  void DeliverEvent(TopicEvent event, Callback<EventStatus> done) override {
    if (!healthy_.load()) return std::move(done)(Unhealthy());
    inner_.DeliverEvent(std::move(event), std::move(done));
  }
  void BulkDeliver(BulkTopicEvent bulk, Callback<BulkEventStatuses> done) override {
    if (!healthy_.load()) return std::move(done)(Unhealthy());
    inner_.BulkDeliver(std::move(bulk), std::move(done));
  }
  void Invoke(InvokeRequest request, Callback<InvokeResponse> done) override {
    inner_.Invoke(std::move(request), std::move(done));
  }
  void CheckHealth(DoneCallback done) override { inner_.CheckHealth(std::move(done)); }

 private:
  static absl::Status Unhealthy() {
    return MakeStatus(absl::StatusCode::kUnavailable,
                      "the app is unhealthy (app health check): delivery held back");
  }

  AppChannel& inner_;
  std::atomic<bool> healthy_{true};
};

}  // namespace remora::runtime
