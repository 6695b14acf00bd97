#include "remora/runtime/runtime.h"

#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "api/grpc/loader.h"
#include "api/http/routes.h"
#include "api/http/server.h"
#include "appchannel/health_gated_channel.h"
#include "appchannel/http_app_channel.h"
#include "blocks/configuration/configuration_block.h"
#include "blocks/invocation/app_health.h"
#include "blocks/invocation/invocation_block.h"
#include "blocks/lock/lock_block.h"
#include "blocks/metadata/metadata_block.h"
#include "blocks/pubsub/pubsub_block.h"
#include "blocks/secrets/secrets_block.h"
#include "blocks/state/state_block.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/asio.h"
#include "remora/runtime/config_resource.h"
#include "remora/runtime/log.h"
#include "remora/runtime/registry.h"
#include "remora/runtime/resources.h"

namespace remora::runtime {
namespace asio = boost::asio;

struct Runtime::Loops {
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;

  explicit Loops(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      contexts.push_back(std::make_unique<asio::io_context>(1));
      guards.push_back(asio::make_work_guard(*contexts.back()));
    }
    for (size_t i = 0; i < n; ++i) {
      threads.emplace_back([ctx = contexts[i].get()] { ctx->run(); });
    }
  }
  ~Loops() { Stop(); }
  void Stop() {
    for (auto& ctx : contexts) ctx->stop();
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
  std::vector<asio::io_context*> Raw() const {
    std::vector<asio::io_context*> out;
    for (const auto& c : contexts) out.push_back(c.get());
    return out;
  }
};

struct Runtime::Servers {
  std::unique_ptr<http::DaprHttpApi> api;
  std::unique_ptr<http::Server> http;
  std::mutex mu;
  std::condition_variable cv;
  // The gRPC API starts on its own thread once HTTP listens (see StartServers).
  std::thread grpc_starter;
  std::unique_ptr<grpc::Api> grpc;  // set by grpc_starter; read after joining it
  std::atomic<int> grpc_port{0};    // non-zero once gRPC listens
  std::atomic<bool> failed{false};  // a server failed after StartServers returned: exit code 1
  std::atomic<bool> probed{false};  // a health probe reached the HTTP API (notifies cv)

  void NoteProbe() {
    if (probed.load(std::memory_order_relaxed) || probed.exchange(true)) return;
    { std::lock_guard lock(mu); }  // the starter checks `probed` under mu
    cv.notify_all();
  }

