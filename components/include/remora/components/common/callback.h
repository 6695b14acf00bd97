#pragma once

#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace remora {

// One-shot completion callbacks used by every asynchronous component and building block.
//
// A component may invoke the callback inline (the in-memory store does, which keeps an embedded
// GET a plain function call) or later on any thread (a Redis reply arrives on the event loop).
// Callers that care which thread they resume on re-dispatch themselves (the HTTP server does).
template <typename T>
using Callback = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;

using DoneCallback = absl::AnyInvocable<void(absl::Status) &&>;

}  // namespace remora
