#include "redis_configuration.h"

#include <utility>
// <utility> before Asio (Boost 1.74 + GCC 12 in C++20).
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "remora/components/common/strings.h"
#include "remora/components/common/uuid.h"

namespace remora::components::configuration::redis {
namespace {

namespace asio = boost::asio;
using remora::redis::Args;
using remora::redis::Client;
using remora::redis::Reply;

constexpr std::string_view kNotifyEvents = "Kg$xe";

absl::Status Invalid(std::string_view message) {
  return MakeStatus(absl::StatusCode::kInvalidArgument, message);
}

// One subscription. Shared with the client's callbacks (which may complete after Unsubscribe or
// after the store is gone), so everything they need lives here.
struct Sub {
  Sub(asio::io_context& io, std::string sub_id) : id(std::move(sub_id)), timer(io) {}

  const std::string id;
  // Recursive: a handler may call Unsubscribe from inside its own update.
  std::recursive_mutex mu;
  bool active = true;
  UpdateHandler handler;
  std::optional<Callback<std::string>> done;  // until the first (re)subscription or the timeout
  std::unique_ptr<remora::redis::Subscription> subscription;
  asio::steady_timer timer;  // Subscribe's timeout

  // Runs the handler unless the subscription ended; under mu so that Unsubscribe waits for it.
  void Deliver(UpdateEvent event) {
    std::lock_guard lock(mu);
    if (active && handler) handler(std::move(event));
  }
  void Answer(absl::StatusOr<std::string> result) {
    std::optional<Callback<std::string>> callback;
    {
      std::lock_guard lock(mu);
      callback.swap(done);
    }
    if (callback && *callback) std::move (*callback)(std::move(result));
  }
  // Stops delivery and returns the Redis subscription, to be destroyed outside mu (its destructor
  // waits for a running callback, which may be waiting for mu).
  std::unique_ptr<remora::redis::Subscription> Stop() {
    std::lock_guard lock(mu);
    active = false;
    // The handler is not destroyed here: Stop may run inside it (a handler unsubscribing
    // itself). It goes with the Sub, which Deliver keeps alive while the handler runs.
    timer.cancel();
    return std::move(subscription);
  }
};

// CONFIG SET notify-keyspace-events, retried for a while: right after Redis comes back the
// subscription connection may be up before any pooled one is, and a command then fails fast.
void EnableNotifications(std::weak_ptr<Client> weak, asio::io_context& io, int attempts_left,
                         std::function<void()> then) {
  std::shared_ptr<Client> client = weak.lock();
  if (!client) return;
  client->Command(
      {"CONFIG", "SET", "notify-keyspace-events", std::string(kNotifyEvents)},
      [weak, &io, attempts_left, then = std::move(then)](absl::StatusOr<Reply> reply) mutable {
        // A Redis error reply (CONFIG disabled on a managed Redis) is ignored as Dapr does; only
        // a transport failure is worth another try.
        if (reply.ok() || attempts_left <= 1 ||
            reply.status().code() == absl::StatusCode::kCancelled) {
          if (then) then();
          return;
        }
        auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(50));
        timer->async_wait([timer, weak, &io, attempts_left,
                           then = std::move(then)](const boost::system::error_code& ec) mutable {
          if (ec) return;
          EnableNotifications(weak, io, attempts_left - 1, std::move(then));
        });
      });
}

class RedisConfigurationStore final : public Store {
 public:
  RedisConfigurationStore(asio::io_context& io, Config config)
      : io_(io),
        config_(std::move(config)),
        client_(std::make_shared<Client>(io, config_.settings)),
        channel_prefix_(StrCat("__keyspace@", config_.settings.db, "__:")) {}

  ~RedisConfigurationStore() override {
    std::map<std::string, std::shared_ptr<Sub>> subs;
    {
      std::lock_guard lock(mu_);
      subs.swap(subs_);
    }
    for (auto& [id, sub] : subs) sub->Stop().reset();
  }

