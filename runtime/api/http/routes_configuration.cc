// The configuration routes (contract §2.6), under both /v1.0 and /v1.0-alpha1.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/http/call.h"
#include "api/http/routes.h"
#include "blocks/configuration/configuration_block.h"
#include "remora/components/common/strings.h"

namespace remora::runtime::http {
namespace {

using errors::Code;
using nlohmann::json;

// Every `key=` of the query, in order: Call's Query keeps only the first value of a parameter
// and Dapr reads all of them (?key=a&key=b).
std::vector<std::string> KeysOf(std::string_view raw) {
  auto unescape = [](std::string_view in) -> std::optional<std::string> {
    std::string out;
    for (size_t i = 0; i < in.size(); ++i) {
      if (in[i] == '+') {
        out.push_back(' ');
      } else if (in[i] == '%') {
        if (i + 2 >= in.size()) return std::nullopt;
        auto hex = [](char h) -> int {
          if (h >= '0' && h <= '9') return h - '0';
          if (h >= 'a' && h <= 'f') return h - 'a' + 10;
          if (h >= 'A' && h <= 'F') return h - 'A' + 10;
          return -1;
        };
        int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
      } else {
        out.push_back(in[i]);
      }
    }
    return out;
  };
  std::vector<std::string> keys;
  while (!raw.empty()) {
    size_t amp = raw.find('&');
    std::string_view pair = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view() : raw.substr(amp + 1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos || pair.substr(0, eq) != "key") continue;
    // The whole query was validated by the router, so a bad escape cannot get here.
    if (auto key = unescape(pair.substr(eq + 1)); key && !key->empty()) {
      keys.push_back(*std::move(key));
    }
  }
  return keys;
}

absl::Status NotConfigured() {
  return errors::Make(Code::kConfigurationStoreNotConfigured,
                      "configuration stores not configured");
}

json ItemsJson(const configuration::Items& items) {
  json out = json::object();
  for (const auto& [key, item] : items) {
    out[key] = {{"value", item.value}, {"version", item.version}, {"metadata", item.metadata}};
  }
  return out;
}

}  // namespace

// 200 with {"<key>": {"value","version","metadata"}}; 204 when no key has a value.
void DaprHttpApi::GetConfiguration(Call& call, std::string_view store) {
  if (blocks_.configuration == nullptr) return std::move(call.responder).Error(NotConfigured());
  configuration::GetRequest request;
  request.keys = KeysOf(call.query.raw);
  request.metadata = std::move(call.query.metadata);
  blocks_.configuration->Get(
      store, std::move(request),
      [r = std::move(call.responder)](absl::StatusOr<configuration::Items> items) mutable {
        if (!items.ok()) return std::move(r).Error(items.status());
        if (items->empty()) return std::move(r).NoContent();
        std::move(r).Json(ItemsJson(*items));
      });
}

// 200 {"id":"<subscription id>"}; updates go to the app as POST /configuration/{store}/{key}.
void DaprHttpApi::SubscribeConfiguration(Call& call, std::string_view store) {
  if (blocks_.configuration == nullptr) return std::move(call.responder).Error(NotConfigured());
  configuration::SubscribeRequest request;
  request.keys = KeysOf(call.query.raw);
  request.metadata = std::move(call.query.metadata);
  blocks_.configuration->SubscribeForApp(
      store, std::move(request),
      [r = std::move(call.responder)](absl::StatusOr<std::string> id) mutable {
        if (!id.ok()) return std::move(r).Error(id.status());
        std::move(r).Json(json{{"id", *id}});
      });
}

// 200 {"ok":true}; an unknown subscription 500 {"ok":false,"message":"..."} as daprd answers.
void DaprHttpApi::UnsubscribeConfiguration(Call& call, std::string_view store,
                                           std::string_view id) {
  if (blocks_.configuration == nullptr) return std::move(call.responder).Error(NotConfigured());
  absl::Status s = blocks_.configuration->Unsubscribe(store, std::string(id));
  if (s.ok()) return std::move(call.responder).Json(json{{"ok", true}});
  Code code;
  if (errors::CodeOf(s, &code) && code == Code::kConfigurationUnsubscribe) {
    return std::move(call.responder)
        .Body(500, json{{"ok", false}, {"message", MessageOf(s)}}.dump(-1, ' ', false, kDump),
              "application/json");
  }
  std::move(call.responder).Error(s);
}

}  // namespace remora::runtime::http
