#pragma once

// The CloudEvents 1.0 envelope daprd builds on publish (contract §3) and its subscriber-side
// reading. Pure functions: no I/O, unit-tested against the contract.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace remora::runtime::pubsub {

struct EnvelopeInput {
  std::string data;          // the publisher's body
  std::string content_type;  // HTTP Content-Type / gRPC data_content_type / bulk contentType
  std::string topic;
  std::string pubsub_name;
  std::string app_id;       // default `source`
  std::string traceparent;  // of the publish span ("" when none)
  std::string tracestate;
  // Request metadata: cloudevent.{id,source,type,subject,traceid,traceparent,tracestate}
  // overrides (keys matched case-insensitively) and ttlInSeconds / ttl.
  std::map<std::string, std::string> metadata;
  bool broker_has_message_ttl = false;  // MESSAGE_TTL: no `expiration` in the envelope
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
};

// Returns the envelope JSON. Errors (ERR_PUBSUB_CLOUD_EVENTS_SER) carry the Dapr code: a
// cloudevents+json body that is not a JSON object, an unparsable ttl.
absl::StatusOr<std::string> BuildEnvelope(const EnvelopeInput& in);

// True for application/json and +json types, ignoring case and parameters.
bool IsJsonContentType(std::string_view content_type);

// `rawPayload: "true"` in metadata (case-insensitive value); error for a value that is not a bool.
absl::StatusOr<bool> RawPayload(const std::map<std::string, std::string>& metadata);

// Subscriber side: the message as a CloudEvent object. With `raw_payload` the bytes are wrapped
// in a synthetic event (data_base64, octet-stream) as daprd does; otherwise they must be
// CloudEvent JSON (an error when not).
absl::StatusOr<nlohmann::json> ReadEvent(std::string_view data, bool raw_payload,
                                         std::string_view topic, std::string_view pubsub_name);

// True when the event has an `expiration` in the past (daprd drops those before delivery).
bool Expired(const nlohmann::json& event, std::chrono::system_clock::time_point now);

// RFC 3339 with second precision in UTC ("2026-11-22T15:04:05Z"), as Go's time.RFC3339.
std::string Rfc3339(std::chrono::system_clock::time_point t);

}  // namespace remora::runtime::pubsub
