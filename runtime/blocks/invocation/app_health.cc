#include "blocks/invocation/app_health.h"

#include <mutex>

#include "remora/runtime/asio.h"
#include "remora/runtime/log.h"

namespace remora::runtime {

namespace asio = boost::asio;

// Shared with the timer and probe callbacks, which may outlive the monitor: `stopped` ends them.
struct AppHealthMonitor::State : std::enable_shared_from_this<State> {
  State(asio::io_context& io, AppChannel& channel, Options options,
        std::function<void(bool)> on_change)
      : timer(io), channel(channel), options(options), on_change(std::move(on_change)) {}

  void Schedule() {
    timer.expires_after(options.interval);
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->Probe();
    });
  }

  // Under `mu`, so the monitor's destructor (and then the channel's) cannot run in between; the
  // mutex is recursive because a closed channel answers inline.
  void Probe() {
    std::lock_guard lock(mu);
    if (stopped) return;
    channel.CheckHealth([self = shared_from_this()](absl::Status status) {
      if (self->Stopped()) return;
      // Probes run one after another, so `failures` and `healthy` need no lock.
      if (status.ok()) {
        self->failures = 0;
        if (!self->healthy) {
          self->healthy = true;
          log::Info("app is healthy again");
          self->on_change(true);
        }
      } else if (++self->failures >= self->options.threshold && self->healthy) {
        self->healthy = false;
        log::Warn("app is unhealthy after ", self->failures, " failed probes: ", MessageOf(status));
        self->on_change(false);
      }
      self->Schedule();
    });
  }

  bool Stopped() {
    std::lock_guard lock(mu);
    return stopped;
  }

  asio::steady_timer timer;
  AppChannel& channel;
  const Options options;
  std::function<void(bool)> on_change;
  int failures = 0;
  bool healthy = true;
  std::recursive_mutex mu;
  bool stopped = false;
};

AppHealthMonitor::AppHealthMonitor(asio::io_context& io, AppChannel& channel, Options options,
                                   std::function<void(bool)> on_change)
    : state_(std::make_shared<State>(io, channel, options, std::move(on_change))) {
  // The first probe goes out at once: an app that never comes up is noticed after `threshold`
  // probes, not `threshold + 1` intervals.
  asio::post(io, [state = state_] { state->Probe(); });
}

AppHealthMonitor::~AppHealthMonitor() {
  std::lock_guard lock(state_->mu);
  state_->stopped = true;
}

}  // namespace remora::runtime