  void Get(GetRequest request, Callback<Items> done) override {
    if (!request.keys.empty()) return GetKeys(std::move(request.keys), std::move(done));
    std::weak_ptr<Client> weak = client_;
    client_->Command({"KEYS", "*"}, [this_client = weak,
                                     done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
      if (!reply.ok()) return std::move(done)(reply.status());
      if (reply->is_error()) {
        return std::move(done)(
            MakeStatus(absl::StatusCode::kInternal, StrCat("redis KEYS: ", reply->str)));
      }
      std::vector<std::string> keys;
      for (Reply& key : reply->elements) {
        if (key.is_string()) keys.push_back(std::move(key.str));
      }
      std::shared_ptr<Client> client = this_client.lock();
      if (!client) {
        return std::move(done)(MakeStatus(absl::StatusCode::kCancelled, "store destroyed"));
      }
      GetKeysOn(*client, std::move(keys), std::move(done));
    });
  }

  void Subscribe(SubscribeRequest request, UpdateHandler handler,
                 Callback<std::string> done) override {
    auto sub = std::make_shared<Sub>(io_, NewUuid());
    sub->handler = std::move(handler);
    sub->done.emplace(std::move(done));
    remora::redis::SubscribeRequest channels;
    if (request.keys.empty()) {
      channels.patterns.push_back(StrCat(channel_prefix_, "*"));
    } else {
      for (const std::string& key : request.keys) {
        channels.channels.push_back(StrCat(channel_prefix_, key));
      }
    }
    {
      std::lock_guard lock(mu_);
      subs_.emplace(sub->id, sub);
    }
    std::weak_ptr<Sub> weak_sub = sub;
    std::weak_ptr<Client> weak_client = client_;
    // A subscription that is not listening within dialTimeout fails (and is dropped), so the
    // caller learns that Redis is away instead of waiting forever.
    auto wait = config_.settings.dial_timeout.count() > 0 ? config_.settings.dial_timeout
                                                          : std::chrono::milliseconds(5000);
    sub->timer.expires_after(wait);
    sub->timer.async_wait([this, weak_sub](const boost::system::error_code& ec) {
      if (ec) return;
      std::shared_ptr<Sub> s = weak_sub.lock();
      if (!s) return;
      // Only this store's destructor removes subscriptions before their timer fires, and it
      // cancels the timer first, so `this` is alive here.
      bool pending;
      {
        std::lock_guard lock(s->mu);
        pending = s->active && s->done.has_value();
      }
      if (!pending) return;
      (void)Unsubscribe(s->id);
      s->Answer(MakeStatus(absl::StatusCode::kUnavailable,
                           StrCat("redis ", config_.settings.Address(),
                                  ": the keyspace subscription is not listening")));
    });
    // Notifications must be on before the first SUBSCRIBE answers, or a change made right after
    // Subscribe returns would be missed.
    // Runs from a client callback, which may come after the store is gone: no `this` inside.
    EnableNotifications(weak_client, io_, 1,
                        [weak_sub, weak_client, &io = io_, prefix = channel_prefix_,
                         channels = std::move(channels)]() mutable {
                          std::shared_ptr<Sub> s = weak_sub.lock();
                          std::shared_ptr<Client> client = weak_client.lock();
                          if (!s || !client) return;
                          auto subscription = client->Subscribe(
                              std::move(channels),
                              [weak_sub, weak_client, prefix](const remora::redis::Message& m) {
                                OnNotification(weak_sub, weak_client, prefix, m);
                              },
                              [weak_sub, weak_client, &io](absl::Status status) {
                                std::shared_ptr<Sub> s = weak_sub.lock();
                                if (!s || !status.ok()) return;
                                bool first;
                                {
                                  std::lock_guard lock(s->mu);
                                  first = s->done.has_value();
                                }
                                // Every (re)subscription sets notifications again: a restarted
                                // Redis forgot the setting, and the first attempt may have run
                                // before Redis was reachable.
                                EnableNotifications(weak_client, io, 40, nullptr);
                                if (first) {
                                  s->timer.cancel();
                                  s->Answer(s->id);
                                }
                              });
                          if (!subscription.ok()) {
                            s->Stop();
                            return s->Answer(subscription.status());
                          }
                          std::unique_ptr<remora::redis::Subscription> stale;
                          {
                            std::lock_guard lock(s->mu);
                            if (s->active) {
                              s->subscription = *std::move(subscription);
                            } else {
                              stale = *std::move(subscription);  // unsubscribed meanwhile
                            }
                          }
                        });
  }

  absl::Status Unsubscribe(const std::string& id) override {
    std::shared_ptr<Sub> sub;
    {
      std::lock_guard lock(mu_);
      auto it = subs_.find(id);
      if (it == subs_.end()) {
        return MakeStatus(absl::StatusCode::kNotFound,
                          StrCat("subscription ", id, " does not exist"));
      }
      sub = std::move(it->second);
      subs_.erase(it);
    }
    sub->Stop().reset();
    return absl::OkStatus();
  }

