#include "memory_store.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "remora/components/common/strings.h"
#include "remora/components/common/uuid.h"

namespace remora::components::state::memory {
namespace {

constexpr size_t kShardCount = 16;
constexpr int64_t kSweepIntervalMs = 1000;
// Larger TTLs are clamped so that now + ttl cannot overflow (about 3000 years).
constexpr int64_t kMaxTtlSeconds = int64_t{100'000'000'000};
constexpr std::string_view kTtlExpireTimeKey = "ttlExpireTime";

// A random UUIDv4, kept inline in the item: no allocation per write.
using ETag = UuidText;

int64_t NowMillis() { return absl::ToUnixMillis(absl::Now()); }

std::string_view ETagView(const ETag& etag) { return std::string_view(etag.data(), etag.size()); }

std::string FormatExpireTime(int64_t expire_ms) {
  // Go's time.RFC3339 on a UTC time: whole seconds and a literal "Z".
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(expire_ms),
                          absl::UTCTimeZone());
}

struct Item {
  std::string data;
  ETag etag;
  int64_t expire_ms = 0;  // unix milliseconds; 0: never expires
  uint64_t idx = 0;       // global write order, for KeysLike ordering and pagination
};

bool Expired(const Item& item, int64_t now_ms) {
  return item.expire_ms != 0 && now_ms > item.expire_ms;
}

// Shards keep readers of different keys off one mutex's cache line; the GET path takes only a
// reader lock on one shard.
struct alignas(64) Shard {
  mutable absl::Mutex mu;
  absl::flat_hash_map<std::string, Item> items ABSL_GUARDED_BY(mu);
  size_t ttl_items ABSL_GUARDED_BY(mu) = 0;  // items with an expiry: zero means no sweep needed
  int64_t next_sweep_ms ABSL_GUARDED_BY(mu) = 0;
};

// The live item under `key`, or null when it is missing or expired.
const Item* FindLive(const Shard& shard, std::string_view key, int64_t now_ms)
    ABSL_SHARED_LOCKS_REQUIRED(shard.mu) {
  auto it = shard.items.find(Sv(key));
  if (it == shard.items.end() || Expired(it->second, now_ms)) return nullptr;
  return &it->second;
}

// Dapr's etag rules (state/in-memory doValidateEtag): an empty etag counts as none.
absl::Status CheckETag(const Shard& shard, std::string_view key,
                       const std::optional<std::string>& etag, Concurrency concurrency,
                       int64_t now_ms) ABSL_SHARED_LOCKS_REQUIRED(shard.mu) {
  const bool has_etag = etag.has_value() && !etag->empty();
  const Item* item = FindLive(shard, key, now_ms);
  if (!has_etag) {
    if (concurrency == Concurrency::kFirstWrite && item != nullptr) {
      return ETagMismatchError(
          StrCat("key \"", key, "\" already exists and no etag was passed (first-write)"));
    }
    return absl::OkStatus();
  }
  if (item == nullptr) {
    return ETagMismatchError(StrCat("etag given for key \"", key, "\", which does not exist"));
  }
  if (ETagView(item->etag) != *etag) {
    return ETagMismatchError(StrCat("etag mismatch for key \"", key, "\""));
  }
  return absl::OkStatus();
}

void Erase(Shard& shard, absl::flat_hash_map<std::string, Item>::iterator it)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
  if (it->second.expire_ms != 0) --shard.ttl_items;
  shard.items.erase(it);
}

// Drops expired items, at most once per interval per shard, and only when the shard holds items
// with an expiry. Writes call it, so memory held by expired keys stays bounded without a thread.
void MaybeSweep(Shard& shard, int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
  if (shard.ttl_items == 0 || now_ms < shard.next_sweep_ms) return;
  shard.next_sweep_ms = now_ms + kSweepIntervalMs;
  for (auto it = shard.items.begin(); it != shard.items.end();) {
    if (Expired(it->second, now_ms)) {
      Erase(shard, it++);
    } else {
      ++it;
    }
  }
}

// Absolute expiry for a parsed ttlInSeconds: 0 (none) unless it is positive.
int64_t ExpireAt(std::optional<int64_t> ttl_seconds, int64_t now_ms) {
  if (!ttl_seconds.has_value() || *ttl_seconds <= 0) return 0;
  return now_ms + std::min(*ttl_seconds, kMaxTtlSeconds) * 1000;
}

// SQL LIKE as Dapr's in-memory store applies it: it turns the pattern into an anchored Go regexp
// where `%` is `.*` and `_` is `.`, so both match whole UTF-8 characters and never a newline.
class LikePattern {
 public:
  explicit LikePattern(std::string_view pattern) {
    bool escaped = false;
    for (char c : pattern) {
      if (escaped) {
        tokens_.push_back({Token::kLiteral, c});
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '%') {
        tokens_.push_back({Token::kAnyRun, 0});
      } else if (c == '_') {
        tokens_.push_back({Token::kAnyOne, 0});
      } else {
        tokens_.push_back({Token::kLiteral, c});
      }
    }
    if (escaped) tokens_.push_back({Token::kLiteral, '\\'});
  }

