#pragma once

// Blocking on a callback-style operation, for the embedded transport.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/status/status.h"
#include "remora/components/common/strings.h"

namespace remora::sdk_internal {

// The result of one asynchronous call. Shared with the callback so that a store completing after
// the caller gave up (timeout) writes into memory that is still alive.
template <typename T>
struct Slot {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<T> value;
};

// Starts an operation with a completion callback and waits for its result. `start` receives the
// callback; it may run it inline (then no waiting happens) or from another thread.
template <typename T, typename Start>
T Await(Start&& start, std::chrono::milliseconds timeout) {
  auto slot = std::make_shared<Slot<T>>();
  start([slot](T result) mutable {
    std::lock_guard lock(slot->mu);
    slot->value.emplace(std::move(result));
    slot->cv.notify_one();
  });
  std::unique_lock lock(slot->mu);
  if (!slot->value && !slot->cv.wait_for(lock, timeout, [&] { return slot->value.has_value(); })) {
    return T(MakeStatus(absl::StatusCode::kDeadlineExceeded,
                        StrCat("the runtime did not answer within ", timeout.count(),
                               " ms (EmbeddedOptions.timeout)")));
  }
  return std::move(*slot->value);
}

}  // namespace remora::sdk_internal
