#pragma once

// Component registry keyed "<spec.type>/<spec.version>", e.g. "state.redis/v1". Registration is
// explicit (RegisterBuiltinComponents, one line per component); registering a key twice is an
// error, and so is asking for a type nobody registered.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "remora/components/common/context.h"
#include "remora/components/common/strings.h"
#include "remora/components/configuration/store.h"
#include "remora/components/lock/store.h"
#include "remora/components/pubsub/pubsub.h"
#include "remora/components/secretstores/secretstore.h"
#include "remora/components/state/store.h"

namespace remora::runtime {

template <typename Interface>
using Factory =
    std::function<absl::StatusOr<std::unique_ptr<Interface>>(const components::ComponentContext&)>;

template <typename Interface>
class KindRegistry {
 public:
  absl::Status Register(std::string_view type, std::string_view version,
                        Factory<Interface> factory) {
    std::string key = StrCat(type, "/", version);
    if (!factories_.emplace(key, std::move(factory)).second) {
      return MakeStatus(absl::StatusCode::kAlreadyExists,
                        StrCat("component ", key, " is registered twice"));
    }
    return absl::OkStatus();
  }
  // Null when nothing is registered under that type and version.
  const Factory<Interface>* Find(std::string_view type, std::string_view version) const {
    auto it = factories_.find(StrCat(type, "/", version));
    return it == factories_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> Keys() const {
    std::vector<std::string> keys;
    for (const auto& [key, _] : factories_) keys.push_back(key);
    return keys;
  }

 private:
  std::map<std::string, Factory<Interface>> factories_;
};

class Registry {
 public:
  KindRegistry<components::state::Store>& state() { return state_; }
  const KindRegistry<components::state::Store>& state() const { return state_; }
  KindRegistry<components::pubsub::PubSub>& pubsub() { return pubsub_; }
  const KindRegistry<components::pubsub::PubSub>& pubsub() const { return pubsub_; }
  KindRegistry<components::configuration::Store>& configuration() { return configuration_; }
  const KindRegistry<components::configuration::Store>& configuration() const {
    return configuration_;
  }
  KindRegistry<components::lock::Store>& lock() { return lock_; }
  const KindRegistry<components::lock::Store>& lock() const { return lock_; }
  KindRegistry<components::secretstores::SecretStore>& secretstores() { return secretstores_; }
  const KindRegistry<components::secretstores::SecretStore>& secretstores() const {
    return secretstores_;
  }

 private:
  KindRegistry<components::state::Store> state_;
  KindRegistry<components::pubsub::PubSub> pubsub_;
  KindRegistry<components::secretstores::SecretStore> secretstores_;
  KindRegistry<components::lock::Store> lock_;
  KindRegistry<components::configuration::Store> configuration_;
};

// Registers every component compiled into this build (CMake options REMORA_<KIND>_<NAME>).
absl::Status RegisterBuiltinComponents(Registry& registry);

}  // namespace remora::runtime