  // Joins the starter, then lets gRPC calls in flight finish until `deadline`.
  void StopGrpc(std::chrono::system_clock::time_point deadline) {
    if (grpc_starter.joinable()) grpc_starter.join();
    if (grpc) grpc->Shutdown(deadline);
    grpc.reset();
  }
};

Runtime::Runtime(const Options& options) : options_(options) {}

Runtime::~Runtime() {
  // gRPC first: cancelled calls still complete through their blocks, on the loops.
  if (servers_) servers_->StopGrpc(std::chrono::system_clock::now());
  // Subscriptions stop while the loops still run, so their brokers wind down normally.
  if (pubsub_) pubsub_->Shutdown(std::chrono::steady_clock::now());
  if (loops_) loops_->Stop();
  servers_.reset();
}

absl::StatusOr<std::unique_ptr<Runtime>> Runtime::Create(const Options& options) {
  std::unique_ptr<Runtime> rt(new Runtime(options));
  size_t n = std::max(1u, std::thread::hardware_concurrency());
  rt->loops_ = std::make_unique<Loops>(n);
  rt->state_ = std::make_unique<StateBlock>(options.app_id, options.namespace_);
  AppConnectionInfo app;
  app.port = options.app_port;
  app.protocol = options.app_protocol;
  app.channel_address = options.app_channel_address;
  app.max_concurrency = options.app_max_concurrency;
  app.health_check = options.enable_app_health_check;
  app.health_check_path = options.app_health_check_path;
  app.health_probe_interval = StrCat(options.app_health_probe_interval_s, "s");
  app.health_probe_timeout = StrCat(options.app_health_probe_timeout_ms, "ms");
  app.health_threshold = options.app_health_threshold;
  rt->metadata_ = std::make_unique<MetadataBlock>(options.app_id, std::move(app));
  rt->servers_ = std::make_unique<Servers>();
  PubSubBlock::Options pubsub;
  pubsub.app_id = options.app_id;
  pubsub.io = rt->loops_->contexts.front().get();
  rt->pubsub_ = std::make_unique<PubSubBlock>(std::move(pubsub));
  rt->lock_ = std::make_unique<LockBlock>(options.app_id);
  rt->configuration_ = std::make_unique<ConfigurationBlock>();
  if (absl::Status s = rt->LoadComponents(); !s.ok()) return s;
  return rt;
}

namespace {

// The kinds this build serves; other Dapr kinds in a resources directory are skipped with a
// warning instead of failing start-up, so existing Dapr resource folders load.
bool KnownKind(std::string_view kind) {
  return kind == "state" || kind == "pubsub" || kind == "lock" || kind == "configuration";
}

// Creates one configuration store into `block`; errors name the file and the component.
absl::Status LoadConfigurationStore(const ComponentSpec& spec,
                                    const components::ComponentContext& context,
                                    const Registry& registry, ConfigurationBlock& block) {
  const auto* factory = registry.configuration().Find(spec.type, spec.version);
  if (factory == nullptr) {
    std::string known;
    for (const auto& k : registry.configuration().Keys()) {
      StrAppend(&known, known.empty() ? "" : ", ", k);
    }
    return MakeStatus(absl::StatusCode::kNotFound,
                      StrCat(spec.source.Describe(), ": component ", spec.name, ": unknown type ",
                             spec.type, "/", spec.version, " (this build has: ", known, ")"));
  }
  auto store = (*factory)(context);
  if (!store.ok()) {
    return MakeStatus(store.status().code(),
                      StrCat(spec.source.Describe(), ": component ", spec.name, " (", spec.type,
                             "): ", MessageOf(store.status())));
  }
  for (const std::string& key : context.metadata.Unused()) {
    log::Warn("component ", spec.name, " (", spec.source.Describe(), "): unknown metadata key '",
              key, "' is ignored");
  }
  block.AddStore(spec.name, spec.type, spec.version, *std::move(store));
  log::Info("component loaded: ", spec.name, " (", spec.type, "/", spec.version, ")");
  return absl::OkStatus();
}

// Creates one lock store into `block`; errors name the file and the component.
absl::Status LoadLockStore(const ComponentSpec& spec, const components::ComponentContext& context,
                           const Registry& registry, LockBlock& block) {
  const auto* factory = registry.lock().Find(spec.type, spec.version);
  if (factory == nullptr) {
    std::string known;
    for (const auto& k : registry.lock().Keys()) StrAppend(&known, known.empty() ? "" : ", ", k);
    return MakeStatus(absl::StatusCode::kNotFound,
                      StrCat(spec.source.Describe(), ": component ", spec.name, ": unknown type ",
                             spec.type, "/", spec.version, " (this build has: ", known, ")"));
  }
  auto fail = [&](const absl::Status& s) {
    return MakeStatus(s.code(), StrCat(spec.source.Describe(), ": component ", spec.name, " (",
                                       spec.type, "): ", MessageOf(s)));
  };
  auto store = (*factory)(context);
  if (!store.ok()) return fail(store.status());
  for (const std::string& key : context.metadata.Unused()) {
    log::Warn("component ", spec.name, " (", spec.source.Describe(), "): unknown metadata key '",
              key, "' is ignored");
  }
  absl::Status added = block.AddStore(spec.name, spec.type, spec.version,
                                      context.metadata.GetString("keyPrefix"), *std::move(store));
  if (!added.ok()) return fail(added);
  log::Info("component loaded: ", spec.name, " (", spec.type, "/", spec.version, ")");
  return absl::OkStatus();
}

// Creates one pub/sub component into `block`; errors name the file and the component.
absl::Status LoadPubSub(const ComponentSpec& spec, components::ComponentContext context,
                        const Registry& registry, const std::string& app_id, PubSubBlock& block) {
  const auto* factory = registry.pubsub().Find(spec.type, spec.version);
  if (factory == nullptr) {
    std::string known;
    for (const auto& k : registry.pubsub().Keys()) StrAppend(&known, known.empty() ? "" : ", ", k);
    return MakeStatus(absl::StatusCode::kNotFound,
                      StrCat(spec.source.Describe(), ": component ", spec.name, ": unknown type ",
                             spec.type, "/", spec.version, " (this build has: ", known, ")"));
  }
  context.metadata = PubSubBlock::PrepareMetadata(context.metadata, app_id);
  auto pubsub = (*factory)(context);
  if (!pubsub.ok()) {
    return MakeStatus(pubsub.status().code(),
                      StrCat(spec.source.Describe(), ": component ", spec.name, " (", spec.type,
                             "): ", MessageOf(pubsub.status())));
  }
  for (const std::string& key : context.metadata.Unused()) {
    log::Warn("component ", spec.name, " (", spec.source.Describe(), "): unknown metadata key '",
              key, "' is ignored");
  }
  block.AddComponent(spec.name, spec.type, spec.version, context.metadata, *std::move(pubsub));
  log::Info("component loaded: ", spec.name, " (", spec.type, "/", spec.version, ")");
  return absl::OkStatus();
}

// Reads one secret at start-up. Blocking is fine here: nothing serves yet, and the stores'
// callbacks run inline or on the event loops, which are already running.
absl::StatusOr<secrets::SecretData> GetSecretBlocking(secrets::SecretStore& store,
                                                      const std::string& name) {
  struct Slot {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<absl::StatusOr<secrets::SecretData>> result;
  };
  auto slot = std::make_shared<Slot>();
  store.GetSecret(name, {}, [slot](absl::StatusOr<secrets::SecretData> result) {
    std::lock_guard lock(slot->mu);
    slot->result.emplace(std::move(result));
    slot->cv.notify_all();
  });
  std::unique_lock lock(slot->mu);
  if (!slot->cv.wait_for(lock, std::chrono::seconds(30),
                         [&] { return slot->result.has_value(); })) {
    return MakeStatus(absl::StatusCode::kDeadlineExceeded,
                      "the secret store did not answer in 30 s");
  }
  return *std::move(slot->result);
}

// spec.metadata as plain strings: envRef read from the environment, secretKeyRef read through the
// component's auth.secretStore (`key` defaults to the secret's name, as in Dapr). A reference
// that cannot be resolved is an error naming the component, the metadata item and the key.
absl::StatusOr<components::Metadata> ResolveMetadata(const ComponentSpec& spec,
                                                     const SecretsBlock& secret_stores) {
  std::map<std::string, std::string> values;
  for (const MetadataItem& item : spec.metadata) {
    if (item.secret_key_ref) {
      const SecretKeyRef& ref = *item.secret_key_ref;
      const std::string& key = ref.key.empty() ? ref.name : ref.key;
      auto fail = [&](std::string_view why) {
        return MakeStatus(absl::StatusCode::kFailedPrecondition,
                          StrCat(spec.source.Describe(), ": component ", spec.name, ": metadata ",
                                 item.name, ": secretKeyRef {name: ", ref.name, ", key: ", key,
                                 "} cannot be resolved: ", why));
      };
      if (spec.auth_secret_store.empty()) {
        return fail("the component has no auth.secretStore naming the secret store to read");
      }
      secrets::SecretStore* store = secret_stores.Find(spec.auth_secret_store);
      if (store == nullptr) {
        std::string known;
        for (const auto& info : secret_stores.Stores()) {
          StrAppend(&known, known.empty() ? "" : ", ", info.name);
        }
        return fail(StrCat(
            "auth.secretStore \"", spec.auth_secret_store,
            "\" is not a loaded secret store (loaded: ", known.empty() ? "none" : known, ")"));
      }
      auto secret = GetSecretBlocking(*store, ref.name);
      if (!secret.ok()) {
        return fail(
            StrCat("secret store ", spec.auth_secret_store, ": ", MessageOf(secret.status())));
      }
      auto value = secret->find(key);
      if (value == secret->end()) {
        return fail(StrCat("secret ", ref.name, " in secret store ", spec.auth_secret_store,
                           " has no key ", key));
      }
      values[item.name] = value->second;
      continue;
    }
    if (item.env_ref) {
      const char* env = std::getenv(item.env_ref->c_str());
      values[item.name] = env ? env : "";
      continue;
    }
    values[item.name] = item.value;
  }
  return components::Metadata(std::move(values));
}

bool IsSecretStore(const ComponentSpec& spec) { return spec.type.starts_with("secretstores."); }

// True when every secretKeyRef of `spec` names a store that is already loaded, so secret stores
// that read their own credentials from another secret store load after it.
bool RefsReady(const ComponentSpec& spec, const SecretsBlock& loaded) {
  for (const MetadataItem& item : spec.metadata) {
    if (item.secret_key_ref && loaded.Find(spec.auth_secret_store) == nullptr) return false;
  }
  return true;
}

}  // namespace

absl::Status Runtime::LoadComponents() {
  Resources resources;
  if (options_.resources_paths.empty()) {
    ComponentSpec statestore;
    statestore.name = "statestore";
    statestore.type = "state.in-memory";
    statestore.source.file = "<built-in default>";
    resources.components.push_back(std::move(statestore));
    ComponentSpec pubsub;
    pubsub.name = "pubsub";
    pubsub.type = "pubsub.in-memory";
    pubsub.source.file = "<built-in default>";
    resources.components.push_back(std::move(pubsub));
  } else {
    auto loaded = LoadResources(options_.resources_paths, options_.app_id, options_.namespace_);
    if (!loaded.ok()) return loaded.status();
    resources = *std::move(loaded);
  }

  Registry registry;
  if (absl::Status s = RegisterBuiltinComponents(registry); !s.ok()) return s;

  auto configuration = LoadConfiguration(options_.config_files);
  if (!configuration.ok()) return configuration.status();
  secrets_ = std::make_unique<SecretsBlock>(std::move(configuration->secret_scopes));
  if (absl::Status s = CreateInvocation(configuration->name_resolution, resources.resiliencies);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = LoadSecretStores(resources.components, registry); !s.ok()) return s;

  for (const ComponentSpec& spec : resources.components) {
    if (IsSecretStore(spec)) continue;
    std::string kind = spec.type.substr(0, spec.type.find('.'));
    auto fail = [&](absl::Status s) -> absl::Status {
      if (spec.ignore_errors) {
        log::Warn("ignoring component ", spec.name, " (", spec.source.Describe(),
                  ") because spec.ignoreErrors is set: ", MessageOf(s));
        return absl::OkStatus();
      }
      return s;
    };
    if (!KnownKind(kind)) {
      log::Warn("component ", spec.name, " (", spec.type, ", ", spec.source.Describe(),
                ") is skipped: this build has no ", kind, " building block yet");
      continue;
    }
    auto metadata = ResolveMetadata(spec, *secrets_);
    if (!metadata.ok()) {
      if (absl::Status s = fail(metadata.status()); !s.ok()) return s;
      continue;
    }
    components::ComponentContext context;
    context.name = spec.name;
    context.type = spec.type;
    context.version = spec.version;
    context.app_id = options_.app_id;
    context.namespace_ = options_.namespace_;
    context.metadata = *std::move(metadata);
    context.io_context = loops_->contexts.front().get();
    // Keys daprd itself reads (contract §4.1) are not the component's to report as unknown.
    for (const char* key : {"keyPrefix", "actorStateStore", "outboxPublishPubsub",
                            "outboxPublishTopic", "outboxPubsub", "outboxDiscardWhenMissingState",
                            "primaryEncryptionKey", "secondaryEncryptionKey"}) {
      context.metadata.MarkUsed(key);
    }
    if (kind == "pubsub") {
      absl::Status s = LoadPubSub(spec, std::move(context), registry, options_.app_id, *pubsub_);
      if (!s.ok()) {
        if (absl::Status f = fail(s); !f.ok()) return f;
      }
      continue;
    }
    if (kind == "lock") {
      absl::Status s = LoadLockStore(spec, context, registry, *lock_);
      if (!s.ok()) {
        if (absl::Status f = fail(s); !f.ok()) return f;
      }
      continue;
    }
    if (kind == "configuration") {
      absl::Status s = LoadConfigurationStore(spec, context, registry, *configuration_);
      if (!s.ok()) {
        if (absl::Status f = fail(s); !f.ok()) return f;
      }
      continue;
    }

    const auto* factory = registry.state().Find(spec.type, spec.version);
    if (factory == nullptr) {
      std::string known;
      for (const auto& k : registry.state().Keys()) StrAppend(&known, known.empty() ? "" : ", ", k);
      if (absl::Status s = fail(MakeStatus(
              absl::StatusCode::kNotFound,
              StrCat(spec.source.Describe(), ": component ", spec.name, ": unknown type ",
                     spec.type, "/", spec.version, " (this build has: ", known, ")")));
          !s.ok()) {
        return s;
      }
      continue;
    }
    auto store = (*factory)(context);
    if (!store.ok()) {
      if (absl::Status s = fail(MakeStatus(
              store.status().code(), StrCat(spec.source.Describe(), ": component ", spec.name, " (",
                                            spec.type, "): ", MessageOf(store.status()))));
          !s.ok()) {
        return s;
      }
      continue;
    }
    for (const std::string& key : context.metadata.Unused()) {
      log::Warn("component ", spec.name, " (", spec.source.Describe(), "): unknown metadata key '",
                key, "' is ignored");
    }
    KeyPrefix prefix = KeyPrefix::Parse(context.metadata.GetString("keyPrefix"));
    StateBlock::StoreInfo info;
    state_->AddStore(spec.name, spec.type, spec.version, std::move(prefix), *std::move(store));
    log::Info("component loaded: ", spec.name, " (", spec.type, "/", spec.version, ")");
  }
  for (const auto& store : state_->Stores()) {
    metadata_->AddComponent({store.name, store.type, store.version, store.capabilities});
  }
  for (const auto& c : pubsub_->Components()) {
    metadata_->AddComponent({c.name, c.type, c.version, c.capabilities});
    if (auto retry = InboundRetryPolicy(resources.resiliencies, c.name, "pubsub")) {
      log::Info("pubsub ", c.name, ": inbound retry policy ", retry->name);
      pubsub_->SetInboundRetry(c.name, *std::move(retry));
    }
  }
  for (const SubscriptionResource& sub : resources.subscriptions) {
    if (absl::Status s = pubsub_->AddDeclarativeSubscription(sub); !s.ok()) return s;
  }
  pubsub_->SetSubscriptionsListener(
      [metadata = metadata_.get()](std::vector<SubscriptionSpec> subscriptions) {
        metadata->SetSubscriptions(std::move(subscriptions));
      });
  for (const auto& store : secrets_->Stores()) {
    metadata_->AddComponent({store.name, store.type, store.version, store.capabilities});
  }
  for (const auto& store : lock_->Stores()) {
    metadata_->AddComponent({store.name, store.type, store.version, store.capabilities});
  }
  for (const auto& store : configuration_->Stores()) {
    metadata_->AddComponent({store.name, store.type, store.version, {}});
  }
  return absl::OkStatus();
}

// Secret stores load before every other component, whose secretKeyRefs read through them. A
// secret store may itself take a secretKeyRef from another secret store: those load in rounds,
// each after the store it reads from; whatever is left when a round makes no progress (a cycle, a
// store that does not exist) fails with the resolution error naming it.
absl::Status Runtime::LoadSecretStores(const std::vector<ComponentSpec>& specs,
                                       const Registry& registry) {
  std::vector<const ComponentSpec*> pending;
  for (const ComponentSpec& spec : specs) {
    if (IsSecretStore(spec)) pending.push_back(&spec);
  }
  bool last_round = false;
  while (!pending.empty()) {
    std::vector<const ComponentSpec*> later;
    for (const ComponentSpec* spec : pending) {
      if (!last_round && !RefsReady(*spec, *secrets_)) {
        later.push_back(spec);
        continue;
      }
      auto fail = [&](absl::Status s) -> absl::Status {
        if (spec->ignore_errors) {
          log::Warn("ignoring component ", spec->name, " (", spec->source.Describe(),
                    ") because spec.ignoreErrors is set: ", MessageOf(s));
          return absl::OkStatus();
        }
        return s;
      };
      auto metadata = ResolveMetadata(*spec, *secrets_);
      if (!metadata.ok()) {
        if (absl::Status s = fail(metadata.status()); !s.ok()) return s;
        continue;
      }
      const auto* factory = registry.secretstores().Find(spec->type, spec->version);
      if (factory == nullptr) {
        std::string known;
        for (const auto& k : registry.secretstores().Keys()) {
          StrAppend(&known, known.empty() ? "" : ", ", k);
        }
        if (absl::Status s = fail(MakeStatus(
                absl::StatusCode::kNotFound,
                StrCat(spec->source.Describe(), ": component ", spec->name, ": unknown type ",
                       spec->type, "/", spec->version, " (this build has: ", known, ")")));
            !s.ok()) {
          return s;
        }
        continue;
      }
      components::ComponentContext context;
      context.name = spec->name;
      context.type = spec->type;
      context.version = spec->version;
      context.app_id = options_.app_id;
      context.namespace_ = options_.namespace_;
      context.metadata = *std::move(metadata);
      context.io_context = loops_->contexts.front().get();
      auto store = (*factory)(context);
      if (!store.ok()) {
        if (absl::Status s = fail(MakeStatus(
                store.status().code(), StrCat(spec->source.Describe(), ": component ", spec->name,
                                              " (", spec->type, "): ", MessageOf(store.status()))));
            !s.ok()) {
          return s;
        }
        continue;
      }
      for (const std::string& key : context.metadata.Unused()) {
        log::Warn("component ", spec->name, " (", spec->source.Describe(),
                  "): unknown metadata key '", key, "' is ignored");
      }
      secrets_->AddStore(spec->name, spec->type, spec->version, *std::move(store));
      log::Info("component loaded: ", spec->name, " (", spec->type, "/", spec->version, ")");
    }
    last_round = later.size() == pending.size();
    pending = std::move(later);
  }
  return absl::OkStatus();
}

// Service invocation: the block, and the name resolver that finds other apps' sidecars
// (Configuration spec.nameResolution; the shared-directory resolver by default).
absl::Status Runtime::CreateInvocation(const std::optional<ConfigurationSpec::NameResolution>& spec,
                                       const std::vector<ResiliencySpec>& resiliencies) {
  nameresolution::Config config;
  if (spec) {
    config.component = spec->component;
    config.version = spec->version;
    config.configuration = spec->configuration;
  }
  auto resolver = nameresolution::CreateResolver(config);
  if (!resolver.ok()) return resolver.status();
  resolver_ = *std::move(resolver);
  InvocationBlock::Options invocation;
  invocation.app_id = options_.app_id;
  invocation.namespace_ = options_.namespace_;
  invocation.io = loops_->contexts.front().get();
  invocation.resolver = resolver_.get();
  app_policies_ =
      std::make_unique<resiliency::AppPolicies>(*loops_->contexts.front(), resiliencies);
  invocation.policies = app_policies_.get();
  invocation_ = std::make_unique<InvocationBlock>(std::move(invocation));
  return absl::OkStatus();
}

absl::Status Runtime::StartServers() {
  http::ApiHooks hooks;
  hooks.ready = [this] {
    servers_->NoteProbe();
    return ready();
  };
  // Outbound health (what SDKs poll before their first call) includes the gRPC API; plain
  // readiness (/v1.0/healthz) is the HTTP API alone so that it does not wait for gRPC's start.
  hooks.outbound_health = [this] {
    servers_->NoteProbe();
    if (servers_->grpc_port.load() == 0) {
      return MakeStatus(absl::StatusCode::kUnavailable, "the gRPC API is starting");
    }
    if (absl::Status s = state_->Health(); !s.ok()) return s;
    if (absl::Status s = lock_->Health(); !s.ok()) return s;
    if (absl::Status s = configuration_->Health(); !s.ok()) return s;
    return pubsub_->Health();
  };
  hooks.shutdown = [this](bool force) { RequestShutdown(force); };
  http::ApiConfig config;
  config.app_id = options_.app_id;
  config.api_token = options_.api_token;
  config.api_logging = options_.enable_api_logging.value_or(false);
  servers_->api =
      std::make_unique<http::DaprHttpApi>(blocks(), std::move(hooks), std::move(config));
  http::ServerOptions server_options;
  server_options.max_body_size = options_.max_body_size;
  server_options.max_header_size = static_cast<uint32_t>(options_.read_buffer_size);
  servers_->http = std::make_unique<http::Server>(loops_->Raw(), *servers_->api, server_options);
  if (absl::Status s =
          servers_->http->Listen(options_.dapr_listen_addresses, options_.dapr_http_port);
      !s.ok()) {
    return MakeStatus(s.code(), StrCat("HTTP API: ", MessageOf(s)));
  }
  StartSubscriptions();
  ready_.store(true);
  StartGrpc();
  return absl::OkStatus();
}

// Loading gRPC (~20 shared libraries) and starting its first server takes longer than the rest
// of start-up together, so it happens here, off the path to the first HTTP answer. A failure
// (port in use, module missing) stops the process with exit code 1, as a bind failure would.
void Runtime::StartGrpc() {
  grpc::ApiConfig config;
  config.listen_addresses = options_.dapr_listen_addresses;
  config.port = options_.dapr_grpc_port;
  config.max_message_size = options_.max_body_size;
  config.api_token = options_.api_token;
  config.api_logging = options_.enable_api_logging.value_or(false);
  config.internal_port = options_.dapr_internal_grpc_port;
  if (!options_.dapr_internal_grpc_listen_address.empty()) {
    config.internal_listen_addresses = {options_.dapr_internal_grpc_listen_address};
  }
  grpc::ApiHooks hooks;
  hooks.shutdown = [this](bool force) { RequestShutdown(force); };
  servers_->grpc_starter = std::thread([this, config = std::move(config),
                                        hooks = std::move(hooks)]() mutable {
    if (!AwaitGrpcStartSlot()) return;  // shut down before gRPC was needed
    auto started = std::chrono::steady_clock::now();
    auto api = grpc::LoadAndStart(blocks(), std::move(hooks), std::move(config));
    if (!api.ok()) {
      log::Error("start-up failed: ", MessageOf(api.status()));
      servers_->failed.store(true);
      RequestShutdown(false);
      return;
    }
    // --app-protocol grpc: the module supplies the app channel, and the subscriptions start with
    // it before outbound health (what SDKs wait for) reports the gRPC API up.
    if (options_.app_port > 0 && options_.app_protocol == "grpc") {
      grpc::AppChannelConfig channel;
      channel.host = options_.app_channel_address;
      channel.port = options_.app_port;
      channel.app_api_token = options_.app_api_token;
      channel.max_concurrency = options_.app_max_concurrency;
      channel.health_timeout = std::chrono::milliseconds(options_.app_health_probe_timeout_ms);
      app_channel_ = (*api)->CreateAppChannel(std::move(channel));
      invocation_->SetAppChannel(app_channel_.get());
      pubsub_->Start(WatchAppHealth());
    }
    int port = (*api)->port();
    // Announced before the sidecar reports outbound-ready, so peers find it once it is ready.
    RegisterInternalPort((*api)->internal_port());
    servers_->grpc = *std::move(api);
    servers_->grpc_port.store(port);
    auto took = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started);
    log::Info("gRPC API listening on port ", port, " (started in ", took.count() / 1000.0, " ms)");
  });
}

