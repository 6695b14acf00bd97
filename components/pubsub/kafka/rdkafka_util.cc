#include "rdkafka_util.h"

#include <cstdio>

#include "remora/components/common/strings.h"

namespace remora::components::pubsub::kafka {
namespace {

// Components have no logger of their own; librdkafka's warnings go to stderr in one line each.
void LogLine(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  std::fprintf(stderr, "pubsub.kafka %s %s: %s\n", rk != nullptr ? rd_kafka_name(rk) : "-",
               facility, message);
}

}  // namespace

absl::StatusOr<rd_kafka_conf_t*> NewConf(std::initializer_list<const Settings*> settings) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char error[512];
  auto set = [&](const std::string& name, const std::string& value) -> absl::Status {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof(error)) !=
        RD_KAFKA_CONF_OK) {
      return MakeStatus(absl::StatusCode::kInvalidArgument,
                        StrCat("pubsub.kafka: librdkafka refused ", name, ": ", error));
    }
    return absl::OkStatus();
  };
  absl::Status status = set("log_level", "4");
  for (const Settings* list : settings) {
    for (const auto& [name, value] : *list) {
      if (status.ok()) status = set(name, value);
    }
  }
  if (!status.ok()) {
    rd_kafka_conf_destroy(conf);
    return status;
  }
  rd_kafka_conf_set_log_cb(conf, LogLine);
  return conf;
}

absl::Status KafkaError(rd_kafka_resp_err_t err, std::string_view context) {
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (err) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
      code = absl::StatusCode::kUnavailable;
      break;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
      code = absl::StatusCode::kDeadlineExceeded;
      break;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
      code = absl::StatusCode::kPermissionDenied;
      break;
    default:
      break;
  }
  return MakeStatus(code, StrCat("kafka: ", context, ": ", rd_kafka_err2str(err)));
}

}  // namespace remora::components::pubsub::kafka
