#pragma once

// Delivery helpers shared by the pub/sub components (not part of the broker contract in
// remora/components/pubsub/pubsub.h, which they help to keep).
//
//   HandlerGate  makes "destroying the Subscription stops delivery" hold across threads.
//   GuardedAck   turns an ack that is dropped without being called into an error ack, so a lost
//                callback cannot leak a concurrency slot or silently count as processed.

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "remora/components/pubsub/pubsub.h"

namespace remora::components::pubsub {

// Every handler call of a subscription goes through Run(). Once Close() has returned, no handler
// call is running and none will start: the subscription's owner may free whatever the handler
// captured. Close() called from inside a handler call (the handler destroys its own
// subscription) does not wait for that call, which would deadlock; the call finishes after
// Close() returns.
class HandlerGate {
 public:
  // Runs `fn` unless the gate is closed; false when it was closed.
  template <typename Fn>
  bool Run(Fn&& fn) {
    {
      std::lock_guard lock(mu_);
      if (closed_) return false;
      ++running_;
    }
    Inside().push_back(this);
    std::forward<Fn>(fn)();
    Inside().pop_back();
    // Notify under the lock: Close() cannot return, and the gate cannot be freed, before this
    // thread has let go of it.
    std::lock_guard lock(mu_);
    --running_;
    cv_.notify_all();
    return true;
  }

  void Close() {
    const std::vector<const HandlerGate*>& inside = Inside();
    const int own = static_cast<int>(std::count(inside.begin(), inside.end(), this));
    std::unique_lock lock(mu_);
    closed_ = true;
    cv_.wait(lock, [&] { return running_ <= own; });
  }

  bool closed() const {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  // The gates whose Run() this thread is inside, innermost last.
  static std::vector<const HandlerGate*>& Inside() {
    static thread_local std::vector<const HandlerGate*> inside;
    return inside;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  int running_ = 0;
};

// The Ack handed to a handler. Calling it forwards the status to `on_ack`; destroying it without
// a call forwards CANCELLED ("not processed"), which brokers treat like any error ack.
class GuardedAck {
 public:
  using OnAck = absl::AnyInvocable<void(absl::Status) &&>;

  explicit GuardedAck(OnAck on_ack) : on_ack_(std::move(on_ack)) {}
  GuardedAck(GuardedAck&& other) noexcept : on_ack_(std::move(other.on_ack_)) {
    other.on_ack_ = nullptr;
  }
  GuardedAck& operator=(GuardedAck&&) = delete;
  GuardedAck(const GuardedAck&) = delete;
  ~GuardedAck() {
    if (on_ack_) {
      std::move(on_ack_)(absl::CancelledError("the message was neither acked nor failed"));
    }
  }

  void operator()(absl::Status status) && {
    OnAck on_ack = std::move(on_ack_);
    on_ack_ = nullptr;
    if (on_ack) std::move(on_ack)(std::move(status));
  }

 private:
  OnAck on_ack_;
};

inline Ack MakeGuardedAck(GuardedAck::OnAck on_ack) { return GuardedAck(std::move(on_ack)); }

}  // namespace remora::components::pubsub
