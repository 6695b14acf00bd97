#include "api/grpc/status.h"

#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/errors.h"

namespace remora::runtime::grpc {

::grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return ::grpc::Status::OK;
  std::string message(MessageOf(status));
  errors::Code code;
  if (!errors::CodeOf(status, &code)) {
    // absl and gRPC share the canonical code numbers.
    return ::grpc::Status(static_cast<::grpc::StatusCode>(status.code()), message);
  }
  const errors::Spec& spec = errors::SpecOf(code);
  const auto grpc_code = static_cast<::grpc::StatusCode>(spec.grpc_code);
  if (spec.reason.empty()) return ::grpc::Status(grpc_code, message);

  google::rpc::ErrorInfo info;
  info.set_reason(std::string(spec.reason));
  info.set_domain("dapr.io");
  google::rpc::Status details;
  details.set_code(static_cast<int>(grpc_code));
  details.set_message(message);
  details.add_details()->PackFrom(info);
  return ::grpc::Status(grpc_code, message, details.SerializeAsString());
}

}  // namespace remora::runtime::grpc
