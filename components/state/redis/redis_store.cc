#include "redis_store.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <utility>
#include <vector>

#include <boost/uuid/detail/sha1.hpp>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "remora/components/common/strings.h"

namespace remora::components::state::redis {
namespace {

using remora::redis::Args;
using remora::redis::Client;
using remora::redis::Reply;

// Every refusal of a script starts with this word, so a refused etag is told apart from any other
// error a script can meet (OOM, a read-only replica, a non-integer version).
constexpr std::string_view kMismatchTag = "ETAGMISMATCH";

// Dapr's set script, same rules: a key of another type is dropped; the write is allowed when the
// key has no version, the version is the expected one, or no version is expected ("0") and the
// key was not created under first-write. The TTL is applied here too, so a write never exists
// without its expiry (Dapr sends EXPIRE/PERSIST as separate commands afterwards).
constexpr std::string_view kSetSource = R"lua(-- remora state.redis: set
local key = KEYS[1]
local version = redis.pcall("HGET", key, "version")
if type(version) == "table" then
  redis.call("DEL", key)
  version = false
end
local first_write = redis.call("HEXISTS", key, "first-write") == 1
if version and version ~= "" and version ~= ARGV[1] and (first_write or ARGV[1] ~= "0") then
  return redis.error_reply("ETAGMISMATCH failed to set key " .. key)
end
redis.call("HSET", key, "data", ARGV[2])
if ARGV[3] == "0" then
  redis.call("HSET", key, "first-write", 0)
end
local new_version = redis.call("HINCRBY", key, "version", 1)
local ttl = ARGV[4]
if ttl and ttl ~= "" then
  if tonumber(ttl) > 0 then
    redis.call("EXPIRE", key, ttl)
  else
    redis.call("PERSIST", key)
  end
end
return new_version
)lua";

// Dapr's delete script: allowed when there is no version to compare or it matches, or when no
// etag was given ("0").
constexpr std::string_view kDeleteSource = R"lua(-- remora state.redis: delete
local version = redis.pcall("HGET", KEYS[1], "version")
if not version or type(version) == "table" or version == "" or version == ARGV[1] or ARGV[1] == "0" then
  return redis.call("DEL", KEYS[1])
end
return redis.error_reply("ETAGMISMATCH failed to delete " .. KEYS[1])
)lua";

// A transaction: first every operation is checked, in order, against the state the operations
// before it leave (what Dapr's MULTI/EXEC of the two scripts above would see), then, only if all
// pass, all are applied. A script runs atomically, so nothing else interleaves.
constexpr std::string_view kMultiSource = R"lua(-- remora state.redis: transaction
local known = {}
local function current(key)
  local s = known[key]
  if s then return s end
  local version = redis.pcall("HGET", key, "version")
  if type(version) == "table" then
    s = {version = false, first_write = false}
  else
    s = {version = version, first_write = redis.call("HEXISTS", key, "first-write") == 1}
  end
  known[key] = s
  return s
end
for i = 1, #KEYS do
  local s = current(KEYS[i])
  local kind, expected, v = ARGV[4 * i - 3], ARGV[4 * i - 2], s.version
  if kind == "s" then
    if v and v ~= "" and v ~= expected and (s.first_write or expected ~= "0") then
      return redis.error_reply("ETAGMISMATCH " .. i .. " failed to set key " .. KEYS[i])
    end
    s.version = tostring((tonumber(v) or 0) + 1)
  else
    if v and v ~= "" and v ~= expected and expected ~= "0" then
      return redis.error_reply("ETAGMISMATCH " .. i .. " failed to delete " .. KEYS[i])
    end
    s.version = false
    s.first_write = false
  end
end
for i = 1, #KEYS do
  local key = KEYS[i]
  if ARGV[4 * i - 3] == "s" then
    local t = redis.call("TYPE", key)["ok"]
    if t ~= "hash" and t ~= "none" then
      redis.call("DEL", key)
    end
    redis.call("HSET", key, "data", ARGV[4 * i - 1])
    redis.call("HINCRBY", key, "version", 1)
    local ttl = ARGV[4 * i]
    if ttl ~= "" then
      if tonumber(ttl) > 0 then
        redis.call("EXPIRE", key, ttl)
      else
        redis.call("PERSIST", key)
      end
    end
  else
    redis.call("DEL", key)
  end
end
return #KEYS
)lua";

Script MakeScript(std::string_view source) { return Script{source, Sha1Hex(source)}; }

