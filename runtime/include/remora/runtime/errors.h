#pragma once

// The one error table. Every error that leaves the runtime carries one of these codes; the HTTP
// and gRPC layers turn it into Dapr's status, body and ErrorInfo with ToHttp/ToGrpc-style lookups,
// so no protocol layer decides a status code on its own.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace remora::errors {

enum class Code : uint16_t {
  // common
  kBadRequest,
  kApiUnimplemented,
  kBodyRead,
  kBodyTooLarge,
  kMalformedRequest,
  kMalformedRequestData,
  kInternal,
  kAppChannelNil,
  // health
  kHealthNotReady,
  kHealthAppIdNotMatch,
  kOutboundHealthNotReady,
  // invocation
  kDirectInvoke,
  kDirectInvokeNoAppId,
  // state
  kStateStoreNotConfigured,
  kStateStoreNotFound,
  kStateIllegalKey,
  kStateGet,
  kStateSave,
  kStateSaveETagMismatch,
  kStateSaveETagInvalid,
  kStateSaveEmptyKey,  // gRPC SaveState with an empty key (HTTP rejects it as malformed)
  kStateDelete,
  kStateDeleteETagMismatch,
  kStateDeleteETagInvalid,
  kStateBulkGet,
  kStateBulkDelete,
  kStateTransaction,
  kNotSupportedStateOperation,
  kStateTransactionsNotSupported,
  kStateQueryNotSupported,
  kStateTooManyTransactions,
  kStateQuery,
  // pub/sub
  kPubsubEmpty,
  kPubsubNotFound,
  kPubsubTopicNotFound,
  kPubsubNotConfigured,
  kTopicNameEmpty,
  kPubsubForbidden,
  kPubsubPublishMessage,
  kPubsubRequestMetadata,
  kPubsubCloudEventsSer,
  kPubsubMarshalEnvelope,
  kPubsubMarshalEvents,
  kPubsubUnmarshalEvents,
  kPublishOutbox,
  // bindings
  kInvokeOutputBinding,
  // secrets
  kSecretStoresNotConfigured,
  kSecretStoreNotFound,
  kSecretPermissionDenied,
  kSecretGet,
  // configuration
  kConfigurationStoreNotConfigured,
  kConfigurationStoreNotFound,
  kConfigurationGet,
  kConfigurationSubscribe,
  kConfigurationUnsubscribe,
  // lock
  kLockStoreNotConfigured,
  kLockStoreNotFound,
  kTryLock,
  kUnlock,
  kCount_,  // keep last
};

struct Spec {
  std::string_view error_code;  // errorCode in the HTTP body (legacy ERR_* tag)
  int http_status;
  absl::StatusCode grpc_code;
  std::string_view reason;  // google.rpc.ErrorInfo reason; empty: a legacy error without details
};

const Spec& SpecOf(Code code);

// A status carrying `code`. The message is what the user reads: name the thing that was wrong.
absl::Status Make(Code code, std::string_view message);

// The Dapr code a status carries, if any.
bool CodeOf(const absl::Status& status, Code* code);

// HTTP rendering of any status (one without a code maps from its canonical code, ERR_INTERNAL).
struct HttpError {
  int status;
  std::string body;  // {"errorCode":...,"message":...[,"details":[ErrorInfo]]}
};
HttpError ToHttp(const absl::Status& status);

// Dapr's gRPC→HTTP status mapping (pkg/messaging/v1/util.go).
int HttpStatusFromGrpc(absl::StatusCode code);

}  // namespace remora::errors