// Loading gRPC while the HTTP API answers its first requests makes those answers 2-3x slower
// (measured with bench/cold_start on a loaded 2-CPU machine: exec -> first 204 median 24-48 ms
// instead of 7-16 ms): dlopen's mmaps hold the address-space lock that the HTTP path's first page
// faults need, besides taking CPU. So the load waits until the first health probe has been
// answered, which is what a supervisor or an SDK waiting for the sidecar sends first, or
// kGrpcStartDelay when nobody probes. False when a shutdown came first.
// Announces this sidecar to the name resolver once the internal API listens. Other sidecars
// reach it on DAPR_HOST_IP when set, else on the first internal listen address (loopback by
// default; a wildcard address announces the host name).
void Runtime::RegisterInternalPort(int port) {
  if (port <= 0 || !resolver_ || options_.app_id.empty()) return;
  nameresolution::Registration self;
  self.app_id = options_.app_id;
  self.namespace_ = options_.namespace_;
  self.port = port;
  const char* host_ip = std::getenv("DAPR_HOST_IP");
  const std::vector<std::string> addresses =
      options_.dapr_internal_grpc_listen_address.empty()
          ? options_.dapr_listen_addresses
          : std::vector<std::string>{options_.dapr_internal_grpc_listen_address};
  if (host_ip != nullptr && *host_ip != 0) {
    self.host = host_ip;
  } else if (!addresses.empty() && addresses.front() != "0.0.0.0" && addresses.front() != "::" &&
             addresses.front() != "[::]") {
    self.host = addresses.front();
  } else {
    char name[256] = {};
    ::gethostname(name, sizeof(name) - 1);
    self.host = name;
  }
  if (absl::Status s = resolver_->Register(self); !s.ok()) {
    log::Error("name resolution: ", MessageOf(s), "; other sidecars cannot call this app");
  }
}