  // Runs the token list over the key as a set of reachable positions: linear in pattern times
  // key length, no backtracking blow-up.
  bool Matches(std::string_view key) const {
    const size_t n = key.size();
    std::vector<char> reach(n + 1, 0), next(n + 1, 0);
    reach[0] = 1;
    for (const Token& token : tokens_) {
      std::fill(next.begin(), next.end(), 0);
      bool any = false;
      for (size_t p = 0; p <= n; ++p) {
        const bool from = reach[p] || (token.kind == Token::kAnyRun && next[p]);
        if (!from) continue;
        if (token.kind == Token::kAnyRun) {
          next[p] = 1;
          any = true;
          if (p < n && key[p] != '\n') next[p + CharWidth(key, p)] = 1;
        } else if (p < n) {
          if (token.kind == Token::kLiteral ? key[p] == token.c : key[p] != '\n') {
            next[p + (token.kind == Token::kLiteral ? 1 : CharWidth(key, p))] = 1;
            any = true;
          }
        }
      }
      if (!any) return false;
      reach.swap(next);
    }
    return reach[n] != 0;
  }

 private:
  struct Token {
    enum Kind : uint8_t { kLiteral, kAnyRun, kAnyOne } kind;
    char c;
  };

  // Bytes in the UTF-8 character at `p`; an invalid sequence counts as one byte, as in Go.
  static size_t CharWidth(std::string_view s, size_t p) {
    const auto lead = static_cast<uint8_t>(s[p]);
    size_t width = lead < 0x80   ? 1
                   : lead < 0xC2 ? 0
                   : lead < 0xE0 ? 2
                   : lead < 0xF0 ? 3
                   : lead < 0xF5 ? 4
                                 : 0;
    if (width == 0 || p + width > s.size()) return 1;
    for (size_t i = 1; i < width; ++i) {
      if ((static_cast<uint8_t>(s[p + i]) & 0xC0) != 0x80) return 1;
    }
    return width;
  }

