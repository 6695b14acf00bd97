#pragma once

// Small pieces the producer and the consumers share.

#include <librdkafka/rdkafka.h>

#include <initializer_list>
#include <string_view>

#include "absl/status/statusor.h"
#include "kafka_pubsub.h"

namespace remora::components::pubsub::kafka {

// A librdkafka configuration with every setting of every list applied in order, librdkafka's log
// routed to stderr at warning level and above. INVALID_ARGUMENT names the property librdkafka
// refused (e.g. a SASL mechanism this build lacks). The caller owns the result.
absl::StatusOr<rd_kafka_conf_t*> NewConf(std::initializer_list<const Settings*> settings);

// A status for a librdkafka error code: broker and transport trouble is UNAVAILABLE, a local
// timeout DEADLINE_EXCEEDED, a too large record INVALID_ARGUMENT, the rest INTERNAL.
absl::Status KafkaError(rd_kafka_resp_err_t err, std::string_view context);

}  // namespace remora::components::pubsub::kafka
