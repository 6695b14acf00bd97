#include "remora/runtime/errors.h"

#include <array>
#include <string>

#include "absl/strings/numbers.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"

namespace remora::errors {
namespace {

using SC = absl::StatusCode;

// Indexed by Code. Status codes and reasons follow dapr/dapr v1.18.3 (contract §2.12).
constexpr std::array<Spec, static_cast<size_t>(Code::kCount_)> kTable = {{
    {"ERR_BAD_REQUEST", 400, SC::kInvalidArgument, ""},
    {"ERR_API_UNIMPLEMENTED", 501, SC::kUnimplemented, ""},
    {"ERR_BODY_READ", 400, SC::kInvalidArgument, ""},
    {"ERR_BODY_READ", 413, SC::kResourceExhausted, ""},
    {"ERR_MALFORMED_REQUEST", 400, SC::kInvalidArgument, ""},
    {"ERR_MALFORMED_REQUEST_DATA", 500, SC::kInternal, ""},
    {"ERR_INTERNAL", 500, SC::kInternal, ""},
    {"ERR_APP_CHANNEL_NIL", 500, SC::kInternal, ""},
    // health
    {"ERR_HEALTH_NOT_READY", 500, SC::kInternal, ""},
    {"ERR_HEALTH_APPID_NOT_MATCH", 500, SC::kInternal, ""},
    {"ERR_OUTBOUND_HEALTH_NOT_READY", 500, SC::kInternal, ""},
    // invocation
    {"ERR_DIRECT_INVOKE", 500, SC::kInternal, ""},
    {"ERR_DIRECT_INVOKE", 404, SC::kNotFound, ""},
    // state
    {"ERR_STATE_STORE_NOT_CONFIGURED", 500, SC::kFailedPrecondition, "DAPR_STATE_NOT_CONFIGURED"},
    {"ERR_STATE_STORE_NOT_FOUND", 400, SC::kInvalidArgument, "DAPR_STATE_NOT_FOUND"},
    {"ERR_MALFORMED_REQUEST", 400, SC::kInvalidArgument, "DAPR_STATE_ILLEGAL_KEY"},
    {"ERR_STATE_GET", 500, SC::kInternal, ""},
    {"ERR_STATE_SAVE", 500, SC::kInternal, ""},
    {"ERR_STATE_SAVE", 409, SC::kAborted, ""},
    {"ERR_STATE_SAVE", 400, SC::kInvalidArgument, ""},
    {"ERR_STATE_SAVE", 400, SC::kInvalidArgument, "ERR_STATE_SAVE"},
    {"ERR_STATE_DELETE", 500, SC::kInternal, ""},
    {"ERR_STATE_DELETE", 409, SC::kAborted, ""},
    {"ERR_STATE_DELETE", 400, SC::kInvalidArgument, ""},
    {"ERR_STATE_BULK_GET", 500, SC::kInternal, ""},
    {"ERR_STATE_BULK_DELETE", 500, SC::kInternal, ""},
    {"ERR_STATE_TRANSACTION", 500, SC::kInternal, ""},
    {"ERR_NOT_SUPPORTED_STATE_OPERATION", 400, SC::kUnimplemented, ""},
    {"ERR_STATE_STORE_NOT_SUPPORTED", 500, SC::kUnimplemented,
     "DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED"},
    {"ERR_STATE_STORE_NOT_SUPPORTED", 500, SC::kInternal, "DAPR_STATE_QUERYING_NOT_SUPPORTED"},
    {"ERR_STATE_STORE_TOO_MANY_TRANSACTIONS", 400, SC::kInvalidArgument,
     "DAPR_STATE_TOO_MANY_TRANSACTIONS"},
    {"ERR_STATE_QUERY", 500, SC::kInternal, "DAPR_STATE_QUERY_FAILED"},
    // pub/sub
    {"ERR_PUBSUB_EMPTY", 404, SC::kInvalidArgument, "DAPR_PUBSUB_NAME_EMPTY"},
    {"ERR_PUBSUB_NOT_FOUND", 404, SC::kInvalidArgument, "DAPR_PUBSUB_NOT_FOUND"},
    {"ERR_PUBSUB_NOT_FOUND", 400, SC::kNotFound, "DAPR_PUBSUB_TEST_NOT_FOUND"},
    {"ERR_PUBSUB_NOT_CONFIGURED", 400, SC::kFailedPrecondition, "DAPR_PUBSUB_NOT_CONFIGURED"},
    {"ERR_TOPIC_NAME_EMPTY", 404, SC::kInvalidArgument, "DAPR_PUBSUB_TOPIC_NAME_EMPTY"},
    {"ERR_PUBSUB_FORBIDDEN", 403, SC::kPermissionDenied, "DAPR_PUBSUB_FORBIDDEN"},
    {"ERR_PUBSUB_PUBLISH_MESSAGE", 500, SC::kInternal, "DAPR_PUBSUB_PUBLISH_MESSAGE"},
    {"ERR_PUBSUB_REQUEST_METADATA", 400, SC::kInvalidArgument,
     "DAPR_PUBSUB_METADATA_DESERIALIZATION"},
    {"ERR_PUBSUB_CLOUD_EVENTS_SER", 500, SC::kInvalidArgument, "DAPR_PUBSUB_CLOUD_EVENT_CREATION"},
    {"ERR_PUBSUB_EVENTS_SER", 400, SC::kInvalidArgument, "DAPR_PUBSUB_MARSHAL_ENVELOPE"},
    {"ERR_PUBSUB_EVENTS_SER", 400, SC::kInvalidArgument, "DAPR_PUBSUB_MARSHAL_EVENTS"},
    {"ERR_PUBSUB_EVENTS_SER", 400, SC::kInvalidArgument, "DAPR_PUBSUB_UNMARSHAL_EVENTS"},
    {"ERR_PUBLISH_OUTBOX", 500, SC::kInternal, "DAPR_PUBSUB_OUTBOX"},
    // bindings
    {"ERR_INVOKE_OUTPUT_BINDING", 500, SC::kInternal, ""},
    // secrets
    {"ERR_SECRET_STORES_NOT_CONFIGURED", 500, SC::kFailedPrecondition, ""},
    {"ERR_SECRET_STORE_NOT_FOUND", 401, SC::kInvalidArgument, ""},
    {"ERR_PERMISSION_DENIED", 403, SC::kPermissionDenied, ""},
    {"ERR_SECRET_GET", 500, SC::kInternal, ""},
    // configuration
    {"ERR_CONFIGURATION_STORE_NOT_CONFIGURED", 500, SC::kFailedPrecondition, ""},
    {"ERR_CONFIGURATION_STORE_NOT_FOUND", 400, SC::kInvalidArgument, ""},
    {"ERR_CONFIGURATION_GET", 500, SC::kInternal, ""},
    {"ERR_CONFIGURATION_SUBSCRIBE", 500, SC::kInternal, ""},
    {"ERR_CONFIGURATION_UNSUBSCRIBE", 500, SC::kInternal, ""},
    // lock
    {"ERR_LOCK_STORE_NOT_CONFIGURED", 500, SC::kFailedPrecondition, ""},
    {"ERR_LOCK_STORE_NOT_FOUND", 400, SC::kInvalidArgument, ""},
    {"ERR_TRY_LOCK", 500, SC::kInternal, ""},
    {"ERR_UNLOCK", 500, SC::kInternal, ""},
}};

constexpr bool EveryCodeHasARow() {
  for (const Spec& spec : kTable) {
    if (spec.error_code.empty()) return false;
  }
  return true;
}
static_assert(EveryCodeHasARow(), "every errors::Code needs its row in kTable, in enum order");

constexpr std::string_view kPayloadUrl = "type.remora.dev/errors.Code";

}  // namespace

const Spec& SpecOf(Code code) { return kTable[static_cast<size_t>(code)]; }

absl::Status Make(Code code, std::string_view message) {
  absl::Status status = MakeStatus(SpecOf(code).grpc_code, message);
  status.SetPayload(Sv(kPayloadUrl), absl::Cord(StrCat(static_cast<int>(code))));
  return status;
}

bool CodeOf(const absl::Status& status, Code* code) {
  auto payload = status.GetPayload(Sv(kPayloadUrl));
  if (!payload) return false;
  int value = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &value) || value < 0 ||
      value >= static_cast<int>(Code::kCount_)) {
    return false;
  }
  *code = static_cast<Code>(value);
  return true;
}

