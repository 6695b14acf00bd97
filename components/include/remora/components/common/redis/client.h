#pragma once

// The project's one Redis client, shared by every Redis-backed component (state.redis,
// pubsub.redis, configuration.redis, lock.redis). Asynchronous on the event loop: hiredis' async
// API driven by Asio, no thread ever blocks on Redis. See components/common/redis/README.md.
//
// Three ways to talk to Redis:
//
//   Client::Command        request/reply commands, pipelined over a small pool of connections.
//   Client::Pipeline       several commands back to back on one connection, nothing interleaved
//                          (MULTI ... EXEC transactions, a bulk read in one round trip).
//   Client::Dedicated      a connection of its own, for commands that block the connection
//                          (XREADGROUP ... BLOCK, BLPOP) so they do not stall the shared pool.
//   Client::Subscribe      SUBSCRIBE / PSUBSCRIBE push messages on a connection of its own,
//                          resubscribed automatically after every reconnect.
//
// Example (a state component):
//
//   absl::StatusOr<redis::Settings> settings = redis::ParseSettings(ctx.metadata);
//   if (!settings.ok()) return settings.status();
//   auto client = std::make_unique<redis::Client>(*ctx.io_context, *settings);  // never blocks
//   client->Command({"HGETALL", key}, [](absl::StatusOr<redis::Reply> reply) {
//     if (!reply.ok()) { /* UNAVAILABLE, DEADLINE_EXCEEDED or CANCELLED */ }
//     else if (reply->is_error()) { /* Redis answered "-ERR ..." */ }
//     else { /* reply->elements ... */ }
//   });
//
// Example (a Streams consumer loop on a dedicated connection):
//
//   std::unique_ptr<redis::DedicatedConnection> conn = client->Dedicated();
//   void Loop() {
//     conn->Command({"XREADGROUP", "GROUP", g, c, "COUNT", "100", "BLOCK", "2000", "STREAMS", t,
//     ">"},
//                   [this](absl::StatusOr<redis::Reply> r) {
//                     if (!r.ok()) { RetryAfter(settings.min_retry_interval); return; }  // no spin
//                     Handle(*r);
//                     Loop();
//                   },
//                   std::chrono::milliseconds(2000) + settings.read_timeout);  // BLOCK + margin
//   }
//
// Example (keyspace notifications):
//
//   auto sub = client->Subscribe({.patterns = {"__keyspace@0__:*"}},
//       [](const redis::Message& m) { /* m.channel, m.payload */ },
//       [](absl::Status s) { /* OK: (re)subscribed; error: connection lost, retrying */ });
//
// Ordering: replies on one connection come back in order, but consecutive Command calls may go
// to different pooled connections, so Redis may execute them in another order. Wait for a reply
// before sending a command that depends on it, or put both in one Pipeline.
//
// Threading: every method may be called from any thread. All callbacks run on the io_context
// (on a strand of the client, so one client's callbacks never run concurrently), never inside the
// call that started the operation.
//
// Errors: a command's callback gets
//   - a Reply (possibly of type kError: Redis answered with an error; the caller decides),
//   - UNAVAILABLE naming host:port when there is no usable connection or the connection broke
//     before the reply arrived (the command may or may not have run),
//   - DEADLINE_EXCEEDED when no reply arrived within the timeout (readTimeout by default),
//   - CANCELLED when the client (or dedicated connection) was destroyed first.
//
// Connections: created in the background; the constructor never blocks and never fails. Each
// connection runs AUTH (redisUsername/redisPassword) and SELECT (redisDB) before any user command,
// after every (re)connect. A lost connection reconnects by itself with exponential backoff
// (redisMinRetryInterval .. redisMaxRetryInterval). While no connection is up, commands fail fast
// with UNAVAILABLE carrying the last connection error (they are not queued), except during the
// very first connection attempt, where they wait for it (up to their timeout). The first
// reconnect after a connection that was up for a second or more starts at once.
//
// Lifetime: destroy clients, dedicated connections and subscriptions before their io_context.
// Destruction never blocks: pending callbacks then complete with CANCELLED on the io_context, so
// anything they capture must outlive them (or be held by shared_ptr/weak_ptr).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "remora/components/common/callback.h"
#include "remora/components/common/metadata.h"

namespace boost::asio {
class io_context;
}

namespace remora::redis {

// The shared Redis metadata of Dapr's components (contract §5.1), typed.
struct Settings {
  std::string host = "localhost";  // from redisHost, without the port
  int port = 6379;
  std::string username;  // redisUsername: ACL user; AUTH <user> <password> when set
  std::string password;  // redisPassword: AUTH is sent only when non-empty
  int db = 0;            // redisDB: SELECT after connect when not 0
  // A negative timeout disables it (Dapr keeps a raw negative value the same way).
  std::chrono::milliseconds dial_timeout{5000};   // resolve + connect + AUTH + SELECT
  std::chrono::milliseconds read_timeout{3000};   // per command: from sending to its reply
  std::chrono::milliseconds write_timeout{3000};  // output stuck in the socket buffer
  // Parsed for components that retry commands they know to be idempotent; the client never
  // retries a command itself (a retried INCR or EVAL could apply twice).
  int max_retries = 3;
  // Reconnect backoff: the first retry waits min, each failure doubles it, up to max.
  std::chrono::milliseconds min_retry_interval{8};
  std::chrono::milliseconds max_retry_interval{512};
  // Pipelined connections of Client::Command (round robin). go-redis needs one connection per
  // in-flight command, this client does not, so a few suffice; values above 16 are capped.
  int pool_size = 2;