absl::Status Invalid(std::string_view message) {
  return MakeStatus(absl::StatusCode::kInvalidArgument, message);
}

// Dapr's parseETag: no etag, an empty one or last-write means "0" (no expectation); otherwise it
// must be a decimal integer (Go's strconv.Atoi: optional sign, digits), sent in canonical form.
absl::StatusOr<std::string> ExpectedVersion(const std::optional<std::string>& etag,
                                            Concurrency concurrency) {
  if (concurrency == Concurrency::kLastWrite || !etag.has_value() || etag->empty()) return "0";
  std::string_view text = *etag;
  if (text.front() == '+') text.remove_prefix(1);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      (etag->front() == '+' && text.front() == '-')) {
    return ETagInvalidError(StrCat("invalid etag value: \"", *etag, "\" is not a number"));
  }
  return StrCat(value);
}

bool HasETag(const std::optional<std::string>& etag) { return etag.has_value() && !etag->empty(); }

// The TTL argument of the scripts: the request's ttlInSeconds, else the store's default; "" when
// neither is set (an existing expiry is left alone, as Dapr does).
absl::StatusOr<std::string> TtlArg(const RequestMetadata& metadata,
                                   const std::optional<int64_t>& store_default) {
  absl::StatusOr<std::optional<int64_t>> ttl = ParseTTL(metadata);
  if (!ttl.ok()) return ttl.status();
  if (ttl->has_value()) return StrCat(**ttl);
  if (store_default.has_value()) return StrCat(*store_default);
  return std::string();
}

// A Redis error reply that is not an etag refusal.
absl::Status RedisError(std::string_view what, const Reply& reply) {
  return MakeStatus(absl::StatusCode::kInternal, StrCat(what, ": redis: ", reply.str));
}

// Go's time.RFC3339 of a UTC time: whole seconds and a literal "Z".
std::string ExpireTimeFromPttl(int64_t pttl_ms) {
  absl::Time expire = absl::Now() + absl::Milliseconds(pttl_ms);
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", expire, absl::UTCTimeZone());
}

// Turns the replies of HGETALL and PTTL into a response. `need_get` is set (and nothing else)
// when the key is not a hash, which Dapr then reads with a plain GET.
absl::StatusOr<GetResponse> ParseHash(std::string_view key, const Reply& hash, const Reply& pttl,
                                      bool* need_get) {
  GetResponse response;
  if (hash.is_error()) {
    if (absl::StartsWith(Sv(hash.str), "WRONGTYPE")) {
      *need_get = true;
      return response;
    }
    return RedisError(StrCat("failed to get key ", key), hash);
  }
  if (!hash.is_array() || hash.elements.empty()) return response;  // missing key
  const std::string* data = nullptr;
  const std::string* version = nullptr;
  for (size_t i = 0; i + 1 < hash.elements.size(); i += 2) {
    const std::string& field = hash.elements[i].str;
    if (field == "data") {
      data = &hash.elements[i + 1].str;
    } else if (field == "version") {
      version = &hash.elements[i + 1].str;
    }
  }
  if (data == nullptr || version == nullptr) {
    return MakeStatus(
        absl::StatusCode::kInternal,
        StrCat("key ", key, ": required hash field 'data' or 'version' was not found"));
  }
  response.found = true;
  response.data = *data;
  response.etag = *version;
  if (pttl.is_integer() && pttl.integer >= 0) {
    response.metadata["ttlExpireTime"] = ExpireTimeFromPttl(pttl.integer);
  }
  return response;
}

// The reply of a plain GET (a non-hash key): the value, no etag.
absl::StatusOr<GetResponse> ParseString(std::string_view key, const Reply& value,
                                        const Reply& pttl) {
  GetResponse response;
  if (value.is_error()) return RedisError(StrCat("failed to get key ", key), value);
  if (value.is_nil()) return response;
  response.found = true;
  response.data = value.str;
  if (pttl.is_integer() && pttl.integer >= 0) {
    response.metadata["ttlExpireTime"] = ExpireTimeFromPttl(pttl.integer);
  }
  return response;
}

