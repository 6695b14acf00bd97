#pragma once

// The consuming half of pubsub.kafka: one librdkafka consumer per subscription (see
// kafka_pubsub.h for the delivery contract it keeps).

#include <memory>

#include "absl/status/statusor.h"
#include "kafka_pubsub.h"

namespace remora::components::pubsub::kafka {

// Creates the consumer, subscribes it to `request.topic` in `config.consumer_group` and starts
// its poll thread. Returns at once: the group join and the first assignment happen in the
// background. Destroying the result stops delivery and commits what was acked.
absl::StatusOr<std::unique_ptr<Subscription>> StartSubscription(const Config& config,
                                                                SubscribeRequest request,
                                                                Handler handler);

}  // namespace remora::components::pubsub::kafka