bool Runtime::AwaitGrpcStartSlot() {
  constexpr auto kGrpcStartDelay = std::chrono::milliseconds(100);
  {
    std::unique_lock lock(servers_->mu);
    servers_->cv.wait_for(lock, kGrpcStartDelay,
                          [this] { return servers_->probed.load() || shutdown_.load() != 0; });
    if (shutdown_.load() != 0) return false;
  }
  // Let the answer to that probe leave first (bounded: a slow request must not hold gRPC back).
  for (int i = 0; i < 20 && servers_->api->in_flight() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(250));
  }
  return true;
}

// Declarative subscriptions are subscribed before the sidecar reports ready, so what is published
// once it is ready reaches them; the app's own subscriptions load in the background (the app may
// still be starting). With --app-protocol grpc the gRPC module supplies the channel instead.
void Runtime::StartSubscriptions() {
  if (options_.app_port > 0 && options_.app_protocol == "http") {
    HttpAppChannelOptions channel;
    channel.host = options_.app_channel_address;
    channel.port = static_cast<uint16_t>(options_.app_port);
    channel.app_id = options_.app_id;
    channel.app_api_token = options_.app_api_token;
    channel.max_concurrency = options_.app_max_concurrency;
    channel.health_check_path = options_.app_health_check_path;
    channel.health_probe_timeout = std::chrono::milliseconds(options_.app_health_probe_timeout_ms);
    app_channel_ = std::make_unique<HttpAppChannel>(*loops_->contexts.front(), std::move(channel));
    configuration_->SetApp(*loops_->contexts.front(),
                           {options_.app_channel_address, static_cast<uint16_t>(options_.app_port),
                            options_.app_api_token});
    invocation_->SetAppChannel(app_channel_.get());
    pubsub_->Start(WatchAppHealth());
  } else if (options_.app_port > 0 && options_.app_protocol != "grpc") {
    log::Warn("--app-protocol ", options_.app_protocol,
              " is not supported for the app channel yet: no events are delivered to the app");
    pubsub_->Start(nullptr);
  } else if (options_.app_port == 0) {
    pubsub_->Start(nullptr);
  }
}