// EVALSHA `args` (which start with EVALSHA <sha>); a NOSCRIPT answer (Redis restarted or its
// script cache was flushed) is sent again once as EVAL, which runs and caches the script. NOSCRIPT
// means the script did not run, so the retry cannot apply anything twice.
void EvalScript(const std::shared_ptr<Client>& client, const Script& script, Args args,
                Callback<Reply> done) {
  Args retry = args;
  retry[0] = "EVAL";
  retry[1] = std::string(script.source);
  client->Command(std::move(args), [weak = std::weak_ptr<Client>(client), retry = std::move(retry),
                                    done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
    if (reply.ok() && reply->is_error() && absl::StartsWith(Sv(reply->str), "NOSCRIPT")) {
      if (std::shared_ptr<Client> c = weak.lock()) {
        c->Command(std::move(retry), std::move(done));
        return;
      }
      return std::move(done)(absl::CancelledError("redis: the state store was closed"));
    }
    std::move(done)(std::move(reply));
  });
}

Args ScriptArgs(const Script& script, size_t num_keys) {
  Args args;
  args.reserve(2 + num_keys);
  args.emplace_back("EVALSHA");
  args.emplace_back(script.sha1);
  args.push_back(StrCat(num_keys));
  return args;
}

class RedisStore final : public Store, public TransactionalStore {
 public:
  RedisStore(boost::asio::io_context& io, Config config)
      : config_(std::move(config)), client_(std::make_shared<Client>(io, config_.settings)) {}

  std::vector<Feature> Features() const override {
    return {Feature::kETag, Feature::kTransactional, Feature::kTTL};
  }

  void Get(GetRequest request, Callback<GetResponse> done) override {
    std::string key = request.key;
    client_->Pipeline({{"HGETALL", key}, {"PTTL", key}},
                      [weak = std::weak_ptr<Client>(client_), key,
                       done = std::move(done)](absl::StatusOr<std::vector<Reply>> replies) mutable {
                        if (!replies.ok()) return std::move(done)(replies.status());
                        bool need_get = false;
                        absl::StatusOr<GetResponse> response =
                            ParseHash(key, (*replies)[0], (*replies)[1], &need_get);
                        if (!need_get) return std::move(done)(std::move(response));
                        ReadString(weak, std::move(key), (*replies)[1], std::move(done));
                      });
  }

  void BulkGet(std::vector<GetRequest> requests, Callback<std::vector<BulkGetItem>> done) override {
    if (requests.empty()) return std::move(done)(std::vector<BulkGetItem>{});
    std::vector<Args> commands;
    commands.reserve(2 * requests.size());
    auto items = std::make_shared<std::vector<BulkGetItem>>(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      (*items)[i].key = std::move(requests[i].key);
      commands.push_back({"HGETALL", (*items)[i].key});
      commands.push_back({"PTTL", (*items)[i].key});
    }
    client_->Pipeline(std::move(commands), [weak = std::weak_ptr<Client>(client_), items,
                                            done = std::move(done)](
                                               absl::StatusOr<std::vector<Reply>> replies) mutable {
      if (!replies.ok()) return std::move(done)(replies.status());
      // Keys that are not hashes get a second round trip of plain GETs (rare: data written by
      // something other than a Dapr state store).
      std::vector<size_t> strings;
      for (size_t i = 0; i < items->size(); ++i) {
        bool need_get = false;
        absl::StatusOr<GetResponse> r =
            ParseHash((*items)[i].key, (*replies)[2 * i], (*replies)[2 * i + 1], &need_get);
        if (need_get) {
          strings.push_back(i);
        } else {
          SetItem((*items)[i], std::move(r));
        }
      }
      if (strings.empty()) return std::move(done)(std::move(*items));
      std::shared_ptr<Client> client = weak.lock();
      if (!client)
        return std::move(done)(absl::CancelledError("redis: the state store was closed"));
      std::vector<Args> gets;
      std::vector<Reply> pttls;
      for (size_t i : strings) {
        gets.push_back({"GET", (*items)[i].key});
        pttls.push_back((*replies)[2 * i + 1]);
      }
      client->Pipeline(std::move(gets),
                       [items, strings = std::move(strings), pttls = std::move(pttls),
                        done = std::move(done)](absl::StatusOr<std::vector<Reply>> values) mutable {
                         for (size_t j = 0; j < strings.size(); ++j) {
                           BulkGetItem& item = (*items)[strings[j]];
                           if (!values.ok()) {
                             SetItem(item, values.status());
                           } else {
                             SetItem(item, ParseString(item.key, (*values)[j], pttls[j]));
                           }
                         }
                         std::move(done)(std::move(*items));
                       });
    });
  }

