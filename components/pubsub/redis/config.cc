// pubsub.redis: metadata parsing and the XADD wire format (no I/O here).

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "redis_pubsub.h"
#include "remora/components/common/strings.h"

namespace remora::components::pubsub::redis {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

absl::Status Invalid(std::string_view key, std::string_view why) {
  return MakeStatus(absl::StatusCode::kInvalidArgument,
                    StrCat("pubsub.redis: metadata ", key, ": ", why));
}

// A duration that must not be negative. `bare_unit` is what a bare integer means.
absl::StatusOr<milliseconds> NonNegativeDuration(const components::Metadata& metadata,
                                                 std::string_view key, milliseconds fallback,
                                                 milliseconds bare_unit) {
  absl::StatusOr<milliseconds> d = metadata.GetDuration(key, fallback, bare_unit);
  if (!d.ok()) return d.status();
  if (d->count() < 0) return Invalid(key, "must not be negative");
  return *d;
}

absl::StatusOr<int> PositiveInt(const components::Metadata& metadata, std::string_view key,
                                int fallback) {
  absl::StatusOr<int64_t> v = metadata.GetInt(key, fallback);
  if (!v.ok()) return v.status();
  if (*v < 1 || *v > 1'000'000) return Invalid(key, "must be between 1 and 1000000");
  return static_cast<int>(*v);
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const components::Metadata& metadata) {
  Config config;
  // Dapr passes no pub/sub-specific Redis defaults: go-redis' own (maxRetries 3, backoff
  // 8 ms .. 512 ms), which are the client's defaults.
  absl::StatusOr<::remora::redis::Settings> settings = ::remora::redis::ParseSettings(metadata);
  if (!settings.ok()) return settings.status();
  config.redis = *std::move(settings);

  config.consumer_id = metadata.GetString("consumerID");

  // A bare integer is milliseconds for these two, for legacy reasons (Dapr parses them itself).
  absl::StatusOr<milliseconds> redeliver = NonNegativeDuration(
      metadata, "redeliverInterval", config.redeliver_interval, milliseconds(1));
  if (!redeliver.ok()) return redeliver.status();
  config.redeliver_interval = *redeliver;
  absl::StatusOr<milliseconds> processing = NonNegativeDuration(
      metadata, "processingTimeout", config.processing_timeout, milliseconds(1));
  if (!processing.ok()) return processing.status();
  config.processing_timeout = *processing;

  absl::StatusOr<int> queue_depth = PositiveInt(metadata, "queueDepth", config.queue_depth);
  if (!queue_depth.ok()) return queue_depth.status();
  config.queue_depth = *queue_depth;
  absl::StatusOr<int> concurrency = PositiveInt(metadata, "concurrency", config.concurrency);
  if (!concurrency.ok()) return concurrency.status();
  config.concurrency = *concurrency;

  absl::StatusOr<int64_t> max_len = metadata.GetInt("maxLenApprox", 0);
  if (!max_len.ok()) return max_len.status();
  if (*max_len < 0) return Invalid("maxLenApprox", "must not be negative");
  config.max_len_approx = *max_len;

  // Dapr decodes streamTTL with its generic decoder, where a bare integer means seconds.
  absl::StatusOr<milliseconds> ttl =
      NonNegativeDuration(metadata, "streamTTL", milliseconds(0), seconds(1));
  if (!ttl.ok()) return ttl.status();
  config.stream_ttl = *ttl;
  return config;
}

std::vector<std::string> XAddCommand(const Config& config, const PublishRequest& request,
                                     std::chrono::system_clock::time_point now) {
  std::vector<std::string> args = {"XADD", request.topic};
  // go-redis (which Dapr uses) sends MAXLEN when both are set, so maxLenApprox wins here too.
  if (config.max_len_approx > 0) {
    args.insert(args.end(), {"MAXLEN", "~", StrCat(config.max_len_approx)});
  } else if (config.stream_ttl.count() > 0) {
    const int64_t min_ms =
        std::chrono::duration_cast<milliseconds>((now - config.stream_ttl).time_since_epoch())
            .count();
    args.insert(args.end(), {"MINID", "~", StrCat(min_ms, "-1")});
  }
  args.insert(args.end(), {"*", "data", request.data});
  if (!request.metadata.empty()) {
    nlohmann::json object(request.metadata);
    // Replace invalid UTF-8 rather than throw: metadata comes from user input.
    args.push_back("metadata");
    args.push_back(object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  return args;
}

}  // namespace remora::components::pubsub::redis
