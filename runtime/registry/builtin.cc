#include "remora/runtime/registry.h"

#ifdef REMORA_WITH_STATE_MEMORY
#include "memory_store.h"
#endif
#ifdef REMORA_WITH_SECRETSTORES_LOCAL_FILE
#include "local_file_store.h"
#endif
#ifdef REMORA_WITH_SECRETSTORES_LOCAL_ENV
#include "local_env_store.h"
#endif
#ifdef REMORA_WITH_SECRETSTORES_VAULT
#include "vault_store.h"
#endif
#ifdef REMORA_WITH_STATE_REDIS
#include "redis_store.h"
#endif
#ifdef REMORA_WITH_PUBSUB_MEMORY
#include "memory_pubsub.h"
#endif
#ifdef REMORA_WITH_PUBSUB_REDIS
#include "redis_pubsub.h"
#endif
#ifdef REMORA_WITH_PUBSUB_KAFKA
#include "kafka_pubsub.h"
#endif
#ifdef REMORA_WITH_LOCK_REDIS
#include "redis_lock.h"
#endif
#ifdef REMORA_WITH_CONFIGURATION_REDIS
#include "redis_configuration.h"
#endif

namespace remora::runtime {

// One line per component compiled into this build.
absl::Status RegisterBuiltinComponents(Registry& registry) {
  absl::Status status;
#ifdef REMORA_WITH_STATE_MEMORY
  status.Update(
      registry.state().Register("state.in-memory", "v1", components::state::memory::Create));
#endif
#ifdef REMORA_WITH_STATE_REDIS
  status.Update(registry.state().Register("state.redis", "v1", components::state::redis::Create));
#endif
#ifdef REMORA_WITH_SECRETSTORES_LOCAL_FILE
  status.Update(registry.secretstores().Register("secretstores.local.file", "v1",
                                                 components::secretstores::local_file::Create));
#endif
#ifdef REMORA_WITH_SECRETSTORES_LOCAL_ENV
  status.Update(registry.secretstores().Register("secretstores.local.env", "v1",
                                                 components::secretstores::local_env::Create));
#endif
#ifdef REMORA_WITH_SECRETSTORES_VAULT
  status.Update(registry.secretstores().Register("secretstores.hashicorp.vault", "v1",
                                                 components::secretstores::vault::Create));
#endif
#ifdef REMORA_WITH_PUBSUB_MEMORY
  status.Update(
      registry.pubsub().Register("pubsub.in-memory", "v1", components::pubsub::memory::Create));
#endif
#ifdef REMORA_WITH_PUBSUB_REDIS
  status.Update(registry.pubsub().Register("pubsub.redis", "v1", components::pubsub::redis::Create));
#endif
#ifdef REMORA_WITH_PUBSUB_KAFKA
  status.Update(registry.pubsub().Register("pubsub.kafka", "v1", components::pubsub::kafka::Create));
#endif
#ifdef REMORA_WITH_LOCK_REDIS
  status.Update(registry.lock().Register("lock.redis", "v1", components::lock::redis::Create));
#endif
#ifdef REMORA_WITH_CONFIGURATION_REDIS
  status.Update(registry.configuration().Register("configuration.redis", "v1",
                                                  components::configuration::redis::Create));
#endif
  return status;
}

}  // namespace remora::runtime
