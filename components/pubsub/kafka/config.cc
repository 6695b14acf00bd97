// ParseConfig: Dapr's Kafka metadata keys (common/component/kafka/metadata.go in
// components-contrib) mapped onto librdkafka properties. Where Dapr's decoder and ours could
// differ, Dapr's wins: bare numbers in durations are seconds except consumeRetryInterval (ms),
// authType is required unless the legacy authRequired says what to do, TLS is on unless disableTls
// is set or authType is none.

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>

#include "kafka_pubsub.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"

namespace remora::components::pubsub::kafka {
namespace {

using std::chrono::milliseconds;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = Trim(text.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::string Join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.append(separator);
    out += items[i];
  }
  return out;
}

absl::Status Invalid(std::string_view message) {
  return MakeStatus(absl::StatusCode::kInvalidArgument, StrCat("pubsub.kafka: ", message));
}

bool LooksLikePem(std::string_view text) {
  return text.find("-----BEGIN") != std::string_view::npos &&
         text.find("-----END") != std::string_view::npos;
}

std::string Ms(milliseconds d) { return std::to_string(d.count()); }

}  // namespace

absl::StatusOr<Config> ParseConfig(const components::Metadata& metadata) {
  Config config;

  config.brokers = SplitList(metadata.GetString("brokers"));
  if (config.brokers.empty()) return Invalid("metadata \"brokers\" is required");
  config.common.emplace_back("bootstrap.servers", Join(config.brokers, ","));

  config.consumer_group = std::string(Trim(metadata.GetString("consumerGroup")));
  if (config.consumer_group.empty()) {
    config.consumer_group = std::string(Trim(metadata.GetString("consumerID")));
  }
  std::string client_id(Trim(metadata.GetString("clientID")));
  if (!client_id.empty()) config.client_id = client_id;
  config.common.emplace_back("client.id", config.client_id);

  // authType, or the legacy authRequired flag it replaced.
  config.auth_type = Lower(Trim(metadata.GetString("authType")));
  if (config.auth_type.empty()) {
    std::optional<std::string> required = metadata.Get("authRequired");
    if (required && !Trim(*required).empty()) {
      absl::StatusOr<bool> on = metadata.GetBool("authRequired", false);
      if (!on.ok()) return on.status();
      if (!*on) {
        config.auth_type = "none";
      } else {
        config.auth_type = Trim(metadata.GetString("saslPassword")).empty() ? "mtls" : "password";
      }
    }
  }
  if (config.auth_type.empty()) {
    return Invalid("metadata \"authType\" is required (none, password, mtls, certificate, oidc)");
  }

  absl::StatusOr<bool> disable_tls = metadata.GetBool("disableTls", false);
  if (!disable_tls.ok()) return disable_tls.status();
  absl::StatusOr<bool> skip_verify = metadata.GetBool("skipVerify", false);
  if (!skip_verify.ok()) return skip_verify.status();
  std::string ca_cert(Trim(metadata.GetString("caCert")));
  if (!ca_cert.empty() && !LooksLikePem(ca_cert)) {
    return Invalid("metadata \"caCert\" is not a PEM certificate");
  }

  bool sasl = false;
  const std::string& auth = config.auth_type;
  if (auth == "none") {
    // Dapr turns TLS off for authType none.
  } else if (auth == "password") {
    std::string user = metadata.GetString("saslUsername");
    std::string password = metadata.GetString("saslPassword");
    if (user.empty()) return Invalid("metadata \"saslUsername\" is required for authType password");
    if (password.empty()) {
      return Invalid("metadata \"saslPassword\" is required for authType password");
    }
    // Dapr's spellings are SHA-256 and SHA-512 (anything else is PLAIN); the SCRAM- names are
    // accepted too because they are what people write for a SCRAM broker.
    std::string mechanism = Lower(Trim(metadata.GetString("saslMechanism")));
    std::string sasl_mechanism = "PLAIN";
    if (mechanism == "sha-256" || mechanism == "scram-sha-256") sasl_mechanism = "SCRAM-SHA-256";
    if (mechanism == "sha-512" || mechanism == "scram-sha-512") sasl_mechanism = "SCRAM-SHA-512";
    config.common.emplace_back("sasl.mechanism", sasl_mechanism);
    config.common.emplace_back("sasl.username", user);
    config.common.emplace_back("sasl.password", password);
    sasl = true;
  } else if (auth == "mtls") {
    if (*disable_tls) return Invalid("authType mtls cannot be combined with disableTls");
    std::string cert(Trim(metadata.GetString("clientCert")));
    std::string key(Trim(metadata.GetString("clientKey")));
    if (cert.empty() != key.empty()) return Invalid("clientCert and clientKey go together");
    if (!cert.empty() && !LooksLikePem(cert)) return Invalid("clientCert is not PEM");
    if (!key.empty() && !LooksLikePem(key)) return Invalid("clientKey is not PEM");
    if (!cert.empty()) {
      config.common.emplace_back("ssl.certificate.pem", cert);
      config.common.emplace_back("ssl.key.pem", key);
    }
  } else if (auth == "certificate") {
    if (ca_cert.empty()) return Invalid("metadata \"caCert\" is required for authType certificate");
  } else if (auth == "oidc") {
    std::string endpoint(Trim(metadata.GetString("oidcTokenEndpoint")));
    std::string client(Trim(metadata.GetString("oidcClientID")));
    std::string secret = metadata.GetString("oidcClientSecret");
    if (endpoint.empty()) return Invalid("metadata \"oidcTokenEndpoint\" is required for oidc");
    if (client.empty()) return Invalid("metadata \"oidcClientID\" is required for oidc");
    if (secret.empty()) return Invalid("metadata \"oidcClientSecret\" is required for oidc");
    std::vector<std::string> scopes = SplitList(metadata.GetString("oidcScopes"));
    if (scopes.empty()) scopes.push_back("openid");  // Dapr's default
    config.common.emplace_back("sasl.mechanism", "OAUTHBEARER");
    config.common.emplace_back("sasl.oauthbearer.method", "oidc");
    config.common.emplace_back("sasl.oauthbearer.token.endpoint.url", endpoint);
    config.common.emplace_back("sasl.oauthbearer.client.id", client);
    config.common.emplace_back("sasl.oauthbearer.client.secret", secret);
    config.common.emplace_back("sasl.oauthbearer.scope", Join(scopes, " "));
    std::string extensions(Trim(metadata.GetString("oidcExtensions")));
    if (!extensions.empty()) {
      nlohmann::json parsed =
          nlohmann::json::parse(extensions, nullptr, /*allow_exceptions=*/false);
      if (!parsed.is_object() || parsed.empty()) {
        return Invalid("metadata \"oidcExtensions\" must be a JSON object of strings");
      }
      std::vector<std::string> pairs;
      for (const auto& [k, v] : parsed.items()) {
        if (!v.is_string()) return Invalid("metadata \"oidcExtensions\" values must be strings");
        pairs.push_back(StrCat(k, "=", v.get<std::string>()));
      }
      config.common.emplace_back("sasl.oauthbearer.extensions", Join(pairs, ","));
    }
    sasl = true;
  } else if (auth == "awsiam" || auth == "oidc_private_key_jwt") {
    return MakeStatus(absl::StatusCode::kUnimplemented,
                      StrCat("pubsub.kafka: authType ", auth, " is not supported by remora"));
  } else {
    return Invalid(
        StrCat("authType \"", auth, "\" is not one of none, password, mtls, certificate, oidc"));
  }

  const bool tls = !*disable_tls && auth != "none";
  config.common.emplace_back("security.protocol", sasl ? (tls ? "SASL_SSL" : "SASL_PLAINTEXT")
                                                       : (tls ? "SSL" : "PLAINTEXT"));
  if (tls) {
    if (!ca_cert.empty()) config.common.emplace_back("ssl.ca.pem", ca_cert);
    if (*skip_verify) {
      config.common.emplace_back("enable.ssl.certificate.verification", "false");
      config.common.emplace_back("ssl.endpoint.identification.algorithm", "none");
    }
  }

  // Connection.
  absl::StatusOr<milliseconds> dial =
      metadata.GetDuration("dialTimeout", std::chrono::seconds(30), std::chrono::seconds(1));
  if (!dial.ok()) return dial.status();
  absl::StatusOr<milliseconds> read =
      metadata.GetDuration("readTimeout", std::chrono::seconds(30), std::chrono::seconds(1));
  if (!read.ok()) return read.status();
  absl::StatusOr<milliseconds> write =
      metadata.GetDuration("writeTimeout", std::chrono::seconds(30), std::chrono::seconds(1));
  if (!write.ok()) return write.status();
  if (dial->count() > 0)
    config.common.emplace_back("socket.connection.setup.timeout.ms", Ms(*dial));
  milliseconds socket_timeout = std::max(*read, *write);
  if (socket_timeout.count() >= 10) {
    config.common.emplace_back("socket.timeout.ms", Ms(socket_timeout));
  }
  absl::StatusOr<milliseconds> refresh =
      metadata.GetDuration("clientConnectionTopicMetadataRefreshInterval", std::chrono::minutes(8),
                           std::chrono::seconds(1));
  if (!refresh.ok()) return refresh.status();
  if (refresh->count() <= 0) *refresh = std::chrono::minutes(8);
  config.common.emplace_back("topic.metadata.refresh.interval.ms", Ms(*refresh));
  absl::StatusOr<milliseconds> keepalive = metadata.GetDuration(
      "clientConnectionKeepAliveInterval", milliseconds(0), std::chrono::seconds(1));
  if (!keepalive.ok()) return keepalive.status();
  // librdkafka can switch TCP keep-alive on but not set its period (the OS default applies).
  if (keepalive->count() > 0) config.common.emplace_back("socket.keepalive.enable", "true");

  // Producer.
  absl::StatusOr<int64_t> max_bytes = metadata.GetInt("maxMessageBytes", 0);
  if (!max_bytes.ok()) return max_bytes.status();
  if (*max_bytes < 0) return Invalid("metadata \"maxMessageBytes\" must not be negative");
  config.max_message_bytes = *max_bytes;
  // librdkafka's message.max.bytes also caps a whole batch request, so it only grows with
  // maxMessageBytes; the per-record limit is checked in Publish.
  if (*max_bytes > 1'000'000) {
    config.producer.emplace_back("message.max.bytes", std::to_string(*max_bytes + 1024));
  }
  std::string acks = Lower(Trim(metadata.GetString("producerRequiredAcks")));
  if (acks.empty()) acks = "all";
  if (acks != "all" && acks != "local" && acks != "none") {
    return Invalid("metadata \"producerRequiredAcks\" must be all, local or none");
  }
  absl::StatusOr<int64_t> retries = metadata.GetInt("producerRetryMax", 5);
  if (!retries.ok()) return retries.status();
  if (*retries < 0) return Invalid("metadata \"producerRetryMax\" must not be negative");
  config.producer.emplace_back("acks", acks == "all" ? "all" : acks == "local" ? "1" : "0");
  // The idempotent producer keeps retried batches in order and free of duplicates; it needs
  // acks=all and retries.
  config.producer.emplace_back("enable.idempotence",
                               acks == "all" && *retries > 0 ? "true" : "false");
  config.producer.emplace_back("message.send.max.retries", std::to_string(*retries));
  std::string compression = Lower(Trim(metadata.GetString("compression")));
  if (compression.empty()) compression = "none";
  if (compression != "none" && compression != "gzip" && compression != "snappy" &&
      compression != "lz4" && compression != "zstd") {
    return Invalid("metadata \"compression\" must be none, gzip, snappy, lz4 or zstd");
  }
  config.producer.emplace_back("compression.codec", compression);

  // Consumer.
  if (!config.consumer_group.empty()) {
    config.consumer.emplace_back("group.id", config.consumer_group);
  }
  std::string initial = Lower(Trim(metadata.GetString("initialOffset")));
  if (initial.empty()) initial = "newest";
  if (initial != "newest" && initial != "oldest") {
    return Invalid("metadata \"initialOffset\" must be newest or oldest");
  }
  config.initial_offset_oldest = initial == "oldest";
  config.consumer.emplace_back("auto.offset.reset",
                               config.initial_offset_oldest ? "earliest" : "latest");
  config.consumer.emplace_back("enable.auto.commit", "false");
  config.consumer.emplace_back("enable.auto.offset.store", "false");
  // Like Sarama: subscribing to a topic that does not exist yet creates it (when the broker
  // allows), instead of waiting for the next metadata refresh to notice it.
  config.consumer.emplace_back("allow.auto.create.topics", "true");
  // Records are read from each partition's own queue only while the handler keeps up; this caps
  // what librdkafka prefetches per partition meanwhile (its default is 64 MB).
  config.consumer.emplace_back("queued.max.messages.kbytes", "16384");
  absl::StatusOr<milliseconds> session =
      metadata.GetDuration("sessionTimeout", std::chrono::seconds(10), std::chrono::seconds(1));
  if (!session.ok()) return session.status();
  absl::StatusOr<milliseconds> heartbeat =
      metadata.GetDuration("heartbeatInterval", std::chrono::seconds(3), std::chrono::seconds(1));
  if (!heartbeat.ok()) return heartbeat.status();
  if (session->count() <= 0 || heartbeat->count() <= 0 || *heartbeat >= *session) {
    return Invalid("heartbeatInterval must be positive and shorter than sessionTimeout");
  }
  config.consumer.emplace_back("session.timeout.ms", Ms(*session));
  config.consumer.emplace_back("heartbeat.interval.ms", Ms(*heartbeat));
  absl::StatusOr<int64_t> fetch_min = metadata.GetInt("consumerFetchMin", 1);
  if (!fetch_min.ok()) return fetch_min.status();
  absl::StatusOr<int64_t> fetch_default = metadata.GetInt("consumerFetchDefault", 1024 * 1024);
  if (!fetch_default.ok()) return fetch_default.status();
  if (*fetch_min < 1 || *fetch_default < 1) {
    return Invalid("consumerFetchMin and consumerFetchDefault must be positive");
  }
  config.consumer.emplace_back("fetch.min.bytes", std::to_string(*fetch_min));
  config.consumer.emplace_back("max.partition.fetch.bytes", std::to_string(*fetch_default));
  std::string strategy = Lower(Trim(metadata.GetString("consumerGroupRebalanceStrategy")));
  if (strategy.empty()) strategy = "range";
  if (strategy != "range" && strategy != "roundrobin" && strategy != "sticky") {
    return Invalid(
        "metadata \"consumerGroupRebalanceStrategy\" must be range, sticky or roundrobin");
  }
  // librdkafka's only sticky assignor is the cooperative (incremental) one.
  config.consumer.emplace_back("partition.assignment.strategy",
                               strategy == "sticky" ? "cooperative-sticky" : strategy);

  absl::StatusOr<milliseconds> retry_interval =
      metadata.GetDuration("consumeRetryInterval", milliseconds(100), milliseconds(1));
  if (!retry_interval.ok()) return retry_interval.status();
  if (retry_interval->count() < 0) return Invalid("consumeRetryInterval must not be negative");
  config.consume_retry_interval = *retry_interval;
  absl::StatusOr<int64_t> window = metadata.GetInt("maxInFlightPerPartition", 1);
  if (!window.ok()) return window.status();
  if (*window < 1 || *window > 100'000) {
    return Invalid("metadata \"maxInFlightPerPartition\" must be between 1 and 100000");
  }
  config.max_in_flight_per_partition = static_cast<int>(*window);
  return config;
}

}  // namespace remora::components::pubsub::kafka
