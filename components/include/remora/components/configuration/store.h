#pragma once

// The configuration store contract. Every `configuration.*` component implements Store; the
// runtime's configuration building block (runtime/blocks/configuration) is the only caller.
//
// Example component YAML:
//
//   apiVersion: dapr.io/v1alpha1
//   kind: Component
//   metadata: { name: configstore }
//   spec:
//     type: configuration.redis
//     version: v1
//     metadata:
//       - { name: redisHost, value: "localhost:6379" }
//
// Semantics (Dapr's, contract §2.6 and §5.6):
//   - Get with no keys means every key the store has. A key that does not exist is left out of
//     the answer (not an error).
//   - Subscribe with no keys means every key. The handler gets one UpdateEvent per change; a
//     deleted key arrives as an item with an empty value and version. The subscription id is
//     chosen by the store (a UUID) and is valid until Unsubscribe or the store's destruction.
//   - Unsubscribe of an id the store does not know is NOT_FOUND.
//
// Threading: every method may be called concurrently from any thread. Get's callback is invoked
// exactly once, inline or later on any thread. A subscription's handler runs on any thread but
// never concurrently with itself; once Unsubscribe returned (or the store is destroyed) it is not
// called again.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "remora/components/common/callback.h"

namespace remora::components::configuration {

using RequestMetadata = std::map<std::string, std::string>;

struct Item {
  std::string value;
  std::string version;
  std::map<std::string, std::string> metadata;
};

// key -> item. Ordered, so answers render the same way every time.
using Items = std::map<std::string, Item>;

struct GetRequest {
  std::vector<std::string> keys;  // empty: every key
  RequestMetadata metadata;
};

struct SubscribeRequest {
  std::vector<std::string> keys;  // empty: every key
  RequestMetadata metadata;
};

// One change: the subscription it belongs to and the changed items.
struct UpdateEvent {
  std::string id;
  Items items;
};

using UpdateHandler = absl::AnyInvocable<void(UpdateEvent)>;

class Store {
 public:
  virtual ~Store() = default;

  virtual void Get(GetRequest request, Callback<Items> done) = 0;

  // Starts watching `request.keys`; answers the subscription id once the store is listening
  // (changes made after the callback are delivered). Errors: the backend cannot be reached.
  virtual void Subscribe(SubscribeRequest request, UpdateHandler handler,
                         Callback<std::string> done) = 0;

  // Stops a subscription. NOT_FOUND when `id` is unknown (or already unsubscribed).
  virtual absl::Status Unsubscribe(const std::string& id) = 0;

  // OK when the backend is reachable, for /v1.0/healthz/outbound.
  virtual absl::Status Health() const = 0;
};

}  // namespace remora::components::configuration
