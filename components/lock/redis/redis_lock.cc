#include "redis_lock.h"

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "remora/components/common/strings.h"

namespace remora::components::lock::redis {
namespace {

using remora::redis::Client;
using remora::redis::Reply;

// GET then DEL inside one script, so no other client can take the lock between the ownership
// check and the delete (a plain GET + DEL could delete a lock that expired and was taken by
// someone else in between).
constexpr std::string_view kUnlockSource = R"lua(-- remora lock.redis: unlock
local owner = redis.call("GET", KEYS[1])
if not owner then
  return -1
end
if owner ~= ARGV[1] then
  return -2
end
return redis.call("DEL", KEYS[1])
)lua";

absl::Status Invalid(std::string_view message) {
  return MakeStatus(absl::StatusCode::kInvalidArgument, message);
}

absl::Status RedisError(std::string_view what, const Reply& reply) {
  return MakeStatus(absl::StatusCode::kInternal, StrCat(what, ": redis: ", reply.str));
}

// The `connected_slaves:<n>` line of INFO replication; 0 when absent (older servers, or a reply
// this parser does not understand: refusing a working Redis would be worse than Dapr's check).
int ConnectedReplicas(std::string_view info) {
  constexpr std::string_view kField = "connected_slaves:";
  size_t pos = info.find(kField);
  if (pos == std::string_view::npos) return 0;
  int n = 0;
  for (size_t i = pos + kField.size(); i < info.size() && info[i] >= '0' && info[i] <= '9'; ++i) {
    n = n * 10 + (info[i] - '0');
  }
  return n;
}

// The replication check's outcome, shared with callbacks that may outlive the store.
struct Replication {
  enum State { kUnknown, kOk, kRefused };
  std::atomic<int> state{kUnknown};
};

class RedisLock final : public Store {
 public:
  RedisLock(boost::asio::io_context& io, Config config)
      : config_(std::move(config)),
        client_(std::make_shared<Client>(io, config_.settings)),
        replication_(std::make_shared<Replication>()) {}

  void TryLock(TryLockRequest request, Callback<TryLockResponse> done) override {
    remora::redis::Args args = {
        "SET", std::move(request.resource_id),   std::move(request.lock_owner), "NX",
        "EX",  StrCat(request.expiry_in_seconds)};
    Checked(std::move(args), [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
      if (!reply.ok()) return std::move(done)(reply.status());
      if (reply->is_error()) return std::move(done)(RedisError("SET NX failed", *reply));
      // "OK" when set; nil when the key exists (NX refused).
      std::move(done)(TryLockResponse{.success = reply->is_status() && reply->str == "OK"});
    });
  }

  void Unlock(UnlockRequest request, Callback<UnlockStatus> done) override {
    remora::redis::Args args = {"EVAL", std::string(kUnlockSource), "1",
                                std::move(request.resource_id), std::move(request.lock_owner)};
    Checked(std::move(args), [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
      if (!reply.ok()) return std::move(done)(reply.status());
      if (reply->is_error()) return std::move(done)(RedisError("unlock script failed", *reply));
      if (!reply->is_integer()) {
        return std::move(done)(MakeStatus(
            absl::StatusCode::kInternal,
            StrCat("unlock script answered ", reply->DebugString(), ", not an integer")));
      }
      if (reply->integer >= 0) return std::move(done)(UnlockStatus::kSuccess);
      if (reply->integer == -1) return std::move(done)(UnlockStatus::kLockDoesNotExist);
      if (reply->integer == -2) return std::move(done)(UnlockStatus::kLockBelongsToOthers);
      std::move(done)(MakeStatus(absl::StatusCode::kInternal,
                                 StrCat("unlock script answered ", reply->integer)));
    });
  }

  absl::Status Health() const override {
    if (replication_->state.load() == Replication::kRefused) return Refused();
    absl::Status health = client_->Health();
    if (health.code() == absl::StatusCode::kUnavailable &&
        absl::EndsWith(health.message(), ": connecting")) {
      return absl::OkStatus();
    }
    return health;
  }

 private:
  absl::Status Refused() const {
    return MakeStatus(absl::StatusCode::kFailedPrecondition,
                      StrCat("lock.redis: ", config_.settings.Address(),
                             " has replicas: replication is not supported"));
  }

  // Sends `args` once the replication check has passed; until one check got an answer, each
  // request first asks INFO replication (one extra round trip, paid once), and the command is
  // sent only when the check passed, so nothing is ever locked on a refused primary.
  void Checked(remora::redis::Args args, Callback<Reply> done) {
    int state = replication_->state.load();
    if (state == Replication::kRefused) return std::move(done)(Refused());
    if (state == Replication::kOk) return client_->Command(std::move(args), std::move(done));
    client_->Command(
        {"INFO", "replication"},
        [weak = std::weak_ptr<Client>(client_), replication = replication_, refused = Refused(),
         args = std::move(args), done = std::move(done)](absl::StatusOr<Reply> info) mutable {
          if (!info.ok()) return std::move(done)(info.status());
          if (info->is_string() || info->is_status()) {
            bool has_replicas = ConnectedReplicas(info->str) > 0;
            replication->state.store(has_replicas ? Replication::kRefused : Replication::kOk);
            if (has_replicas) return std::move(done)(std::move(refused));
          }
          // An error reply (INFO renamed or denied by an ACL) skips the check, as an absent
          // field does; the lock itself still works.
          if (info->is_error()) replication->state.store(Replication::kOk);
          std::shared_ptr<Client> client = weak.lock();
          if (!client)
            return std::move(done)(absl::CancelledError("lock.redis: the store was closed"));
          client->Command(std::move(args), std::move(done));
        });
  }

  Config config_;
  std::shared_ptr<Client> client_;
  std::shared_ptr<Replication> replication_;
};

}  // namespace

std::string_view UnlockScript() { return kUnlockSource; }

remora::redis::Settings DefaultSettings() {
  remora::redis::Settings settings;
  settings.max_retries = 3;
  return settings;
}

absl::StatusOr<Config> ParseConfig(const Metadata& metadata) {
  absl::StatusOr<remora::redis::Settings> settings =
      remora::redis::ParseSettings(metadata, DefaultSettings());
  if (!settings.ok()) {
    return MakeStatus(settings.status().code(),
                      StrCat("lock.redis: ", MessageOf(settings.status())));
  }
  Config config;
  config.settings = *std::move(settings);
  return config;
}

absl::StatusOr<std::unique_ptr<Store>> Create(const ComponentContext& context) {
  if (context.io_context == nullptr) return Invalid("lock.redis: no io_context to run on");
  absl::StatusOr<Config> config = ParseConfig(context.metadata);
  if (!config.ok()) return config.status();
  return std::unique_ptr<Store>(new RedisLock(*context.io_context, *std::move(config)));
}

}  // namespace remora::components::lock::redis
