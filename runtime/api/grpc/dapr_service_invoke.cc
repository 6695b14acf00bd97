// gRPC InvokeService (contract §1.5): the same InvocationBlock as the HTTP route. The caller's
// metadata reaches the app as headers; for an HTTP app the reply carries `dapr-http-status`, and a
// status outside 2xx becomes a gRPC error through Dapr's HTTP→gRPC mapping.

#include <algorithm>
#include <cctype>
#include <utility>

#include "api/grpc/dapr_service.h"
#include "api/grpc/status.h"
#include "blocks/invocation/invocation_block.h"
#include "remora/runtime/errors.h"

namespace remora::runtime::grpc {
namespace {

namespace common = ::dapr::proto::common::v1;

// Dapr's HTTP→gRPC mapping (pkg/messaging/v1/util.go), 400 → INTERNAL included.
::grpc::StatusCode GrpcFromHttp(int status) {
  switch (status) {
    case 200:
      return ::grpc::StatusCode::OK;
    case 408:
      return ::grpc::StatusCode::CANCELLED;
    case 500:
      return ::grpc::StatusCode::UNKNOWN;
    case 400:
      return ::grpc::StatusCode::INTERNAL;
    case 504:
      return ::grpc::StatusCode::DEADLINE_EXCEEDED;
    case 404:
      return ::grpc::StatusCode::NOT_FOUND;
    case 409:
      return ::grpc::StatusCode::ALREADY_EXISTS;
    case 403:
      return ::grpc::StatusCode::PERMISSION_DENIED;
    case 401:
      return ::grpc::StatusCode::UNAUTHENTICATED;
    case 429:
      return ::grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 501:
      return ::grpc::StatusCode::UNIMPLEMENTED;
    case 503:
      return ::grpc::StatusCode::UNAVAILABLE;
    default:
      return ::grpc::StatusCode::UNKNOWN;
  }
}

const char* VerbName(common::HTTPExtension::Verb verb) {
  switch (verb) {
    case common::HTTPExtension::GET:
      return "GET";
    case common::HTTPExtension::HEAD:
      return "HEAD";
    case common::HTTPExtension::PUT:
      return "PUT";
    case common::HTTPExtension::DELETE:
      return "DELETE";
    case common::HTTPExtension::CONNECT:
      return "CONNECT";
    case common::HTTPExtension::OPTIONS:
      return "OPTIONS";
    case common::HTTPExtension::TRACE:
      return "TRACE";
    case common::HTTPExtension::PATCH:
      return "PATCH";
    default:
      return "POST";
  }
}

// Metadata gRPC or the API itself owns: not the app's business.
bool SkipMetadata(std::string_view name) {
  return name.starts_with(':') || name.starts_with("grpc-") || name == "dapr-api-token" ||
         name == "content-type" || name == "te" || name == "user-agent" || name == "dapr-app-id" ||
         name.ends_with("-bin");
}

// gRPC rejects (or asserts on) metadata outside its grammar; an app's odd header is left out.
bool ValidMetadata(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

}  // namespace

DaprService::Unary* DaprService::InvokeService(Ctx* ctx, const v1::InvokeServiceRequest* req,
                                               common::InvokeResponse* res) {
  Call* reactor;
  if (!Begin(ctx, "InvokeService", &reactor)) return reactor;
  if (blocks_.invocation == nullptr) {
    reactor->Finish(
        ToGrpcStatus(InvokeError(req->id(), "service invocation is not available in this build")));
    return reactor;
  }
  const common::InvokeRequest& message = req->message();
  InvokeRequest request;
  request.method = message.method();
  if (!request.method.empty() && request.method.front() == '/') request.method.erase(0, 1);
  request.verb = VerbName(message.http_extension().verb());
  request.query = message.http_extension().querystring();
  request.content_type = message.content_type();
  request.data = message.data().value();
  for (const auto& [key, value] : ctx->client_metadata()) {
    std::string_view name(key.data(), key.size());
    if (SkipMetadata(name)) continue;
    request.headers.emplace_back(std::string(name), std::string(value.data(), value.size()));
  }
  blocks_.invocation->Invoke(
      req->id(), std::move(request), [reactor, ctx, res](absl::StatusOr<InvokeResponse> result) {
        if (!result.ok()) return reactor->Finish(ToGrpcStatus(result.status()));
        if (result->grpc_code != 0) {
          return reactor->Finish(::grpc::Status(static_cast<::grpc::StatusCode>(result->grpc_code),
                                                result->grpc_message));
        }
        ctx->AddInitialMetadata("dapr-http-status", std::to_string(result->http_status));
        for (auto& [name, value] : result->headers) {
          std::string lower = name;
          std::transform(lower.begin(), lower.end(), lower.begin(),
                         [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
          if (SkipMetadata(lower) || lower == "dapr-http-status" || !ValidMetadata(lower, value)) {
            continue;
          }
          ctx->AddInitialMetadata(lower, value);
        }
        if (result->http_status < 200 || result->http_status > 299) {
          return reactor->Finish(::grpc::Status(GrpcFromHttp(result->http_status), result->data));
        }
        res->mutable_data()->set_value(std::move(result->data));
        res->set_content_type(std::move(result->content_type));
        reactor->Finish(::grpc::Status::OK);
      });
  return reactor;
}

}  // namespace remora::runtime::grpc