AppChannel* Runtime::WatchAppHealth() {
  if (!options_.enable_app_health_check) return app_channel_.get();
  gated_channel_ = std::make_unique<HealthGatedChannel>(*app_channel_);
  AppHealthMonitor::Options health;
  health.interval = std::chrono::seconds(std::max(1, options_.app_health_probe_interval_s));
  health.threshold = std::max(1, options_.app_health_threshold);
  // Unhealthy: invocations into the app fail at once and pub/sub deliveries are held back.
  app_health_ = std::make_unique<AppHealthMonitor>(*loops_->contexts.front(), *app_channel_, health,
                                                   [this](bool healthy) {
                                                     invocation_->SetAppHealthy(healthy);
                                                     gated_channel_->SetHealthy(healthy);
                                                   });
  return gated_channel_.get();
}

int Runtime::http_port() const { return servers_->http ? servers_->http->port() : 0; }
int Runtime::grpc_port() const { return servers_->grpc_port.load(); }

Blocks Runtime::blocks() {
  Blocks b;
  b.state = state_.get();
  b.metadata = metadata_.get();
  b.secrets = secrets_.get();
  b.pubsub = pubsub_.get();
  b.lock = lock_.get();
  b.invocation = invocation_.get();
  b.configuration = configuration_.get();
  return b;
}

