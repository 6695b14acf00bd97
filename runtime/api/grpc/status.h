#pragma once

// The gRPC rendering of the one error table (remora/runtime/errors.h). Every gRPC handler answers
// a failure through ToGrpcStatus, so no gRPC code decides a status code on its own.

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace remora::runtime::grpc {

// The status daprd would send for `status` (contract §1.5):
// - a status carrying an errors::Code gets that code's gRPC code (errors::SpecOf) and its message;
//   when the code has an ErrorInfo reason, the binary details (grpc-status-details-bin) hold a
//   google.rpc.Status whose details are one google.rpc.ErrorInfo{reason, domain "dapr.io"};
// - any other status keeps its own canonical code and message, without details (Dapr's legacy
//   errors look like that too);
// - OK stays OK.
::grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace remora::runtime::grpc