  // OK during the very first connection attempt, as state.redis: requests wait for it then.
  absl::Status Health() const override {
    absl::Status health = client_->Health();
    if (health.code() == absl::StatusCode::kUnavailable &&
        std::string_view(health.message().data(), health.message().size())
            .ends_with(": connecting")) {
      return absl::OkStatus();
    }
    return health;
  }

 private:
  void GetKeys(std::vector<std::string> keys, Callback<Items> done) {
    GetKeysOn(*client_, std::move(keys), std::move(done));
  }

  static void GetKeysOn(Client& client, std::vector<std::string> keys, Callback<Items> done) {
    if (keys.empty()) return std::move(done)(Items{});
    std::vector<Args> commands;
    commands.reserve(keys.size());
    for (const std::string& key : keys) commands.push_back({"GET", key});
    client.Pipeline(std::move(commands), [keys = std::move(keys), done = std::move(done)](
                                             absl::StatusOr<std::vector<Reply>> replies) mutable {
      if (!replies.ok()) return std::move(done)(replies.status());
      Items items;
      for (size_t i = 0; i < keys.size() && i < replies->size(); ++i) {
        const Reply& reply = (*replies)[i];
        // Missing, empty and non-string keys (WRONGTYPE) are left out, as Dapr does.
        if (!reply.is_string() || reply.str.empty()) continue;
        items[keys[i]] = ParseItem(reply.str);
      }
      std::move(done)(std::move(items));
    });
  }

  static void OnNotification(const std::weak_ptr<Sub>& weak_sub,
                             const std::weak_ptr<Client>& weak_client, const std::string& prefix,
                             const remora::redis::Message& message) {
    if (!message.channel.starts_with(prefix)) return;
    std::string key = message.channel.substr(prefix.size());
    std::shared_ptr<Client> client = weak_client.lock();
    if (!client) return;
    auto deliver = [weak_sub, key](Item item) {
      std::shared_ptr<Sub> sub = weak_sub.lock();
      if (!sub) return;
      UpdateEvent event;
      event.id = sub->id;
      event.items.emplace(key, std::move(item));
      sub->Deliver(std::move(event));
    };
    if (message.payload == "del" || message.payload == "expired" || message.payload == "evicted") {
      return deliver(Item{});
    }
    client->Command({"GET", key}, [deliver](absl::StatusOr<Reply> reply) mutable {
      // Without a reply there is nothing trustworthy to report; a later change will be.
      if (!reply.ok()) return;
      if (reply->is_nil()) return deliver(Item{});
      if (!reply->is_string()) return;  // another Redis type: not a configuration item
      deliver(ParseItem(reply->str));
    });
  }

  asio::io_context& io_;
  Config config_;
  std::shared_ptr<Client> client_;
  const std::string channel_prefix_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Sub>> subs_;
};

}  // namespace

remora::redis::Settings DefaultSettings() {
  remora::redis::Settings settings;
  settings.max_retries = 3;
  settings.min_retry_interval = std::chrono::milliseconds(8);
  settings.max_retry_interval = std::chrono::milliseconds(2000);
  return settings;
}

absl::StatusOr<Config> ParseConfig(const Metadata& metadata) {
  absl::StatusOr<remora::redis::Settings> settings =
      remora::redis::ParseSettings(metadata, DefaultSettings());
  if (!settings.ok()) return settings.status();
  Config config;
  config.settings = *std::move(settings);
  return config;
}

Item ParseItem(std::string_view stored) {
  Item item;
  size_t sep = stored.find("||");
  if (sep == std::string_view::npos) {
    item.value = std::string(stored);
  } else {
    item.value = std::string(stored.substr(0, sep));
    item.version = std::string(stored.substr(sep + 2));
  }
  return item;
}

absl::StatusOr<std::unique_ptr<Store>> Create(const ComponentContext& context) {
  if (context.io_context == nullptr) return Invalid("configuration.redis: no io_context to run on");
  absl::StatusOr<Config> config = ParseConfig(context.metadata);
  if (!config.ok()) return config.status();
  return std::unique_ptr<Store>(
      new RedisConfigurationStore(*context.io_context, *std::move(config)));
}

}  // namespace remora::components::configuration::redis