  std::vector<Token> tokens_;
};

class MemoryStore final : public Store,
                          public TransactionalStore,
                          public DeleteWithPrefixStore,
                          public KeysLikeStore {
 public:
  std::vector<Feature> Features() const override {
    return {Feature::kETag, Feature::kTransactional, Feature::kTTL, Feature::kDeleteWithPrefix,
            Feature::kKeysLike};
  }

  void Get(GetRequest request, Callback<GetResponse> done) override {
    std::move(done)(Lookup(request.key));
  }

  void BulkGet(std::vector<GetRequest> requests, Callback<std::vector<BulkGetItem>> done) override {
    std::vector<BulkGetItem> items(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      items[i].response = Lookup(requests[i].key);
      items[i].key = std::move(requests[i].key);
    }
    std::move(done)(std::move(items));
  }

  void Set(SetRequest request, DoneCallback done) override {
    absl::StatusOr<std::optional<int64_t>> ttl = ParseTTL(request.metadata);
    if (!ttl.ok()) {
      std::move(done)(ttl.status());
      return;
    }
    Shard& shard = ShardFor(request.key);
    absl::Status status;
    {
      absl::MutexLock lock(&shard.mu);
      const int64_t now = NowMillis();
      status = CheckETag(shard, request.key, request.etag, request.options.concurrency, now);
      if (status.ok()) {
        Put(shard, std::move(request.key), std::move(request.value), ExpireAt(*ttl, now));
        MaybeSweep(shard, now);
      }
    }
    std::move(done)(std::move(status));
  }

  void Delete(DeleteRequest request, DoneCallback done) override {
    Shard& shard = ShardFor(request.key);
    absl::Status status;
    {
      absl::MutexLock lock(&shard.mu);
      const int64_t now = NowMillis();
      status = CheckETag(shard, request.key, request.etag, request.options.concurrency, now);
      if (status.ok()) {
        auto it = shard.items.find(request.key);
        if (it != shard.items.end()) Erase(shard, it);
        MaybeSweep(shard, now);
      }
    }
    std::move(done)(std::move(status));
  }

  TransactionalStore* AsTransactional() override { return this; }
  DeleteWithPrefixStore* AsDeleteWithPrefix() override { return this; }
  KeysLikeStore* AsKeysLike() override { return this; }

  void Multi(TransactionRequest request, DoneCallback done) override {
    std::move(done)(RunTransaction(request));
  }

  void DeleteWithPrefix(std::string prefix, Callback<int64_t> done) override {
    if (prefix.empty() || prefix == "||") {
      std::move(done)(MakeStatus(absl::StatusCode::kInvalidArgument,
                                 "a prefix is required for deleteWithPrefix request"));
      return;
    }
    if (!std::string_view(prefix).ends_with("||")) prefix += "||";
    int64_t count = 0;
    const int64_t now = NowMillis();
    // Shard by shard: each shard's part is atomic, and a key written under the prefix while this
    // runs is either deleted or written after, as with any concurrent delete.
    for (Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      for (auto it = shard.items.begin(); it != shard.items.end();) {
        std::string_view key = it->first;
        // Only keys directly under the prefix: "a||b||c" is not under "a||".
        if (key.size() >= prefix.size() && key.compare(0, prefix.size(), prefix) == 0 &&
            key.find("||", prefix.size()) == std::string_view::npos) {
          if (!Expired(it->second, now)) ++count;
          Erase(shard, it++);
        } else {
          ++it;
        }
      }
    }
    std::move(done)(count);
  }

  void KeysLike(KeysLikeRequest request, Callback<KeysLikeResponse> done) override {
    std::move(done)(ListKeys(request));
  }

 private:
  Shard& ShardFor(std::string_view key) { return shards_[ShardIndex(key)]; }

  GetResponse Lookup(std::string_view key) {
    GetResponse response;
    Shard& shard = ShardFor(key);
    int64_t expire_ms = 0;
    bool expired = false;
    {
      absl::ReaderMutexLock lock(&shard.mu);
      auto it = shard.items.find(Sv(key));
      if (it != shard.items.end()) {
        const Item& item = it->second;
        // The clock is read only for keys with a TTL: the common GET takes no time reading.
        if (item.expire_ms != 0 && Expired(item, NowMillis())) {
          expired = true;
        } else {
          response.found = true;
          response.data = item.data;
          response.etag.emplace(item.etag.data(), item.etag.size());
          expire_ms = item.expire_ms;
        }
      }
    }
    if (expired) {
      // Drop it now rather than waiting for a write to sweep; re-check under the writer lock, as
      // the key may have been rewritten in between.
      absl::MutexLock lock(&shard.mu);
      auto it = shard.items.find(Sv(key));
      if (it != shard.items.end() && Expired(it->second, NowMillis())) Erase(shard, it);
    }
    if (expire_ms != 0) {
      response.metadata.emplace(std::string(kTtlExpireTimeKey), FormatExpireTime(expire_ms));
    }
    return response;
  }

  void Put(Shard& shard, std::string key, std::string value, int64_t expire_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    auto [it, inserted] = shard.items.try_emplace(std::move(key));
    Item& item = it->second;
    if (!inserted && item.expire_ms != 0) --shard.ttl_items;
    item.data = std::move(value);
    WriteUuid(item.etag);
    item.expire_ms = expire_ms;
    item.idx = next_idx_.fetch_add(1, std::memory_order_relaxed);
    if (expire_ms != 0) ++shard.ttl_items;
  }

  // Locks the shards of every key in ascending shard order (no deadlock between transactions),
  // checks every etag against the state before the transaction (as Dapr does), then applies.
  absl::Status RunTransaction(TransactionRequest& request) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (request.operations.empty()) return absl::OkStatus();
    std::vector<int64_t> ttls(request.operations.size(), 0);
    std::array<bool, kShardCount> involved{};
    for (size_t i = 0; i < request.operations.size(); ++i) {
      const Operation& op = request.operations[i];
      if (op.type == Operation::Type::kUpsert) {
        absl::StatusOr<std::optional<int64_t>> ttl = ParseTTL(op.set.metadata);
        if (!ttl.ok()) return ttl.status();
        ttls[i] = ttl->value_or(0);
      }
      involved[ShardIndex(KeyOf(op))] = true;
    }
    for (size_t s = 0; s < kShardCount; ++s) {
      if (involved[s]) shards_[s].mu.Lock();
    }
    const int64_t now = NowMillis();
    absl::Status status;
    for (const Operation& op : request.operations) {
      const bool upsert = op.type == Operation::Type::kUpsert;
      const std::string& key = KeyOf(op);
      status = CheckETag(shards_[ShardIndex(key)], key, upsert ? op.set.etag : op.delete_.etag,
                         upsert ? op.set.options.concurrency : op.delete_.options.concurrency, now);
      if (!status.ok()) break;
    }
    if (status.ok()) {
      for (size_t i = 0; i < request.operations.size(); ++i) {
        Operation& op = request.operations[i];
        Shard& shard = shards_[ShardIndex(KeyOf(op))];
        if (op.type == Operation::Type::kUpsert) {
          Put(shard, std::move(op.set.key), std::move(op.set.value), ExpireAt(ttls[i], now));
        } else {
          auto it = shard.items.find(op.delete_.key);
          if (it != shard.items.end()) Erase(shard, it);
        }
      }
      for (size_t s = 0; s < kShardCount; ++s) {
        if (involved[s]) MaybeSweep(shards_[s], now);
      }
    }
    for (size_t s = kShardCount; s-- > 0;) {
      if (involved[s]) shards_[s].mu.Unlock();
    }
    return status;
  }