  void Set(SetRequest request, DoneCallback done) override {
    absl::StatusOr<std::string> expected =
        ExpectedVersion(request.etag, request.options.concurrency);
    if (!expected.ok()) return Fail(std::move(done), expected.status());
    absl::StatusOr<std::string> ttl = TtlArg(request.metadata, config_.ttl_in_seconds);
    if (!ttl.ok()) return Fail(std::move(done), ttl.status());
    Args args = ScriptArgs(SetScript(), 1);
    args.push_back(request.key);
    args.push_back(*std::move(expected));
    args.push_back(std::move(request.value));
    args.emplace_back(request.options.concurrency == Concurrency::kFirstWrite ? "0" : "1");
    args.push_back(*std::move(ttl));
    EvalScript(client_, SetScript(), std::move(args),
               [key = std::move(request.key), has_etag = HasETag(request.etag),
                done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                 if (!reply.ok()) return std::move(done)(reply.status());
                 if (!reply->is_error()) return std::move(done)(absl::OkStatus());
                 if (!absl::StrContains(Sv(reply->str), Sv(kMismatchTag))) {
                   return std::move(done)(RedisError(StrCat("failed to set key ", key), *reply));
                 }
                 if (has_etag) {
                   return std::move(done)(ETagMismatchError(
                       StrCat("possible etag mismatch: failed to set key ", key)));
                 }
                 // Dapr reports a first-write conflict without an etag as a plain error (500).
                 std::move(done)(MakeStatus(
                     absl::StatusCode::kFailedPrecondition,
                     StrCat("failed to set key ", key,
                            ": the key was created with first-write concurrency and exists")));
               });
  }

  void Delete(DeleteRequest request, DoneCallback done) override {
    // Dapr compares the etag as given, under any concurrency: a malformed one is a mismatch.
    Args args = ScriptArgs(DeleteScript(), 1);
    args.push_back(request.key);
    args.push_back(HasETag(request.etag) ? *request.etag : "0");
    EvalScript(client_, DeleteScript(), std::move(args),
               [key = std::move(request.key),
                done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                 if (!reply.ok()) return std::move(done)(reply.status());
                 if (!reply->is_error()) return std::move(done)(absl::OkStatus());
                 if (absl::StrContains(Sv(reply->str), Sv(kMismatchTag))) {
                   return std::move(done)(
                       ETagMismatchError(StrCat("possible etag mismatch: failed to delete ", key)));
                 }
                 std::move(done)(RedisError(StrCat("failed to delete key ", key), *reply));
               });
  }

  TransactionalStore* AsTransactional() override { return this; }