  std::string Address() const;  // "host:port", as used in error messages
};

// Parses the metadata keys of contract §5.1. Keys that are absent keep the value in `defaults`
// (each component passes Dapr's defaults for its type). Accepted and ignored, so they are not
// reported as unknown: redisPort (used only when redisHost has no port), minIdleConns,
// maxConnAge, poolTimeout, idleTimeout, idleCheckFrequency, sentinelUsername, sentinelPassword,
// sentinelMasterName, insecureSkipTLSVerify, clientCert, clientKey.
// Errors (INVALID_ARGUMENT, naming the key): missing redisHost, malformed values,
// redisType "cluster", several hosts, failover "true", useEntraID/useAzureAD "true", and
// enableTLS "true" (Debian's hiredis 0.14 has no TLS support).
absl::StatusOr<Settings> ParseSettings(const components::Metadata& metadata,
                                       const Settings& defaults = {});

// A reply, owned (independent of hiredis' memory).
struct Reply {
  enum class Type { kNil, kStatus, kError, kInteger, kString, kArray };
  Type type = Type::kNil;
  std::string str;  // kStatus ("OK"), kError ("ERR ..."), kString (binary-safe)
  int64_t integer = 0;
  std::vector<Reply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  bool is_string() const { return type == Type::kString; }
  bool is_integer() const { return type == Type::kInteger; }
  bool is_array() const { return type == Type::kArray; }
  bool is_status() const { return type == Type::kStatus; }
  // Human-readable form for logs and test failures, e.g. `["a", 1, (nil)]`.
  std::string DebugString() const;
};

// A command's arguments; binary-safe (sent with explicit lengths, never formatted).
using Args = std::vector<std::string>;

// A push message of a subscription.
struct Message {
  std::string channel;  // the channel it was published on
  std::string pattern;  // the matching pattern for PSUBSCRIBE, empty for SUBSCRIBE
  std::string payload;
};

struct SubscribeRequest {
  std::vector<std::string> channels;  // SUBSCRIBE
  std::vector<std::string> patterns;  // PSUBSCRIBE
};

class DedicatedConnection;
class Subscription;

class Client {
 public:
  // Starts connecting in the background on `io`; see the header comment for the rules.
  Client(boost::asio::io_context& io, Settings settings);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends one command. `timeout` overrides readTimeout for this command (e.g. for WAIT); zero
  // means readTimeout, a negative value no timeout.
  // Connection-state commands (SUBSCRIBE family, MONITOR, SELECT, MULTI/EXEC/DISCARD/WATCH/
  // UNWATCH, QUIT, RESET) are refused with INVALID_ARGUMENT here: the connection is shared.
  void Command(Args args, Callback<Reply> done,
               std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Sends `commands` back to back on one pooled connection; `done` gets one Reply per command,
  // in order (a command's error reply is just its Reply), or the first transport error/timeout.
  // MULTI/EXEC/DISCARD/WATCH are allowed here, e.g. {{"MULTI"}, {"EVAL", ...}, {"EXEC"}}.
  void Pipeline(std::vector<Args> commands, Callback<std::vector<Reply>> done,
                std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // A separate connection with the same settings, for blocking commands. Pass a timeout that
  // covers the block (BLOCK ms + readTimeout). It may outlive this Client.
  std::unique_ptr<DedicatedConnection> Dedicated();

  // Subscribes on a separate connection. `on_message` gets every message; `on_status` gets OK each
  // time the subscription is (re)established and an error each time it is lost (messages
  // published in between are lost, as with any Redis pub/sub). Destroy the Subscription to
  // unsubscribe; it may outlive this Client. INVALID_ARGUMENT when the request is empty.
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(
      SubscribeRequest request, absl::AnyInvocable<void(const Message&)> on_message,
      absl::AnyInvocable<void(absl::Status)> on_status = nullptr);

  // OK while at least one pooled connection is up; otherwise the last connection error
  // (UNAVAILABLE naming host:port), or UNAVAILABLE "connecting" before the first attempt ends.
  absl::Status Health() const;

  const Settings& settings() const { return settings_; }

 private:
  class Pool;
  Settings settings_;
  std::shared_ptr<Pool> pool_;
};

class DedicatedConnection {
 public:
  ~DedicatedConnection();  // pending commands complete with CANCELLED
  DedicatedConnection(const DedicatedConnection&) = delete;
  DedicatedConnection& operator=(const DedicatedConnection&) = delete;

  // As Client::Command, on this connection only: commands run in the order sent. MULTI/EXEC and
  // WATCH are allowed (nothing else uses the connection); SUBSCRIBE, MONITOR and SELECT are not.
  void Command(Args args, Callback<Reply> done,
               std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  absl::Status Health() const;

 private:
  friend class Client;
  class Impl;
  explicit DedicatedConnection(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

class Subscription {
 public:
  // Unsubscribes (closes the connection). Once it returns, neither callback runs again; if one is
  // running on another thread at that moment, it waits for it to finish. May be called from
  // inside the callbacks.
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

 private:
  friend class Client;
  class Impl;
  explicit Subscription(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace remora::redis