  absl::StatusOr<KeysLikeResponse> ListKeys(const KeysLikeRequest& request) {
    if (request.pattern.empty()) {
      return MakeStatus(absl::StatusCode::kInvalidArgument, "keys-like pattern must not be empty");
    }
    uint64_t from_idx = 0;
    if (request.continuation_token.has_value()) {
      const std::string& token = *request.continuation_token;
      auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), from_idx);
      if (token.empty() || ec != std::errc() || end != token.data() + token.size()) {
        return MakeStatus(absl::StatusCode::kInvalidArgument,
                          StrCat("invalid continuation token \"", token, "\""));
      }
    }
    const LikePattern pattern(request.pattern);
    std::vector<std::pair<uint64_t, std::string>> found;
    const int64_t now = NowMillis();
    for (const Shard& shard : shards_) {
      absl::ReaderMutexLock lock(&shard.mu);
      for (const auto& [key, item] : shard.items) {
        if (item.idx >= from_idx && !Expired(item, now) && pattern.Matches(key)) {
          found.emplace_back(item.idx, key);
        }
      }
    }
    std::sort(found.begin(), found.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    KeysLikeResponse response;
    size_t take = found.size();
    if (request.page_size.has_value() && *request.page_size > 0 &&
        found.size() > *request.page_size) {
      take = *request.page_size;
      response.continuation_token = StrCat(found[take].first);
    }
    response.keys.reserve(take);
    for (size_t i = 0; i < take; ++i) response.keys.push_back(std::move(found[i].second));
    return response;
  }

  static const std::string& KeyOf(const Operation& op) {
    return op.type == Operation::Type::kUpsert ? op.set.key : op.delete_.key;
  }
  static size_t ShardIndex(std::string_view key) {
    return absl::Hash<absl::string_view>{}(Sv(key)) % kShardCount;
  }

  std::array<Shard, kShardCount> shards_;
  std::atomic<uint64_t> next_idx_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Create(const ComponentContext& context) {
  // state.in-memory has no metadata: every key the YAML sets is reported unused by the runtime.
  return std::make_unique<MemoryStore>();
}

}  // namespace remora::components::state::memory