void Runtime::RequestShutdown(bool force) {
  {
    std::lock_guard lock(servers_->mu);
    int expected = 0;
    shutdown_.compare_exchange_strong(expected, force ? 2 : 1);
    if (force) shutdown_.store(2);
  }
  servers_->cv.notify_all();
  if (force) {
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      log::Warn("forced shutdown");
      ::_exit(1);
    }).detach();
  }
}

int Runtime::Wait() {
  asio::signal_set signals(*loops_->contexts.front(), SIGINT, SIGTERM);
  signals.async_wait([this](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    log::Info("received signal ", signo, ", shutting down gracefully");
    RequestShutdown(false);
  });
  {
    std::unique_lock lock(servers_->mu);
    servers_->cv.wait(lock, [this] { return shutdown_.load() != 0; });
  }
  ready_.store(false);
  if (resolver_) resolver_->Unregister();  // other sidecars stop choosing this one first
  if (servers_->http) servers_->http->Stop();
  // Let requests already accepted finish (their writes are acknowledged to clients) before the
  // loops stop; bounded by --dapr-graceful-shutdown-seconds.
  servers_->StopGrpc(std::chrono::system_clock::now() +
                     std::chrono::seconds(options_.graceful_shutdown_seconds));
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(options_.graceful_shutdown_seconds);
  while (servers_->api && servers_->api->in_flight() > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Messages being delivered get the rest of the grace period to be acked; what is still in
  // flight after that is nacked when the app channel closes, and the brokers redeliver it.
  pubsub_->Shutdown(deadline);
  app_health_.reset();
  invocation_->SetAppChannel(nullptr);
  invocation_->Shutdown();
  gated_channel_.reset();
  app_channel_.reset();
  // Give the last responses a moment to leave the socket.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  boost::system::error_code ignored;
  signals.cancel(ignored);
  loops_->Stop();
  log::Info("shutdown complete");
  // A forced shutdown exits with 1 even when the graceful path beat the 100 ms timer.
  return servers_->failed.load() || shutdown_.load() == 2 ? 1 : 0;
}

}  // namespace remora::runtime
