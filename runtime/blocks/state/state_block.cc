#include "blocks/state/state_block.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "remora/components/common/strings.h"
#include "remora/runtime/errors.h"

namespace remora::runtime {
namespace {

using errors::Code;

constexpr std::string_view kSeparator = "||";

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// A component failure as the operation's Dapr error: ETag problems keep the operation's code but
// get 409 / 400, anything else is the operation's 500.
absl::Status OperationError(const absl::Status& status, Code plain, Code mismatch, Code invalid,
                            std::string_view prefix) {
  Code code = plain;
  if (state::IsETagMismatch(status))
    code = mismatch;
  else if (state::IsETagInvalid(status))
    code = invalid;
  return errors::Make(code, StrCat(prefix, MessageOf(status)));
}

}  // namespace

KeyPrefix KeyPrefix::Parse(std::string_view value) {
  std::string lower = Lower(value);
  KeyPrefix prefix;
  if (lower.empty() || lower == "appid")
    prefix.mode = Mode::kAppId;
  else if (lower == "name")
    prefix.mode = Mode::kName;
  else if (lower == "namespace")
    prefix.mode = Mode::kNamespace;
  else if (lower == "none")
    prefix.mode = Mode::kNone;
  else {
    prefix.mode = Mode::kCustom;
    prefix.custom = std::string(value);
  }
  return prefix;
}

void StateBlock::AddStore(std::string name, std::string type, std::string version, KeyPrefix prefix,
                          std::unique_ptr<state::Store> store) {
  Entry entry;
  entry.info.name = name;
  entry.info.type = std::move(type);
  entry.info.version = std::move(version);
  for (state::Feature f : store->Features())
    entry.info.capabilities.push_back(state::FeatureName(f));
  entry.prefix = std::move(prefix);
  entry.store = std::move(store);
  stores_.insert_or_assign(std::move(name), std::move(entry));
}

absl::StatusOr<StateBlock::Entry*> StateBlock::Find(std::string_view store) {
  if (stores_.empty()) {
    return errors::Make(Code::kStateStoreNotConfigured, "state store is not configured");
  }
  auto it = stores_.find(store);
  if (it == stores_.end()) {
    return errors::Make(Code::kStateStoreNotFound, StrCat("state store ", store, " is not found"));
  }
  return &it->second;
}

absl::StatusOr<std::string> StateBlock::ScopeKey(const Entry& entry, std::string_view key) const {
  if (key.find(kSeparator) != std::string_view::npos) {
    return errors::Make(Code::kStateIllegalKey,
                        StrCat("input key/keyPrefix '", key, "' can't contain '||'"));
  }
  switch (entry.prefix.mode) {
    case KeyPrefix::Mode::kAppId:
      return app_id_.empty() ? std::string(key) : StrCat(app_id_, kSeparator, key);
    case KeyPrefix::Mode::kName:
      return StrCat(entry.info.name, kSeparator, key);
    case KeyPrefix::Mode::kNamespace:
      if (namespace_.empty()) {
        return app_id_.empty() ? std::string(key) : StrCat(app_id_, kSeparator, key);
      }
      return StrCat(namespace_, ".", app_id_, kSeparator, key);
    case KeyPrefix::Mode::kNone:
      return std::string(key);
    case KeyPrefix::Mode::kCustom:
      return StrCat(entry.prefix.custom, kSeparator, key);
  }
  return std::string(key);
}

std::string_view StateBlock::UnscopeKey(std::string_view key) {
  size_t pos = key.find(kSeparator);
  return pos == std::string_view::npos ? key : key.substr(pos + kSeparator.size());
}

void StateBlock::Get(std::string_view store, state::GetRequest request,
                     Callback<state::GetResponse> done) {
  auto entry = Find(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  std::string user_key = std::move(request.key);
  auto key = ScopeKey(**entry, user_key);
  if (!key.ok()) return std::move(done)(key.status());
  request.key = *std::move(key);
  (*entry)->store->Get(std::move(request), [done = std::move(done), user_key = std::move(user_key),
                                            store = std::string(store)](
                                               absl::StatusOr<state::GetResponse> result) mutable {
    if (!result.ok()) {
      return std::move(done)(
          errors::Make(Code::kStateGet, StrCat("fail to get ", user_key, " from state store ",
                                               store, ": ", MessageOf(result.status()))));
    }
    std::move(done)(std::move(result));
  });
}

void StateBlock::Save(std::string_view store, std::vector<state::SetRequest> items,
                      DoneCallback done) {
  auto entry = Find(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  if (items.empty()) return std::move(done)(absl::OkStatus());
  for (auto& item : items) {
    if (item.key.empty()) {
      return std::move(done)(errors::Make(Code::kMalformedRequest, "\"key\" is a required field"));
    }
    auto key = ScopeKey(**entry, item.key);
    if (!key.ok()) return std::move(done)(key.status());
    item.key = *std::move(key);
  }
  auto finish = [done = std::move(done), store = std::string(store)](absl::Status status) mutable {
    if (status.ok()) return std::move(done)(status);
    std::move(done)(OperationError(status, Code::kStateSave, Code::kStateSaveETagMismatch,
                                   Code::kStateSaveETagInvalid,
                                   StrCat("failed saving state in state store ", store, ": ")));
  };
  if (items.size() == 1) {
    (*entry)->store->Set(std::move(items.front()), std::move(finish));
  } else {
    (*entry)->store->BulkSet(std::move(items), std::move(finish));
  }
}

void StateBlock::Delete(std::string_view store, state::DeleteRequest request, DoneCallback done) {
  auto entry = Find(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  std::string user_key = request.key;
  auto key = ScopeKey(**entry, request.key);
  if (!key.ok()) return std::move(done)(key.status());
  request.key = *std::move(key);
  (*entry)->store->Delete(
      std::move(request),
      [done = std::move(done), user_key = std::move(user_key)](absl::Status status) mutable {
        if (status.ok()) return std::move(done)(status);
        std::move(done)(OperationError(status, Code::kStateDelete, Code::kStateDeleteETagMismatch,
                                       Code::kStateDeleteETagInvalid,
                                       StrCat("failed deleting state with key ", user_key, ": ")));
      });
}

void StateBlock::BulkGet(std::string_view store, std::vector<std::string> keys,
                         state::RequestMetadata metadata,
                         Callback<std::vector<state::BulkGetItem>> done) {
  auto entry = Find(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  if (keys.empty()) return std::move(done)(std::vector<state::BulkGetItem>{});
  std::vector<state::GetRequest> requests;
  requests.reserve(keys.size());
  for (auto& key : keys) {
    auto scoped = ScopeKey(**entry, key);
    if (!scoped.ok()) return std::move(done)(scoped.status());
    requests.push_back(state::GetRequest{*std::move(scoped), metadata, {}});
  }
  (*entry)->store->BulkGet(
      std::move(requests),
      [done = std::move(done)](absl::StatusOr<std::vector<state::BulkGetItem>> result) mutable {
        if (!result.ok()) {
          return std::move(done)(errors::Make(
              Code::kStateBulkGet,
              StrCat("failed performing bulk get operation: ", MessageOf(result.status()))));
        }
        for (auto& item : *result) item.key = std::string(UnscopeKey(item.key));
        std::move(done)(std::move(result));
      });
}

void StateBlock::BulkDelete(std::string_view store, std::vector<state::DeleteRequest> items,
                            DoneCallback done) {
  auto entry = Find(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  if (items.empty()) return std::move(done)(absl::OkStatus());
  for (auto& item : items) {
    auto key = ScopeKey(**entry, item.key);
    if (!key.ok()) return std::move(done)(key.status());
    item.key = *std::move(key);
  }
  (*entry)->store->BulkDelete(std::move(items), [done = std::move(done)](absl::Status s) mutable {
    if (s.ok()) return std::move(done)(s);
    std::move(done)(OperationError(s, Code::kStateBulkDelete, Code::kStateDeleteETagMismatch,
                                   Code::kStateDeleteETagInvalid,
                                   "failed deleting state in bulk: "));
  });
}

void StateBlock::Transaction(std::string_view store, state::TransactionRequest request,
                             DoneCallback done) {
  auto entry = Find(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  state::TransactionalStore* tx = (*entry)->store->AsTransactional();
  if (tx == nullptr) {
    return std::move(done)(
        errors::Make(Code::kStateTransactionsNotSupported,
                     StrCat("state store ", store, " doesn't support transactions")));
  }
  int max_ops = tx->MaxOperations();
  if (max_ops > 0 && static_cast<int>(request.operations.size()) > max_ops) {
    return std::move(done)(errors::Make(
        Code::kStateTooManyTransactions,
        StrCat("the transaction contains ", request.operations.size(),
               " operations, which is more than what the state store supports: ", max_ops)));
  }
  for (auto& op : request.operations) {
    std::string& key = op.type == state::Operation::Type::kUpsert ? op.set.key : op.delete_.key;
    if (key.empty()) {
      return std::move(done)(errors::Make(Code::kMalformedRequest, "\"key\" is a required field"));
    }
    auto scoped = ScopeKey(**entry, key);
    if (!scoped.ok()) return std::move(done)(scoped.status());
    key = *std::move(scoped);
  }
  if (request.operations.empty()) return std::move(done)(absl::OkStatus());
  tx->Multi(std::move(request), [done = std::move(done)](absl::Status s) mutable {
    if (s.ok()) return std::move(done)(s);
    // Dapr answers every failed transaction, ETag conflicts included, with a 500.
    std::move(done)(
        errors::Make(Code::kStateTransaction,
                     StrCat("error while executing state transaction: ", MessageOf(s))));
  });
}

std::vector<StateBlock::StoreInfo> StateBlock::Stores() const {
  std::vector<StoreInfo> out;
  for (const auto& [name, entry] : stores_) out.push_back(entry.info);
  return out;
}

absl::Status StateBlock::Health() const {
  for (const auto& [name, entry] : stores_) {
    absl::Status s = entry.store->Health();
    if (!s.ok()) return MakeStatus(s.code(), StrCat("state store ", name, ": ", MessageOf(s)));
  }
  return absl::OkStatus();
}

}  // namespace remora::runtime
