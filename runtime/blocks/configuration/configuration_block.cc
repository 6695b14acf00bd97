#include "blocks/configuration/configuration_block.h"

#include <utility>

#include "nlohmann/json.hpp"
#include "remora/components/common/http/client.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/errors.h"
#include "remora/runtime/log.h"

namespace remora::runtime {

using errors::Code;

namespace {

std::string JoinKeys(const std::vector<std::string>& keys) {
  std::string out;
  for (const std::string& key : keys) StrAppend(&out, out.empty() ? "" : ",", key);
  return out;
}

// A key as one path segment of the update POST: anything but unreserved characters escaped, so a
// key with '/' or spaces still reaches the app as one segment.
std::string EscapeSegment(std::string_view in) { return remora::http::PercentEncode(in); }

}  // namespace

ConfigurationBlock::ConfigurationBlock() = default;

ConfigurationBlock::~ConfigurationBlock() {
  // Stores first: their subscriptions stop before the HTTP client their handlers post through.
  stores_.clear();
  app_client_.reset();
}

void ConfigurationBlock::AddStore(std::string name, std::string type, std::string version,
                                  std::unique_ptr<configuration::Store> store) {
  Entry entry;
  entry.info = {name, std::move(type), std::move(version)};
  entry.store = std::move(store);
  stores_.insert_or_assign(std::move(name), std::move(entry));
}

void ConfigurationBlock::SetApp(boost::asio::io_context& io, AppAddress app) {
  app_ = std::move(app);
  app_client_ = std::make_unique<::remora::http::Client>(io);
}

absl::StatusOr<ConfigurationBlock::Entry*> ConfigurationBlock::Lookup(
    std::string_view store) const {
  if (stores_.empty()) {
    return errors::Make(Code::kConfigurationStoreNotConfigured,
                        "configuration stores not configured");
  }
  auto it = stores_.find(store);
  if (it == stores_.end()) {
    return errors::Make(Code::kConfigurationStoreNotFound,
                        StrCat("configuration store ", store, " not found"));
  }
  return const_cast<Entry*>(&it->second);
}

void ConfigurationBlock::Get(std::string_view store, configuration::GetRequest request,
                             Callback<configuration::Items> done) {
  auto entry = Lookup(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  std::string keys = JoinKeys(request.keys);
  (*entry)->store->Get(
      std::move(request),
      [keys = std::move(keys), name = std::string(store),
       done = std::move(done)](absl::StatusOr<configuration::Items> result) mutable {
        if (!result.ok()) {
          return std::move(done)(errors::Make(
              Code::kConfigurationGet, StrCat("failed to get ", keys, " from Configuration store ",
                                              name, ": ", MessageOf(result.status()))));
        }
        std::move(done)(std::move(result));
      });
}

void ConfigurationBlock::Subscribe(std::string_view store, configuration::SubscribeRequest request,
                                   configuration::UpdateHandler handler,
                                   std::function<void()> on_unsubscribed,
                                   Callback<std::string> done) {
  auto entry = Lookup(store);
  if (!entry.ok()) return std::move(done)(entry.status());
  std::string keys = JoinKeys(request.keys);
  (*entry)->store->Subscribe(
      std::move(request), std::move(handler),
      [this, keys = std::move(keys), name = std::string(store),
       on_unsubscribed = std::move(on_unsubscribed),
       done = std::move(done)](absl::StatusOr<std::string> id) mutable {
        if (!id.ok()) {
          return std::move(done)(
              errors::Make(Code::kConfigurationSubscribe,
                           StrCat("failed to subscribe ", keys, " from Configuration store ", name,
                                  ": ", MessageOf(id.status()))));
        }
        {
          std::lock_guard lock(mu_);
          active_[*id] = Active{name, std::move(on_unsubscribed)};
        }
        std::move(done)(std::move(id));
      });
}

void ConfigurationBlock::SubscribeForApp(std::string_view store,
                                         configuration::SubscribeRequest request,
                                         Callback<std::string> done) {
  if (!app_client_) {
    return std::move(done)(errors::Make(Code::kAppChannelNil, "app channel is not initialized"));
  }
  Subscribe(
      store, std::move(request),
      [this, name = std::string(store)](configuration::UpdateEvent event) {
        PostToApp(name, std::move(event));
      },
      nullptr, std::move(done));
}

void ConfigurationBlock::PostToApp(const std::string& store, configuration::UpdateEvent event) {
  for (auto& [key, item] : event.items) {
    nlohmann::json body = {
        {"id", event.id},
        {"items",
         {{key, {{"value", item.value}, {"version", item.version}, {"metadata", item.metadata}}}}}};
    ::remora::http::Request request;
    request.method = "POST";
    request.target = StrCat("/configuration/", EscapeSegment(store), "/", EscapeSegment(key));
    request.headers.emplace_back("Content-Type", "application/json");
    if (!app_.api_token.empty()) request.headers.emplace_back("dapr-api-token", app_.api_token);
    request.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    app_client_->Send(app_.host, app_.port, std::move(request),
                      [store, key = key](absl::StatusOr<::remora::http::Response> response) {
                        if (!response.ok()) {
                          log::Error("configuration ", store, ": delivering the update of key ",
                                     key, " to the app failed: ", MessageOf(response.status()));
                        } else if (response->status < 200 || response->status > 299) {
                          log::Error("configuration ", store, ": the app answered ",
                                     response->status, " to the update of key ", key);
                        }
                      });
  }
}

absl::Status ConfigurationBlock::Unsubscribe(std::string_view store, const std::string& id) {
  auto entry = Lookup(store);
  if (!entry.ok()) return entry.status();
  std::function<void()> on_unsubscribed;
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    if (it == active_.end() || it->second.store != store) {
      return errors::Make(Code::kConfigurationUnsubscribe,
                          StrCat("failed to unsubscribe to configuration request ", id,
                                 ": subscription does not exist"));
    }
    on_unsubscribed = std::move(it->second.on_unsubscribed);
    active_.erase(it);
  }
  absl::Status s = (*entry)->store->Unsubscribe(id);
  if (on_unsubscribed) on_unsubscribed();
  if (!s.ok()) {
    return errors::Make(
        Code::kConfigurationUnsubscribe,
        StrCat("failed to unsubscribe to configuration request ", id, ": ", MessageOf(s)));
  }
  return absl::OkStatus();
}

std::vector<ConfigurationBlock::StoreInfo> ConfigurationBlock::Stores() const {
  std::vector<StoreInfo> out;
  for (const auto& [name, entry] : stores_) out.push_back(entry.info);
  return out;
}

absl::Status ConfigurationBlock::Health() const {
  for (const auto& [name, entry] : stores_) {
    if (absl::Status s = entry.store->Health(); !s.ok()) {
      return MakeStatus(s.code(), StrCat("configuration store ", name, ": ", MessageOf(s)));
    }
  }
  return absl::OkStatus();
}

}  // namespace remora::runtime
