#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/state/store.h"

namespace remora::components::state::memory {

// state.in-memory (contract §5.11): process-local, no metadata.
absl::StatusOr<std::unique_ptr<Store>> Create(const ComponentContext& context);

}  // namespace remora::components::state::memory
