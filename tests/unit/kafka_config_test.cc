// pubsub.kafka's ParseConfig (pure): Dapr's metadata keys mapped to librdkafka properties, the
// errors users get for bad values, and metadata.yaml kept in sync with what ParseConfig reads.

#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "kafka_pubsub.h"

namespace remora::components::pubsub::kafka {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

absl::StatusOr<Config> Parse(std::map<std::string, std::string> values) {
  components::Metadata metadata(std::move(values));
  return ParseConfig(metadata);
}

std::optional<std::string> Setting(const Settings& settings, const std::string& name) {
  std::optional<std::string> found;
  for (const auto& [key, value] : settings) {
    if (key == name) found = value;  // the last one wins, as when applied in order
  }
  return found;
}

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(KafkaConfig, DefaultsFollowDapr) {
  auto config =
      Parse({{"brokers", " a:9092, b:9093 ,"}, {"authType", "none"}, {"consumerID", "app1"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->brokers, (std::vector<std::string>{"a:9092", "b:9093"}));
  EXPECT_EQ(Setting(config->common, "bootstrap.servers"), "a:9092,b:9093");
  EXPECT_EQ(config->consumer_group, "app1");  // consumerID, i.e. the app id
  EXPECT_EQ(Setting(config->consumer, "group.id"), "app1");
  EXPECT_EQ(Setting(config->common, "client.id"), "sarama");
  EXPECT_EQ(Setting(config->common, "security.protocol"), "PLAINTEXT");
  EXPECT_FALSE(config->initial_offset_oldest);
  EXPECT_EQ(Setting(config->consumer, "auto.offset.reset"), "latest");
  EXPECT_EQ(Setting(config->consumer, "enable.auto.commit"), "false");
  EXPECT_EQ(Setting(config->consumer, "enable.auto.offset.store"), "false");
  EXPECT_EQ(Setting(config->consumer, "session.timeout.ms"), "10000");
  EXPECT_EQ(Setting(config->consumer, "heartbeat.interval.ms"), "3000");
  EXPECT_EQ(Setting(config->consumer, "partition.assignment.strategy"), "range");
  EXPECT_EQ(Setting(config->producer, "acks"), "all");
  EXPECT_EQ(Setting(config->producer, "enable.idempotence"), "true");
  EXPECT_EQ(Setting(config->producer, "message.send.max.retries"), "5");
  EXPECT_EQ(Setting(config->producer, "compression.codec"), "none");
  EXPECT_EQ(config->max_message_bytes, 0);
  EXPECT_EQ(config->consume_retry_interval, std::chrono::milliseconds(100));
  EXPECT_EQ(config->max_in_flight_per_partition, 1);
}

TEST(KafkaConfig, ConsumerGroupWinsOverConsumerId) {
  auto config = Parse({{"brokers", "a:1"},
                       {"authType", "none"},
                       {"consumerGroup", "g"},
                       {"consumerID", "app"},
                       {"clientID", "me"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->consumer_group, "g");
  EXPECT_EQ(Setting(config->common, "client.id"), "me");
}

TEST(KafkaConfig, NoGroupIsFineForPublishingOnly) {
  auto config = Parse({{"brokers", "a:1"}, {"authType", "none"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->consumer_group, "");
  EXPECT_EQ(Setting(config->consumer, "group.id"), std::nullopt);
}

TEST(KafkaConfig, RequiredKeys) {
  auto no_brokers = Parse({{"authType", "none"}});
  ASSERT_FALSE(no_brokers.ok());
  EXPECT_EQ(no_brokers.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(no_brokers.status()), HasSubstr("brokers"));

  auto blank_brokers = Parse({{"brokers", " , "}, {"authType", "none"}});
  EXPECT_FALSE(blank_brokers.ok());

  auto no_auth = Parse({{"brokers", "a:1"}});
  ASSERT_FALSE(no_auth.ok());
  EXPECT_THAT(Message(no_auth.status()), HasSubstr("authType"));

  auto bad_auth = Parse({{"brokers", "a:1"}, {"authType", "kerberos"}});
  ASSERT_FALSE(bad_auth.ok());
  EXPECT_THAT(Message(bad_auth.status()), HasSubstr("kerberos"));

  auto aws = Parse({{"brokers", "a:1"}, {"authType", "awsiam"}});
  ASSERT_FALSE(aws.ok());
  EXPECT_EQ(aws.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(KafkaConfig, LegacyAuthRequired) {
  auto off = Parse({{"brokers", "a:1"}, {"authRequired", "false"}});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->auth_type, "none");

  auto password = Parse(
      {{"brokers", "a:1"}, {"authRequired", "true"}, {"saslUsername", "u"}, {"saslPassword", "p"}});
  ASSERT_TRUE(password.ok()) << password.status();
  EXPECT_EQ(password->auth_type, "password");

  auto mtls = Parse({{"brokers", "a:1"}, {"authRequired", "true"}});
  ASSERT_TRUE(mtls.ok()) << mtls.status();
  EXPECT_EQ(mtls->auth_type, "mtls");
  EXPECT_EQ(Setting(mtls->common, "security.protocol"), "SSL");

  EXPECT_FALSE(Parse({{"brokers", "a:1"}, {"authRequired", "maybe"}}).ok());
}

TEST(KafkaConfig, PasswordIsSaslOverTlsUnlessDisabled) {
  auto tls = Parse({{"brokers", "a:1"},
                    {"authType", "password"},
                    {"saslUsername", "u"},
                    {"saslPassword", "p"},
                    {"saslMechanism", "SHA-512"}});
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_EQ(Setting(tls->common, "security.protocol"), "SASL_SSL");
  EXPECT_EQ(Setting(tls->common, "sasl.mechanism"), "SCRAM-SHA-512");
  EXPECT_EQ(Setting(tls->common, "sasl.username"), "u");
  EXPECT_EQ(Setting(tls->common, "sasl.password"), "p");

  auto plain = Parse({{"brokers", "a:1"},
                      {"authType", "password"},
                      {"saslUsername", "u"},
                      {"saslPassword", "p"},
                      {"disableTls", "true"}});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(Setting(plain->common, "security.protocol"), "SASL_PLAINTEXT");
  EXPECT_EQ(Setting(plain->common, "sasl.mechanism"), "PLAIN");

  auto sha256 = Parse({{"brokers", "a:1"},
                       {"authType", "password"},
                       {"saslUsername", "u"},
                       {"saslPassword", "p"},
                       {"saslMechanism", "SHA-256"}});
  ASSERT_TRUE(sha256.ok());
  EXPECT_EQ(Setting(sha256->common, "sasl.mechanism"), "SCRAM-SHA-256");

  auto no_password = Parse({{"brokers", "a:1"}, {"authType", "password"}, {"saslUsername", "u"}});
  ASSERT_FALSE(no_password.ok());
  EXPECT_THAT(Message(no_password.status()), HasSubstr("saslPassword"));
}

TEST(KafkaConfig, TlsKeys) {
  const std::string pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
  const std::string key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----";
  auto mtls = Parse({{"brokers", "a:1"},
                     {"authType", "mtls"},
                     {"caCert", pem},
                     {"clientCert", pem},
                     {"clientKey", key},
                     {"skipVerify", "true"}});
  ASSERT_TRUE(mtls.ok()) << mtls.status();
  EXPECT_EQ(Setting(mtls->common, "security.protocol"), "SSL");
  EXPECT_EQ(Setting(mtls->common, "ssl.ca.pem"), pem);
  EXPECT_EQ(Setting(mtls->common, "ssl.certificate.pem"), pem);
  EXPECT_EQ(Setting(mtls->common, "ssl.key.pem"), key);
  EXPECT_EQ(Setting(mtls->common, "enable.ssl.certificate.verification"), "false");

  EXPECT_FALSE(Parse({{"brokers", "a:1"}, {"authType", "mtls"}, {"clientCert", pem}}).ok());
  EXPECT_FALSE(Parse({{"brokers", "a:1"}, {"authType", "mtls"}, {"disableTls", "true"}}).ok());
  EXPECT_FALSE(Parse({{"brokers", "a:1"}, {"authType", "certificate"}}).ok());
  EXPECT_FALSE(Parse({{"brokers", "a:1"}, {"authType", "none"}, {"caCert", "not pem"}}).ok());

  auto certificate = Parse({{"brokers", "a:1"}, {"authType", "certificate"}, {"caCert", pem}});
  ASSERT_TRUE(certificate.ok()) << certificate.status();
  EXPECT_EQ(Setting(certificate->common, "security.protocol"), "SSL");
  EXPECT_EQ(Setting(certificate->common, "ssl.ca.pem"), pem);

  // authType none turns TLS off, as in Dapr.
  auto none = Parse({{"brokers", "a:1"}, {"authType", "none"}, {"caCert", pem}});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(Setting(none->common, "security.protocol"), "PLAINTEXT");
  EXPECT_EQ(Setting(none->common, "ssl.ca.pem"), std::nullopt);
}

TEST(KafkaConfig, Oidc) {
  auto oidc = Parse({{"brokers", "a:1"},
                     {"authType", "oidc"},
                     {"oidcTokenEndpoint", "https://t"},
                     {"oidcClientID", "c"},
                     {"oidcClientSecret", "s"},
                     {"oidcScopes", "openid, kafka"},
                     {"oidcExtensions", R"({"a":"1","b":"2"})"}});
  ASSERT_TRUE(oidc.ok()) << oidc.status();
  EXPECT_EQ(Setting(oidc->common, "security.protocol"), "SASL_SSL");
  EXPECT_EQ(Setting(oidc->common, "sasl.mechanism"), "OAUTHBEARER");
  EXPECT_EQ(Setting(oidc->common, "sasl.oauthbearer.method"), "oidc");
  EXPECT_EQ(Setting(oidc->common, "sasl.oauthbearer.scope"), "openid kafka");
  EXPECT_EQ(Setting(oidc->common, "sasl.oauthbearer.extensions"), "a=1,b=2");
  EXPECT_FALSE(Parse({{"brokers", "a:1"},
                      {"authType", "oidc"},
                      {"oidcTokenEndpoint", "https://t"},
                      {"oidcClientID", "c"},
                      {"oidcClientSecret", "s"},
                      {"oidcExtensions", "[1]"}})
                   .ok());
}

TEST(KafkaConfig, ProducerAndConsumerKeys) {
  auto config = Parse({{"brokers", "a:1"},
                       {"authType", "none"},
                       {"initialOffset", "Oldest"},
                       {"maxMessageBytes", "2048"},
                       {"producerRequiredAcks", "local"},
                       {"producerRetryMax", "2"},
                       {"compression", "zstd"},
                       {"sessionTimeout", "30"},  // bare = seconds
                       {"heartbeatInterval", "500ms"},
                       {"consumerFetchMin", "10"},
                       {"consumerFetchDefault", "65536"},
                       {"consumerGroupRebalanceStrategy", "sticky"},
                       {"consumeRetryInterval", "250"},  // bare = milliseconds
                       {"maxInFlightPerPartition", "16"},
                       {"dialTimeout", "5s"},
                       {"readTimeout", "10s"},
                       {"writeTimeout", "20s"},
                       {"clientConnectionTopicMetadataRefreshInterval", "1m"},
                       {"clientConnectionKeepAliveInterval", "30s"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->initial_offset_oldest);
  EXPECT_EQ(Setting(config->consumer, "auto.offset.reset"), "earliest");
  EXPECT_EQ(config->max_message_bytes, 2048);
  EXPECT_EQ(Setting(config->producer, "message.max.bytes"), std::nullopt);
  EXPECT_EQ(Setting(config->producer, "acks"), "1");
  EXPECT_EQ(Setting(config->producer, "enable.idempotence"), "false");
  EXPECT_EQ(Setting(config->producer, "message.send.max.retries"), "2");
  EXPECT_EQ(Setting(config->producer, "compression.codec"), "zstd");
  EXPECT_EQ(Setting(config->consumer, "session.timeout.ms"), "30000");
  EXPECT_EQ(Setting(config->consumer, "heartbeat.interval.ms"), "500");
  EXPECT_EQ(Setting(config->consumer, "fetch.min.bytes"), "10");
  EXPECT_EQ(Setting(config->consumer, "max.partition.fetch.bytes"), "65536");
  EXPECT_EQ(Setting(config->consumer, "partition.assignment.strategy"), "cooperative-sticky");
  EXPECT_EQ(config->consume_retry_interval, std::chrono::milliseconds(250));
  EXPECT_EQ(config->max_in_flight_per_partition, 16);
  EXPECT_EQ(Setting(config->common, "socket.connection.setup.timeout.ms"), "5000");
  EXPECT_EQ(Setting(config->common, "socket.timeout.ms"), "20000");
  EXPECT_EQ(Setting(config->common, "topic.metadata.refresh.interval.ms"), "60000");
  EXPECT_EQ(Setting(config->common, "socket.keepalive.enable"), "true");

  auto big = Parse({{"brokers", "a:1"}, {"authType", "none"}, {"maxMessageBytes", "5000000"}});
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(Setting(big->producer, "message.max.bytes"), "5001024");
}

TEST(KafkaConfig, BadValuesNameTheKey) {
  const std::map<std::string, std::string> base = {{"brokers", "a:1"}, {"authType", "none"}};
  for (const auto& [key, value] :
       std::map<std::string, std::string>{{"initialOffset", "latest"},
                                          {"maxMessageBytes", "-1"},
                                          {"producerRequiredAcks", "some"},
                                          {"compression", "brotli"},
                                          {"sessionTimeout", "soon"},
                                          {"consumerGroupRebalanceStrategy", "random"},
                                          {"maxInFlightPerPartition", "0"},
                                          {"consumerFetchMin", "x"},
                                          {"disableTls", "perhaps"}}) {
    auto values = base;
    values[key] = value;
    auto config = Parse(values);
    ASSERT_FALSE(config.ok()) << key << "=" << value;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(Message(config.status()), HasSubstr(key)) << key;
  }
  auto inverted = Parse({{"brokers", "a:1"},
                         {"authType", "none"},
                         {"sessionTimeout", "2s"},
                         {"heartbeatInterval", "3s"}});
  EXPECT_FALSE(inverted.ok());
}

// Every name metadata.yaml lists, and only those, is read by ParseConfig (through the usage
// tracking that reports unknown keys to users). Auth-specific keys need one run per authType.
TEST(KafkaConfig, MetadataYamlInSync) {
  const char* source = std::getenv("REMORA_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "REMORA_SOURCE_DIR is not set (ctest sets it)";
  YAML::Node doc = YAML::LoadFile(std::string(source) + "/components/pubsub/kafka/metadata.yaml");
  std::set<std::string> documented;
  for (const YAML::Node& item : doc["metadata"]) documented.insert(item["name"].as<std::string>());

  const std::string pem = "-----BEGIN X-----\n-----END X-----";
  const std::map<std::string, std::string> common = {
      {"brokers", "a:1"},
      {"consumerGroup", "g"},
      {"clientID", "c"},
      {"disableTls", "false"},
      {"skipVerify", "false"},
      {"caCert", pem},
      {"initialOffset", "oldest"},
      {"maxMessageBytes", "1024"},
      {"producerRequiredAcks", "all"},
      {"producerRetryMax", "5"},
      {"compression", "none"},
      {"sessionTimeout", "10s"},
      {"heartbeatInterval", "3s"},
      {"consumerFetchMin", "1"},
      {"consumerFetchDefault", "1048576"},
      {"consumerGroupRebalanceStrategy", "range"},
      {"consumeRetryInterval", "100ms"},
      {"maxInFlightPerPartition", "1"},
      {"dialTimeout", "30s"},
      {"readTimeout", "30s"},
      {"writeTimeout", "30s"},
      {"clientConnectionTopicMetadataRefreshInterval", "8m"},
      {"clientConnectionKeepAliveInterval", "0"}};
  const std::vector<std::map<std::string, std::string>> runs = {
      {{"authType", "password"},
       {"saslUsername", "u"},
       {"saslPassword", "p"},
       {"saslMechanism", "SHA-256"}},
      {{"authType", "mtls"}, {"clientCert", pem}, {"clientKey", pem}},
      {{"authType", "oidc"},
       {"oidcTokenEndpoint", "https://t"},
       {"oidcClientID", "c"},
       {"oidcClientSecret", "s"},
       {"oidcScopes", "openid"},
       {"oidcExtensions", R"({"a":"b"})"}},
  };
  std::set<std::string> read;
  auto run = [&](std::map<std::string, std::string> values) {
    for (const auto& [k, v] : values) read.insert(k);
    components::Metadata metadata(values);
    absl::StatusOr<Config> config = ParseConfig(metadata);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_THAT(metadata.Unused(), IsEmpty()) << "documented keys ParseConfig ignores";
  };
  for (auto values : runs) {
    values.insert(common.begin(), common.end());
    run(values);
  }
  // consumerID and authRequired are read when consumerGroup and authType are absent.
  run({{"brokers", "a:1"}, {"consumerID", "app"}, {"authRequired", "false"}});
  EXPECT_EQ(documented, read) << "metadata.yaml and the keys this test gives differ";
}

}  // namespace
}  // namespace remora::components::pubsub::kafka
