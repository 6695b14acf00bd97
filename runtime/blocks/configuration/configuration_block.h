#pragma once

// The configuration building block (contract §2.6, §1.2): protocol-free. HTTP and gRPC call
// Get/Subscribe/Unsubscribe; store lookup and the mapping of component errors to Dapr's codes
// happen here, once:
//   no configuration stores  ERR_CONFIGURATION_STORE_NOT_CONFIGURED  500 / FAILED_PRECONDITION
//   unknown store            ERR_CONFIGURATION_STORE_NOT_FOUND       400 / INVALID_ARGUMENT
//   component Get failure    ERR_CONFIGURATION_GET                   500 / INTERNAL
//   Subscribe failure        ERR_CONFIGURATION_SUBSCRIBE             500 / INTERNAL
//   unknown subscription id  ERR_CONFIGURATION_UNSUBSCRIBE           500 / INTERNAL
//   HTTP subscribe, no app   ERR_APP_CHANNEL_NIL                     500
//
// Two kinds of subscribers: a gRPC stream passes its own handler to Subscribe; the HTTP API's
// SubscribeForApp delivers every update to the app as POST /configuration/{store}/{key} (one POST
// per changed key, body {"id","items":{"<key>":{"value","version","metadata"}}}, `items` a map as
// in daprd, contract §8.3) over the one HTTP client, to the address SetApp gave. The app must
// answer 2xx; anything else is logged.
//
// Threading: stores are added (and SetApp called) before the APIs serve; afterwards every method
// is thread-safe. Destroy the block before the io_context its stores and HTTP client run on.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "remora/components/configuration/store.h"

namespace boost::asio {
class io_context;
}
namespace remora::http {
class Client;
}

namespace remora::runtime {

namespace configuration = components::configuration;

class ConfigurationBlock {
 public:
  struct StoreInfo {
    std::string name;
    std::string type;
    std::string version;
  };
  // Where SubscribeForApp POSTs updates (--app-channel-address, --app-port, APP_API_TOKEN).
  struct AppAddress {
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    std::string api_token;  // sent as dapr-api-token when non-empty
  };

  ConfigurationBlock();
  ~ConfigurationBlock();

  void AddStore(std::string name, std::string type, std::string version,
                std::unique_ptr<configuration::Store> store);
  // Enables SubscribeForApp. Without it, SubscribeForApp answers ERR_APP_CHANNEL_NIL.
  void SetApp(boost::asio::io_context& io, AppAddress app);

  void Get(std::string_view store, configuration::GetRequest request,
           Callback<configuration::Items> done);

  // Subscribes `handler` (gRPC streams); `done` gets the subscription id. `on_unsubscribed` (may
  // be null) runs once, on the thread calling Unsubscribe, after Unsubscribe(id) has stopped the
  // handler, whoever called it: a gRPC stream ends itself there.
  void Subscribe(std::string_view store, configuration::SubscribeRequest request,
                 configuration::UpdateHandler handler, std::function<void()> on_unsubscribed,
                 Callback<std::string> done);
  // Subscribes on behalf of the app: updates are POSTed to it (see above).
  void SubscribeForApp(std::string_view store, configuration::SubscribeRequest request,
                       Callback<std::string> done);
  // Ends subscription `id` of `store`. The store-lookup errors above; an unknown id is
  // ERR_CONFIGURATION_UNSUBSCRIBE "failed to unsubscribe to configuration request <id>:
  // subscription does not exist".
  absl::Status Unsubscribe(std::string_view store, const std::string& id);

  std::vector<StoreInfo> Stores() const;
  // First unhealthy store's status, for /v1.0/healthz/outbound.
  absl::Status Health() const;

 private:
  struct Entry {
    StoreInfo info;
    std::unique_ptr<configuration::Store> store;
  };
  struct Active {
    std::string store;
    std::function<void()> on_unsubscribed;
  };
  absl::StatusOr<Entry*> Lookup(std::string_view store) const;
  void PostToApp(const std::string& store, configuration::UpdateEvent event);

  std::map<std::string, Entry, std::less<>> stores_;
  AppAddress app_;
  std::unique_ptr<::remora::http::Client> app_client_;  // set by SetApp
  std::mutex mu_;
  std::map<std::string, Active> active_;  // subscription id -> owner
};

}  // namespace remora::runtime
