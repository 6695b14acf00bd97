#include "remora/client.h"

#include "remora/components/common/strings.h"
#include "src/internal.h"

namespace remora {
namespace {

absl::StatusOr<nlohmann::json> ParseJson(const std::string& bytes, std::string_view key,
                                         bool found) {
  if (!found) {
    return MakeStatus(
        absl::StatusCode::kInvalidArgument,
        StrCat("no JSON value: the key ", key, key.empty() ? "" : " ", "was not found"));
  }
  nlohmann::json value = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("the value ", key.empty() ? "" : StrCat("of key ", key, " "),
                             "is not JSON (", bytes.size(), " bytes)"));
  }
  return value;
}

}  // namespace

absl::StatusOr<nlohmann::json> State::Json() const { return ParseJson(value, "", found); }

absl::StatusOr<nlohmann::json> BulkStateItem::Json() const { return ParseJson(value, key, found); }

StateItem StateItem::FromJson(std::string key, const nlohmann::json& value) {
  StateItem item;
  item.key = std::move(key);
  // Replace invalid UTF-8 instead of throwing: no exception leaves the SDK.
  item.value = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return item;
}

absl::StatusOr<nlohmann::json> InvokeResponse::Json() const {
  return ParseJson(data, "", /*found=*/true);
}

std::string_view UnlockStatusName(UnlockStatus status) {
  switch (status) {
    case UnlockStatus::kSuccess:
      return "SUCCESS";
    case UnlockStatus::kLockDoesNotExist:
      return "LOCK_DOES_NOT_EXIST";
    case UnlockStatus::kLockBelongsToOthers:
      return "LOCK_BELONGS_TO_OTHERS";
    case UnlockStatus::kInternalError:
      break;
  }
  return "INTERNAL_ERROR";
}

std::string ErrorReason(const absl::Status& status) {
  auto payload = status.GetPayload(Sv(sdk_internal::kReasonPayloadUrl));
  return payload ? std::string(*payload) : std::string();
}

namespace sdk_internal {

void SetReason(absl::Status& status, std::string_view reason) {
  if (!reason.empty()) status.SetPayload(Sv(kReasonPayloadUrl), absl::Cord(Sv(reason)));
}

}  // namespace sdk_internal
}  // namespace remora