  void Multi(TransactionRequest request, DoneCallback done) override {
    if (request.operations.empty()) return std::move(done)(absl::OkStatus());
    const size_t n = request.operations.size();
    // Everything that can be refused locally is refused before anything is sent.
    Args keys;
    Args argv;
    keys.reserve(n);
    argv.reserve(4 * n);
    std::vector<bool> has_etag(n);
    for (size_t i = 0; i < n; ++i) {
      Operation& op = request.operations[i];
      if (op.type == Operation::Type::kUpsert) {
        absl::StatusOr<std::string> expected =
            ExpectedVersion(op.set.etag, op.set.options.concurrency);
        if (!expected.ok()) return Fail(std::move(done), expected.status());
        absl::StatusOr<std::string> ttl = TtlArg(op.set.metadata, config_.ttl_in_seconds);
        if (!ttl.ok()) return Fail(std::move(done), ttl.status());
        has_etag[i] = HasETag(op.set.etag);
        keys.push_back(std::move(op.set.key));
        argv.emplace_back("s");
        argv.push_back(*std::move(expected));
        argv.push_back(std::move(op.set.value));
        argv.push_back(*std::move(ttl));
      } else {
        has_etag[i] = HasETag(op.delete_.etag);
        keys.push_back(std::move(op.delete_.key));
        argv.emplace_back("d");
        argv.push_back(has_etag[i] ? *op.delete_.etag : "0");
        argv.emplace_back();
        argv.emplace_back();
      }
    }
    Args args = ScriptArgs(MultiScript(), n);
    args.insert(args.end(), std::make_move_iterator(keys.begin()),
                std::make_move_iterator(keys.end()));
    args.insert(args.end(), std::make_move_iterator(argv.begin()),
                std::make_move_iterator(argv.end()));
    EvalScript(
        client_, MultiScript(), std::move(args),
        [has_etag = std::move(has_etag),
         done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
          if (!reply.ok()) return std::move(done)(reply.status());
          if (!reply->is_error()) return std::move(done)(absl::OkStatus());
          // "ETAGMISMATCH <operation number, from 1> <what failed>"
          std::string_view text = reply->str;
          size_t at = text.find(kMismatchTag);
          if (at == std::string_view::npos) {
            return std::move(done)(RedisError("transaction failed", *reply));
          }
          std::string_view rest = text.substr(at + kMismatchTag.size());
          while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
          size_t index = 0;
          auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), index);
          if (ec == std::errc()) {
            rest.remove_prefix(std::min(rest.size(), static_cast<size_t>(end - rest.data()) + 1));
          }
          std::string message = StrCat("operation ", index, ": ", rest, "; nothing was applied");
          if (ec == std::errc() && index >= 1 && index <= has_etag.size() && !has_etag[index - 1]) {
            return std::move(done)(
                MakeStatus(absl::StatusCode::kFailedPrecondition,
                           StrCat(message, " (the key was created with first-write)")));
          }
          std::move(done)(ETagMismatchError(StrCat("possible etag mismatch: ", message)));
        });
  }

  // The client's health, except during its very first connection attempt: commands sent then
  // wait for that attempt instead of failing, so the store is not known to be unreachable yet
  // (the client documents that state as UNAVAILABLE "connecting").
  absl::Status Health() const override {
    absl::Status health = client_->Health();
    if (health.code() == absl::StatusCode::kUnavailable &&
        absl::EndsWith(health.message(), ": connecting")) {
      return absl::OkStatus();
    }
    return health;
  }

 private:
  // Local refusals complete inline, which the store contract allows.
  static void Fail(DoneCallback done, absl::Status status) { std::move(done)(std::move(status)); }

  static void SetItem(BulkGetItem& item, absl::StatusOr<GetResponse> response) {
    if (response.ok()) {
      item.response = *std::move(response);
    } else {
      item.error = std::string(MessageOf(response.status()));
    }
  }

  // The fallback read of a non-hash key (Dapr's directGet).
  static void ReadString(const std::weak_ptr<Client>& weak, std::string key, Reply pttl,
                         Callback<GetResponse> done) {
    std::shared_ptr<Client> client = weak.lock();
    if (!client) return std::move(done)(absl::CancelledError("redis: the state store was closed"));
    client->Command({"GET", key}, [key, pttl = std::move(pttl),
                                   done = std::move(done)](absl::StatusOr<Reply> value) mutable {
      if (!value.ok()) return std::move(done)(value.status());
      std::move(done)(ParseString(key, *value, pttl));
    });
  }

  Config config_;
  std::shared_ptr<Client> client_;
};

}  // namespace

std::string Sha1Hex(std::string_view data) {
  boost::uuids::detail::sha1 sha;
  sha.process_bytes(data.data(), data.size());
  boost::uuids::detail::sha1::digest_type digest;
  sha.get_digest(digest);
  std::string out;
  out.reserve(40);
  char buf[9];
  for (unsigned int word : digest) {
    std::snprintf(buf, sizeof(buf), "%08x", word);
    out.append(buf, 8);
  }
  return out;
}

const Script& SetScript() {
  static const Script script = MakeScript(kSetSource);
  return script;
}

const Script& DeleteScript() {
  static const Script script = MakeScript(kDeleteSource);
  return script;
}

const Script& MultiScript() {
  static const Script script = MakeScript(kMultiSource);
  return script;
}

remora::redis::Settings DefaultSettings() {
  remora::redis::Settings settings;
  settings.max_retries = 3;
  return settings;
}

absl::StatusOr<Config> ParseConfig(const Metadata& metadata) {
  Config config;
  absl::StatusOr<remora::redis::Settings> settings =
      remora::redis::ParseSettings(metadata, DefaultSettings());
  if (!settings.ok()) return settings.status();
  config.settings = *std::move(settings);
  if (std::optional<std::string> ttl = metadata.Get("ttlInSeconds"); ttl && !ttl->empty()) {
    absl::StatusOr<std::optional<int64_t>> parsed = ParseTTL({{"ttlInSeconds", *ttl}});
    if (!parsed.ok()) {
      return Invalid(StrCat("state.redis: ttlInSeconds \"", *ttl, "\" is not an integer"));
    }
    config.ttl_in_seconds = **parsed;
  }
  return config;
}

absl::StatusOr<std::unique_ptr<Store>> Create(const ComponentContext& context) {
  if (context.io_context == nullptr) return Invalid("state.redis: no io_context to run on");
  absl::StatusOr<Config> config = ParseConfig(context.metadata);
  if (!config.ok()) return config.status();
  return std::unique_ptr<Store>(new RedisStore(*context.io_context, *std::move(config)));
}

}  // namespace remora::components::state::redis
