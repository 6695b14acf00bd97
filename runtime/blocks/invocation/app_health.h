#pragma once

// App health checks (--enable-app-health-check, contract §2.13 "App health"): probes the app
// through AppChannel::CheckHealth every `interval`; after `threshold` consecutive failures the app
// is unhealthy, and the first successful probe makes it healthy again. Each change is reported
// to `on_change` (the runtime stops invocations into the app, and pauses deliveries where the
// pub/sub block supports it). The app starts out healthy.
//
// Thread-safety: construct and destroy on any thread; probes and on_change run on `io`.
// Destroy before the channel and the io_context.

#include <chrono>
#include <functional>
#include <memory>

#include "appchannel/app_channel.h"

namespace boost::asio {
class io_context;
}

namespace remora::runtime {

class AppHealthMonitor {
 public:
  struct Options {
    std::chrono::milliseconds interval{5000};
    int threshold = 3;
  };
  AppHealthMonitor(boost::asio::io_context& io, AppChannel& channel, Options options,
                   std::function<void(bool healthy)> on_change);
  ~AppHealthMonitor();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace remora::runtime
