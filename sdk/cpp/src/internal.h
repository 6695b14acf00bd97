#pragma once

// Shared between the transports: how an error reason travels on an absl::Status.

#include <string_view>

#include "absl/status/status.h"

namespace remora::sdk_internal {

// Payload URL under which both transports put the google.rpc.ErrorInfo reason.
inline constexpr std::string_view kReasonPayloadUrl = "type.remora.dev/sdk.ErrorReason";
// Remote only: the serialized google.rpc.Status the sidecar sent, for callers that want the
// other details (ResourceInfo, BadRequest).
inline constexpr std::string_view kGrpcStatusPayloadUrl = "type.googleapis.com/google.rpc.Status";

void SetReason(absl::Status& status, std::string_view reason);

}  // namespace remora::sdk_internal
