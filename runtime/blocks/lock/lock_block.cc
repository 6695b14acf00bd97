#include "blocks/lock/lock_block.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/errors.h"

namespace remora::runtime {
namespace {

using errors::Code;

constexpr std::string_view kSeparator = "||";

bool HasSeparator(std::string_view s) { return s.find(kSeparator) != std::string_view::npos; }

std::string Lower(std::string_view s) {
  std::string out(s);
  absl::AsciiStrToLower(&out);
  return out;
}

}  // namespace

absl::Status LockBlock::AddStore(std::string name, std::string type, std::string version,
                                 std::string_view key_prefix, std::unique_ptr<lock::Store> store) {
  if (HasSeparator(key_prefix)) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("keyPrefix '", key_prefix, "' can't contain '||'"));
  }
  Entry entry;
  entry.info.name = name;
  entry.info.type = std::move(type);
  entry.info.version = std::move(version);
  entry.info.capabilities = store->Features();
  // The keywords are matched case-insensitively, as daprd does; a custom prefix is kept as given.
  std::string lower = Lower(key_prefix);
  entry.prefix = key_prefix.empty()                                       ? "appid"
                 : lower == "appid" || lower == "name" || lower == "none" ? lower
                                                                          : std::string(key_prefix);
  entry.store = std::move(store);
  stores_.insert_or_assign(std::move(name), std::move(entry));
  return absl::OkStatus();
}

absl::StatusOr<const LockBlock::Entry*> LockBlock::Find(std::string_view store) const {
  auto it = stores_.find(store);
  if (it == stores_.end()) {
    return errors::Make(Code::kLockStoreNotFound, StrCat("lock store ", store, " not found"));
  }
  return &it->second;
}

std::string LockBlock::ScopedKey(const Entry& entry, std::string_view resource_id) const {
  if (entry.prefix == "none" || (entry.prefix == "appid" && app_id_.empty())) {
    return StrCat("lock", kSeparator, resource_id);
  }
  std::string_view middle = entry.prefix == "appid"  ? std::string_view(app_id_)
                            : entry.prefix == "name" ? std::string_view(entry.info.name)
                                                     : std::string_view(entry.prefix);
  return StrCat("lock", kSeparator, middle, kSeparator, resource_id);
}

void LockBlock::TryLock(std::string_view store, lock::TryLockRequest request,
                        Callback<lock::TryLockResponse> done) {
  if (stores_.empty()) {
    return std::move(done)(
        errors::Make(Code::kLockStoreNotConfigured, "lock store is not configured"));
  }
  if (request.resource_id.empty()) {
    return std::move(done)(
        errors::Make(Code::kMalformedRequest, StrCat("ResourceId is empty in lock store ", store)));
  }
  if (request.lock_owner.empty()) {
    return std::move(done)(
        errors::Make(Code::kMalformedRequest, StrCat("LockOwner is empty in lock store ", store)));
  }
  if (request.expiry_in_seconds <= 0) {
    return std::move(done)(errors::Make(
        Code::kMalformedRequest, StrCat("ExpiryInSeconds is not positive in lock store ", store)));
  }
  auto entry = Find(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  if (HasSeparator(request.resource_id)) {
    return std::move(done)(
        errors::Make(Code::kTryLock, StrCat("failed to try acquiring lock: input key/keyPrefix '",
                                            request.resource_id, "' can't contain '||'")));
  }
  request.resource_id = ScopedKey(**entry, request.resource_id);
  (*entry)->store->TryLock(
      std::move(request),
      [done = std::move(done)](absl::StatusOr<lock::TryLockResponse> result) mutable {
        if (!result.ok()) {
          return std::move(done)(
              errors::Make(Code::kTryLock,
                           StrCat("failed to try acquiring lock: ", MessageOf(result.status()))));
        }
        std::move(done)(std::move(result));
      });
}

void LockBlock::Unlock(std::string_view store, lock::UnlockRequest request,
                       Callback<lock::UnlockStatus> done) {
  if (stores_.empty()) {
    return std::move(done)(
        errors::Make(Code::kLockStoreNotConfigured, "lock store is not configured"));
  }
  if (request.resource_id.empty()) {
    return std::move(done)(
        errors::Make(Code::kMalformedRequest, StrCat("ResourceId is empty in lock store ", store)));
  }
  if (request.lock_owner.empty()) {
    return std::move(done)(
        errors::Make(Code::kMalformedRequest, StrCat("LockOwner is empty in lock store ", store)));
  }
  auto entry = Find(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  if (HasSeparator(request.resource_id)) {
    return std::move(done)(
        errors::Make(Code::kUnlock, StrCat("failed to release lock: input key/keyPrefix '",
                                           request.resource_id, "' can't contain '||'")));
  }
  request.resource_id = ScopedKey(**entry, request.resource_id);
  (*entry)->store->Unlock(
      std::move(request),
      [done = std::move(done)](absl::StatusOr<lock::UnlockStatus> result) mutable {
        if (!result.ok()) {
          return std::move(done)(errors::Make(
              Code::kUnlock, StrCat("failed to release lock: ", MessageOf(result.status()))));
        }
        std::move(done)(std::move(result));
      });
}

std::vector<LockBlock::StoreInfo> LockBlock::Stores() const {
  std::vector<StoreInfo> out;
  for (const auto& [name, entry] : stores_) out.push_back(entry.info);
  return out;
}

absl::Status LockBlock::Health() const {
  for (const auto& [name, entry] : stores_) {
    absl::Status s = entry.store->Health();
    if (!s.ok()) return MakeStatus(s.code(), StrCat("lock store ", name, ": ", MessageOf(s)));
  }
  return absl::OkStatus();
}

}  // namespace remora::runtime