int HttpStatusFromGrpc(absl::StatusCode code) {
  switch (code) {
    case SC::kOk:
      return 200;
    case SC::kCancelled:
      return 408;
    case SC::kUnknown:
      return 500;
    case SC::kInvalidArgument:
      return 400;
    case SC::kDeadlineExceeded:
      return 504;
    case SC::kNotFound:
      return 404;
    case SC::kAlreadyExists:
      return 409;
    case SC::kPermissionDenied:
      return 403;
    case SC::kUnauthenticated:
      return 401;
    case SC::kResourceExhausted:
      return 429;
    case SC::kFailedPrecondition:
      return 400;
    case SC::kAborted:
      return 409;
    case SC::kOutOfRange:
      return 400;
    case SC::kUnimplemented:
      return 501;
    case SC::kInternal:
      return 500;
    case SC::kUnavailable:
      return 503;
    case SC::kDataLoss:
      return 500;
    default:
      return 500;
  }
}

HttpError ToHttp(const absl::Status& status) {
  nlohmann::json body;
  Code code;
  int http_status;
  if (CodeOf(status, &code)) {
    const Spec& spec = SpecOf(code);
    http_status = spec.http_status;
    body["errorCode"] = spec.error_code;
    body["message"] = std::string(MessageOf(status));
    if (!spec.reason.empty()) {
      body["details"] = nlohmann::json::array({{
          {"@type", "type.googleapis.com/google.rpc.ErrorInfo"},
          {"reason", spec.reason},
          {"domain", "dapr.io"},
          {"metadata", nullptr},
      }});
    }
  } else {
    http_status = HttpStatusFromGrpc(status.code());
    body["errorCode"] = "ERR_INTERNAL";
    body["message"] = std::string(MessageOf(status));
  }
  return {http_status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

}  // namespace remora::errors
