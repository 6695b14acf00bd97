#include "blocks/pubsub/cloudevents.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <vector>

#include "absl/strings/escaping.h"
#include "remora/components/common/metadata.h"
#include "remora/components/common/strings.h"
#include "remora/components/common/uuid.h"
#include "remora/runtime/errors.h"

namespace remora::runtime::pubsub {
namespace {

using errors::Code;
using nlohmann::json;
constexpr auto kReplace = json::error_handler_t::replace;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The media type without parameters, lower-cased.
std::string MediaType(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  while (!type.empty() && type.front() == ' ') type.remove_prefix(1);
  return Lower(type);
}

bool IsBinary(const std::string& media_type) {
  return media_type == "application/octet-stream" ||
         media_type == "application/cloudevents+protobuf" || media_type == "application/x-protobuf";
}

// cloudevent.* overrides, keys compared case-insensitively.
std::optional<std::string> Override(const std::map<std::string, std::string>& metadata,
                                    std::string_view name) {
  std::string wanted = StrCat("cloudevent.", name);
  for (const auto& [k, v] : metadata) {
    if (Lower(k) == wanted) return v;
  }
  return std::nullopt;
}

// ttlInSeconds (integer) or ttl (Go duration or integer seconds); nullopt when neither is set.
absl::StatusOr<std::optional<std::chrono::seconds>> Ttl(
    const std::map<std::string, std::string>& metadata) {
  for (const auto& [k, v] : metadata) {
    std::string key = Lower(k);
    if (key != "ttlinseconds" && key != "ttl") continue;
    int64_t seconds = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
    if (ec == std::errc() && end == v.data() + v.size()) {
      return std::optional<std::chrono::seconds>(seconds);
    }
    if (key == "ttl") {
      auto d = components::ParseGoDuration(v);
      if (d.ok()) {
        return std::optional<std::chrono::seconds>(
            std::chrono::duration_cast<std::chrono::seconds>(*d));
      }
    }
    return errors::Make(Code::kPubsubRequestMetadata,
                        StrCat("invalid ", k, " '", v, "': expected a number of seconds"));
  }
  return std::optional<std::chrono::seconds>();
}

void AppendField(std::string* out, std::string_view name, const json& value) {
  StrAppend(out, out->size() > 1 ? "," : "", json(std::string(name)).dump(), ":",
            value.dump(-1, ' ', false, kReplace));
}

}  // namespace

bool IsJsonContentType(std::string_view content_type) {
  std::string type = MediaType(content_type);
  return type == "application/json" || type.ends_with("+json");
}

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm;
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

absl::StatusOr<std::string> BuildEnvelope(const EnvelopeInput& in) {
  auto ttl = Ttl(in.metadata);
  if (!ttl.ok()) return ttl.status();
  std::string traceparent = in.traceparent;
  if (auto v = Override(in.metadata, "traceid")) traceparent = *v;
  if (auto v = Override(in.metadata, "traceparent")) traceparent = *v;
  std::string tracestate = Override(in.metadata, "tracestate").value_or(in.tracestate);
  std::optional<std::string> expiration;
  if (ttl->has_value() && !in.broker_has_message_ttl) {
    expiration = Rfc3339(in.now + **ttl);
  }
  const std::string media_type = MediaType(in.content_type);

  if (media_type == "application/cloudevents+json") {
    // Case B: the publisher's own CloudEvent, completed and re-addressed.
    json event = json::parse(in.data, nullptr, /*allow_exceptions=*/false);
    if (event.is_discarded() || !event.is_object()) {
      return errors::Make(Code::kPubsubCloudEventsSer,
                          "the body is not a CloudEvent: expected a JSON object for content type "
                          "application/cloudevents+json");
    }
    if (!event.contains("time")) event["time"] = Rfc3339(in.now);
    if (!event.contains("traceid")) {
      event["traceid"] = traceparent;
      event["traceparent"] = traceparent;
    }
    if (!event.contains("tracestate")) event["tracestate"] = tracestate;
    event["topic"] = in.topic;
    event["pubsubname"] = in.pubsub_name;
    if (!event.contains("source")) event["source"] = in.app_id.empty() ? "Dapr" : in.app_id;
    if (!event.contains("type")) event["type"] = "com.dapr.event.sent";
    if (!event.contains("specversion")) event["specversion"] = "1.0";
    if (expiration && !event.contains("expiration")) event["expiration"] = *expiration;
    return event.dump(-1, ' ', false, kReplace);
  }

  // Case A: daprd's envelope. Written by hand in Go's (sorted) key order so that a JSON body is
  // embedded verbatim, numbers exactly as the publisher wrote them.
  std::string out = "{";
  if (IsBinary(media_type)) {
    AppendField(&out, "data_base64", absl::Base64Escape(Sv(in.data)));
  } else if (IsJsonContentType(media_type) && json::accept(in.data)) {
    StrAppend(&out, "\"data\":", in.data);
  } else {
    AppendField(&out, "data", in.data);
  }
  AppendField(&out, "datacontenttype", in.content_type.empty() ? "text/plain" : in.content_type);
  if (expiration) AppendField(&out, "expiration", *expiration);
  AppendField(&out, "id", Override(in.metadata, "id").value_or(NewUuid()));
  AppendField(&out, "pubsubname", in.pubsub_name);
  AppendField(&out, "source",
              Override(in.metadata, "source").value_or(in.app_id.empty() ? "Dapr" : in.app_id));
  AppendField(&out, "specversion", "1.0");
  if (auto subject = Override(in.metadata, "subject")) AppendField(&out, "subject", *subject);
  AppendField(&out, "time", Rfc3339(in.now));
  AppendField(&out, "topic", in.topic);
  AppendField(&out, "traceid", traceparent);
  AppendField(&out, "traceparent", traceparent);
  AppendField(&out, "tracestate", tracestate);
  AppendField(&out, "type", Override(in.metadata, "type").value_or("com.dapr.event.sent"));
  out.push_back('}');
  return out;
}

absl::StatusOr<bool> RawPayload(const std::map<std::string, std::string>& metadata) {
  for (const auto& [k, v] : metadata) {
    if (Lower(k) != "rawpayload") continue;
    std::string value = Lower(v);
    if (value == "true" || value == "1" || value == "t") return true;
    if (value == "false" || value == "0" || value == "f" || value.empty()) return false;
    return errors::Make(Code::kPubsubRequestMetadata,
                        StrCat("rawPayload value must be a valid boolean: actual is '", v, "'"));
  }
  return false;
}

absl::StatusOr<json> ReadEvent(std::string_view data, bool raw_payload, std::string_view topic,
                               std::string_view pubsub_name) {
  if (raw_payload) {
    return json{{"id", NewUuid()},
                {"specversion", "1.0"},
                {"datacontenttype", "application/octet-stream"},
                {"source", "Dapr"},
                {"type", "com.dapr.event.sent"},
                {"topic", std::string(topic)},
                {"pubsubname", std::string(pubsub_name)},
                {"data_base64", absl::Base64Escape(Sv(data))}};
  }
  json event = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (event.is_discarded() || !event.is_object()) {
    return errors::Make(Code::kPubsubUnmarshalEvents,
                        StrCat("the message on topic ", topic,
                               " is not a CloudEvent (set rawPayload to receive raw messages)"));
  }
  return event;
}

bool Expired(const json& event, std::chrono::system_clock::time_point now) {
  auto it = event.find("expiration");
  if (it == event.end() || !it->is_string()) return false;
  // daprd writes expirations in UTC; the seconds part is what counts.
  const std::string& expiration = it->get_ref<const std::string&>();
  std::tm tm = {};
  if (strptime(expiration.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return false;
  std::time_t when = timegm(&tm);
  return std::chrono::system_clock::from_time_t(when) < now;
}

}  // namespace remora::runtime::pubsub
