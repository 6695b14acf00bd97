// The distributed lock routes (contract §2.7): POST /v1.0-alpha1/lock/{store} and
// POST /v1.0-alpha1/unlock/{store}.

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "api/http/call.h"
#include "api/http/routes.h"
#include "blocks/lock/lock_block.h"
#include "remora/components/common/strings.h"

namespace remora::runtime::http {
namespace {

using errors::Code;
using nlohmann::json;

// daprd decodes these bodies with protojson, so a field may be spelled with its JSON name or its
// proto name, null means "not set", and unknown fields are ignored.
const json* FieldOf(const json& body, const char* json_name, const char* proto_name) {
  for (const char* name : {json_name, proto_name}) {
    auto it = body.find(name);
    if (it != body.end() && !it->is_null()) return &*it;
  }
  return nullptr;
}

absl::Status StringField(const json& body, const char* json_name, const char* proto_name,
                         std::string* out) {
  const json* v = FieldOf(body, json_name, proto_name);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) return Malformed(StrCat("\"", json_name, "\" must be a string"));
  *out = v->get<std::string>();
  return absl::OkStatus();
}

// protojson's int32: a JSON number with an integral value, or a string holding one, in range.
absl::Status Int32Field(const json& body, const char* json_name, const char* proto_name,
                        int32_t* out) {
  const json* v = FieldOf(body, json_name, proto_name);
  if (v == nullptr) return absl::OkStatus();
  auto bad = [&] { return Malformed(StrCat("\"", json_name, "\" must be a 32-bit integer")); };
  double value = 0;
  if (v->is_number_integer() || v->is_number_unsigned() || v->is_number_float()) {
    value = v->get<double>();
  } else if (v->is_string()) {
    const std::string& text = v->get_ref<const std::string&>();
    size_t used = 0;
    try {
      value = std::stod(text, &used);
    } catch (const std::exception&) {
      return bad();
    }
    if (used != text.size()) return bad();
  } else {
    return bad();
  }
  if (std::trunc(value) != value || value < std::numeric_limits<int32_t>::min() ||
      value > std::numeric_limits<int32_t>::max()) {
    return bad();
  }
  *out = static_cast<int32_t>(value);
  return absl::OkStatus();
}

// The body as a JSON object; an empty body is an empty request (daprd skips decoding it), which
// then fails validation with the field that is missing.
absl::StatusOr<json> ObjectBody(const std::string& raw) {
  if (raw.empty()) return json::object();
  absl::StatusOr<json> body = ParseBody(raw);
  if (!body.ok()) return body.status();
  if (!body->is_object()) return Malformed("the body must be a JSON object");
  return body;
}

}  // namespace

// 200 {"success":true|false}: a held lock is an answer, not an error.
void DaprHttpApi::TryLock(Call& call, std::string_view store) {
  if (blocks_.lock == nullptr) {
    return std::move(call.responder)
        .Error(errors::Make(Code::kLockStoreNotConfigured, "lock store is not configured"));
  }
  absl::StatusOr<json> body = ObjectBody(call.request.body());
  if (!body.ok()) return std::move(call.responder).Error(body.status());
  lock::TryLockRequest request;
  absl::Status s = StringField(*body, "resourceId", "resource_id", &request.resource_id);
  s.Update(StringField(*body, "lockOwner", "lock_owner", &request.lock_owner));
  s.Update(Int32Field(*body, "expiryInSeconds", "expiry_in_seconds", &request.expiry_in_seconds));
  if (!s.ok()) return std::move(call.responder).Error(s);
  blocks_.lock->TryLock(
      store, std::move(request),
      [r = std::move(call.responder)](absl::StatusOr<lock::TryLockResponse> result) mutable {
        if (!result.ok()) return std::move(r).Error(result.status());
        std::move(r).Json(json{{"success", result->success}});
      });
}

// 200 {"status":N}: 0 SUCCESS, 1 LOCK_DOES_NOT_EXIST, 2 LOCK_BELONGS_TO_OTHERS.
void DaprHttpApi::Unlock(Call& call, std::string_view store) {
  if (blocks_.lock == nullptr) {
    return std::move(call.responder)
        .Error(errors::Make(Code::kLockStoreNotConfigured, "lock store is not configured"));
  }
  absl::StatusOr<json> body = ObjectBody(call.request.body());
  if (!body.ok()) return std::move(call.responder).Error(body.status());
  lock::UnlockRequest request;
  absl::Status s = StringField(*body, "resourceId", "resource_id", &request.resource_id);
  s.Update(StringField(*body, "lockOwner", "lock_owner", &request.lock_owner));
  if (!s.ok()) return std::move(call.responder).Error(s);
  blocks_.lock->Unlock(
      store, std::move(request),
      [r = std::move(call.responder)](absl::StatusOr<lock::UnlockStatus> result) mutable {
        if (!result.ok()) return std::move(r).Error(result.status());
        std::move(r).Json(json{{"status", static_cast<int>(*result)}});
      });
}

}  // namespace remora::runtime::http
