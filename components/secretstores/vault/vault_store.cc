#include "vault_store.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/http/client.h"
#include "remora/components/common/strings.h"

namespace remora::components::secretstores::vault {
namespace {

using nlohmann::json;

constexpr size_t kMaxBulkInFlight = 8;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

absl::Status Invalid(std::string_view message) {
  return MakeStatus(absl::StatusCode::kInvalidArgument, message);
}

// Splits vaultAddr into scheme, host, port and base path.
absl::Status ParseAddress(std::string_view addr, Config* config) {
  std::string_view rest = addr;
  std::string lower = Lower(addr.substr(0, 8));
  if (lower.starts_with("http://")) {
    config->tls = false;
    rest.remove_prefix(7);
  } else if (lower.starts_with("https://")) {
    config->tls = true;
    rest.remove_prefix(8);
  } else {
    return Invalid(StrCat("metadata vaultAddr \"", addr, "\" must start with http:// or https://"));
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.find_first_of("?#") != std::string_view::npos) {
    return Invalid(StrCat("metadata vaultAddr \"", addr, "\" must not have a query or fragment"));
  }
  config->base_path = std::string(path);
  if (authority.find('@') != std::string_view::npos) {
    return Invalid(StrCat("metadata vaultAddr \"", addr, "\": user info is not supported"));
  }
  std::string_view host;
  std::string_view port;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return Invalid(StrCat("metadata vaultAddr \"", addr, "\": unterminated IPv6 literal"));
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return Invalid(StrCat("metadata vaultAddr \"", addr, "\": bad port"));
      }
      port = after.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Invalid(
          StrCat("metadata vaultAddr \"", addr, "\": an IPv6 address must be in brackets"));
    }
  }
  if (host.empty()) return Invalid(StrCat("metadata vaultAddr \"", addr, "\" has no host"));
  config->host = std::string(host);
  config->port = config->tls ? 443 : 80;
  if (!port.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return Invalid(StrCat("metadata vaultAddr \"", addr, "\": bad port \"", port, "\""));
    }
    config->port = static_cast<uint16_t>(value);
  }
  return absl::OkStatus();
}

// Percent-encodes everything but RFC 3986 path characters; '/' separates Vault path segments.
std::string EncodePath(std::string_view s) { return http::PercentEncode(s, "/!$&'()*+,;=:@"); }

std::string EncodeQuery(std::string_view s) { return http::PercentEncode(s); }

std::string PrefixPath(const Config& config) {
  return config.kv_prefix.empty() ? std::string() : StrCat(EncodePath(config.kv_prefix), "/");
}

// What every request of one store shares; callbacks hold it, never the store itself, so a
// request completing after the store is gone touches nothing freed.
struct Shared {
  Config config;
  std::string token;

  std::string Where() const { return StrCat("vault at ", config.vault_addr); }

  // A transport failure from the HTTP client, said in the store's terms.
  absl::Status TransportError(const absl::Status& status) const {
    switch (status.code()) {
      case absl::StatusCode::kUnavailable:
        return MakeStatus(
            status.code(),
            StrCat(Where(), " is unreachable (check vaultAddr): ", MessageOf(status)));
      case absl::StatusCode::kDeadlineExceeded:
        return MakeStatus(status.code(),
                          StrCat(Where(), " did not answer in time: ", MessageOf(status)));
      default:
        return MakeStatus(status.code(), StrCat(Where(), ": ", MessageOf(status)));
    }
  }

  // A non-200 answer. 404 is the caller's business (not found vs. empty folder).
  absl::Status HttpError(const http::Response& response, std::string_view method,
                         std::string_view target) const {
    if (response.status == 403) {
      return MakeStatus(absl::StatusCode::kPermissionDenied,
                        StrCat(Where(), ": permission denied: check the vault token (HTTP 403)"));
    }
    std::string detail;
    json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_discarded() && body.is_object()) {
      auto errors = body.find("errors");
      if (errors != body.end() && errors->is_array()) {
        for (const json& e : *errors) {
          StrAppend(&detail, detail.empty() ? "" : "; ",
                    e.is_string() ? e.get<std::string>() : e.dump());
        }
      }
    } else {
      detail = response.body.substr(0, 200);
    }
    // The version query is not part of the message: keep it about the path.
    std::string_view path = target.substr(0, target.find('?'));
    return MakeStatus(absl::StatusCode::kInternal,
                      StrCat(Where(), ": ", method, " ", path, " answered HTTP ", response.status,
                             detail.empty() ? "" : ": ", detail));
  }

  absl::StatusOr<SecretData> ParseSecret(std::string_view name, const std::string& text) const {
    json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
    const json* data = nullptr;
    if (!body.is_discarded() && body.is_object()) {
      auto outer = body.find("data");
      if (outer != body.end() && outer->is_object()) {
        auto inner = outer->find("data");
        if (inner != outer->end()) data = &*inner;
      }
    }
    if (data == nullptr) {
      return MakeStatus(absl::StatusCode::kInternal,
                        StrCat(Where(), ": the answer for secret ", name,
                               " has no data.data (is the engine KV version 2?)"));
    }
    SecretData out;
    if (config.value_type == ValueType::kText) {
      out[std::string(name)] = data->is_string() ? data->get<std::string>() : data->dump();
      return out;
    }
    if (data->is_null()) return SecretNotFoundError(name, "the version is deleted");
    if (!data->is_object()) {
      return MakeStatus(absl::StatusCode::kInternal,
                        StrCat(Where(), ": secret ", name, ": data.data is not an object"));
    }
    for (const auto& [key, value] : data->items()) {
      out[key] = value.is_string() ? value.get<std::string>() : value.dump();
    }
    return out;
  }
};

// Sends one Vault request with the token headers; transport failures come back in Vault's terms.
void Send(http::Client& client, const std::shared_ptr<const Shared>& shared, std::string method,
          std::string target, Callback<http::Response> done) {
  http::Request request;
  request.method = std::move(method);
  request.target = std::move(target);
  request.headers = {{"X-Vault-Token", shared->token}, {"X-Vault-Request", "true"}};
  request.timeout = shared->config.timeout;
  client.Send(shared->config.host, shared->config.port, std::move(request),
              [shared, done = std::move(done)](absl::StatusOr<http::Response> result) mutable {
                if (!result.ok()) return std::move(done)(shared->TransportError(result.status()));
                std::move(done)(std::move(result));
              });
}

void FetchSecret(http::Client& client, const std::shared_ptr<const Shared>& shared,
                 std::string name, const std::string& version, Callback<SecretData> done) {
  std::string target = SecretTarget(shared->config, name, version);
  Send(client, shared, "GET", target,
       [shared, name = std::move(name), target,
        done = std::move(done)](absl::StatusOr<http::Response> result) mutable {
         if (!result.ok()) return std::move(done)(result.status());
         if (result->status == 404) return std::move(done)(SecretNotFoundError(name));
         if (result->status != 200) {
           return std::move(done)(shared->HttpError(*result, "GET", target));
         }
         std::move(done)(shared->ParseSecret(name, result->body));
       });
}

// One BulkGetSecret: a queue of LIST (folders) and GET (leaves) requests, at most
// kMaxBulkInFlight at once, finishing when the queue is empty and nothing is in flight, or at
// the first error.
class BulkOp : public std::enable_shared_from_this<BulkOp> {
 public:
  BulkOp(std::weak_ptr<http::Client> client, std::shared_ptr<const Shared> shared,
         std::string version, Callback<BulkSecretData> done)
      : client_(std::move(client)),
        shared_(std::move(shared)),
        version_(std::move(version)),
        done_(std::move(done)) {}

  void Start() {
    {
      absl::MutexLock lock(&mu_);
      queue_.push_back({true, ""});
    }
    Pump();
  }

 private:
  struct Task {
    bool list;         // LIST a folder, else GET a leaf
    std::string path;  // below the prefix; folders end with '/' (the root is "")
  };

  void Pump() {
    std::vector<Task> start;
    {
      absl::MutexLock lock(&mu_);
      while (error_.ok() && in_flight_ < kMaxBulkInFlight && !queue_.empty()) {
        start.push_back(std::move(queue_.front()));
        queue_.pop_front();
        ++in_flight_;
      }
    }
    for (Task& task : start) Run(std::move(task));
  }

  void Run(Task task) {
    std::shared_ptr<http::Client> client = client_.lock();
    if (!client) {
      return Finished(MakeStatus(absl::StatusCode::kCancelled,
                                 StrCat(shared_->Where(), ": the secret store was closed")),
                      {});
    }
    auto self = shared_from_this();
    if (!task.list) {
      std::string name = task.path;
      FetchSecret(*client, shared_, task.path, version_,
                  [self, name](absl::StatusOr<SecretData> secret) mutable {
                    // Dapr skips leaves that vanished (or whose version does not exist).
                    if (!secret.ok() && IsSecretNotFound(secret.status()))
                      return self->Finished({}, {});
                    if (!secret.ok()) return self->Finished(secret.status(), {});
                    self->Finished({}, {}, std::move(name), *std::move(secret));
                  });
      return;
    }
    std::string target = ListTarget(shared_->config, task.path);
    Send(*client, shared_, "LIST", target,
         [self, target,
          folder = std::move(task.path)](absl::StatusOr<http::Response> result) mutable {
           if (!result.ok()) return self->Finished(result.status(), {});
           // An empty (or vanished) folder: Vault answers 404 to a LIST with nothing under it.
           if (result->status == 404) return self->Finished({}, {});
           if (result->status != 200) {
             return self->Finished(self->shared_->HttpError(*result, "LIST", target), {});
           }
           json body = json::parse(result->body, nullptr, /*allow_exceptions=*/false);
           const json* keys = nullptr;
           if (!body.is_discarded() && body.is_object() && body.contains("data") &&
               body["data"].is_object() && body["data"].contains("keys") &&
               body["data"]["keys"].is_array()) {
             keys = &body["data"]["keys"];
           }
           if (keys == nullptr) {
             return self->Finished(MakeStatus(absl::StatusCode::kInternal,
                                              StrCat(self->shared_->Where(), ": LIST ", target,
                                                     " answered without data.keys")),
                                   {});
           }
           std::vector<Task> more;
           for (const json& key : *keys) {
             if (!key.is_string() || key.get_ref<const std::string&>().empty()) continue;
             const std::string& k = key.get_ref<const std::string&>();
             more.push_back({k.back() == '/', StrCat(folder, k)});
           }
           self->Finished({}, std::move(more));
         });
  }

  // One request is done: `error`, or follow-up tasks, or one secret.
  void Finished(absl::Status error, std::vector<Task> more, std::string name = {},
                SecretData secret = {}) {
    Callback<BulkSecretData> done;
    absl::StatusOr<BulkSecretData> result;
    {
      absl::MutexLock lock(&mu_);
      --in_flight_;
      if (!error.ok() && error_.ok()) error_ = std::move(error);
      if (error_.ok()) {
        for (Task& task : more) queue_.push_back(std::move(task));
        if (!name.empty()) result_[std::move(name)] = std::move(secret);
      }
      if (in_flight_ == 0 && (queue_.empty() || !error_.ok()) && done_) {
        done = std::move(done_);
        done_ = nullptr;
        if (error_.ok()) {
          result = std::move(result_);
        } else {
          result = error_;
        }
      }
    }
    if (done) return std::move(done)(std::move(result));
    Pump();
  }

  const std::weak_ptr<http::Client> client_;
  const std::shared_ptr<const Shared> shared_;
  const std::string version_;
  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  BulkSecretData result_ ABSL_GUARDED_BY(mu_);
  Callback<BulkSecretData> done_ ABSL_GUARDED_BY(mu_);
};

std::string VersionOf(const RequestMetadata& metadata) {
  auto it = metadata.find("version_id");
  return it == metadata.end() || it->second.empty() ? "0" : it->second;
}

class VaultStore : public SecretStore {
 public:
  VaultStore(std::shared_ptr<const Shared> shared, boost::asio::io_context& io,
             http::ClientOptions options)
      : shared_(std::move(shared)), client_(std::make_shared<http::Client>(io, options)) {}

  std::vector<Feature> Features() const override {
    if (shared_->config.value_type == ValueType::kText) return {};
    return {Feature::kMultipleKeyValuesPerSecret};
  }

  void GetSecret(std::string name, RequestMetadata metadata, Callback<SecretData> done) override {
    FetchSecret(*client_, shared_, std::move(name), VersionOf(metadata), std::move(done));
  }

  void BulkGetSecret(RequestMetadata metadata, Callback<BulkSecretData> done) override {
    auto op = std::make_shared<BulkOp>(client_, shared_, VersionOf(metadata), std::move(done));
    op->Start();
  }

 private:
  const std::shared_ptr<const Shared> shared_;
  // Shared only so that a bulk call in progress can send its follow-up requests while the store
  // lives (it holds a weak_ptr); destroying the store cancels what is in flight.
  const std::shared_ptr<http::Client> client_;
};

// skipVerify turns off both the chain and the name check; tlsServerName is the name checked (and
// sent as SNI) instead of vaultAddr's host.
http::TlsOptions TlsOptionsOf(const Config& config) {
  http::TlsOptions tls;
  tls.verify = !config.skip_verify;
  tls.server_name = config.tls_server_name;
  tls.ca_pem = config.ca_pem;
  tls.ca_path = config.ca_path;
  tls.ca_file = config.ca_cert;
  return tls;
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const Metadata& metadata) {
  Config config;
  std::string addr = metadata.GetString("vaultAddr");
  if (!addr.empty()) config.vault_addr = addr;
  if (absl::Status s = ParseAddress(config.vault_addr, &config); !s.ok()) return s;

  config.token = metadata.GetString("vaultToken");
  config.token_mount_path = metadata.GetString("vaultTokenMountPath");
  if (config.token.empty() && config.token_mount_path.empty()) {
    return Invalid("one of the metadata keys vaultToken and vaultTokenMountPath is required");
  }
  if (!config.token.empty() && !config.token_mount_path.empty()) {
    return Invalid("set only one of the metadata keys vaultToken and vaultTokenMountPath");
  }

  auto use_prefix = metadata.GetBool("vaultKVUsePrefix", true);
  if (!use_prefix.ok()) return use_prefix.status();
  std::string prefix = metadata.GetString("vaultKVPrefix");
  if (!*use_prefix) {
    config.kv_prefix.clear();
  } else if (!prefix.empty()) {
    config.kv_prefix = prefix;
  }
  std::string engine = metadata.GetString("enginePath");
  if (!engine.empty()) config.engine_path = engine;

  std::string value_type = metadata.GetString("vaultValueType");
  if (value_type.empty() || value_type == "map") {
    config.value_type = ValueType::kMap;
  } else if (value_type == "text") {
    config.value_type = ValueType::kText;
  } else {
    return Invalid(StrCat("metadata vaultValueType \"", value_type,
                          "\" is invalid: accepted values are map and text"));
  }

  // Dapr turns verification off only for the exact string "true".
  config.skip_verify = metadata.GetString("skipVerify") == "true";
  config.tls_server_name = metadata.GetString("tlsServerName");
  config.ca_cert = metadata.GetString("caCert");
  config.ca_path = metadata.GetString("caPath");
  config.ca_pem = metadata.GetString("caPem");

  return config;
}

std::string SecretTarget(const Config& config, std::string_view name, std::string_view version) {
  return StrCat(config.base_path, "/v1/", EncodePath(config.engine_path), "/data/",
                PrefixPath(config), EncodePath(name), "?version=", EncodeQuery(version));
}

std::string ListTarget(const Config& config, std::string_view path) {
  return StrCat(config.base_path, "/v1/", EncodePath(config.engine_path), "/metadata/",
                PrefixPath(config), EncodePath(path));
}

absl::StatusOr<std::unique_ptr<SecretStore>> Create(const ComponentContext& context) {
  auto config = ParseConfig(context.metadata);
  if (!config.ok()) return config.status();
  if (context.io_context == nullptr) {
    return MakeStatus(absl::StatusCode::kFailedPrecondition,
                      "the vault secret store needs an io_context");
  }
  auto shared = std::make_shared<Shared>();
  shared->config = *std::move(config);
  if (shared->config.token_mount_path.empty()) {
    shared->token = shared->config.token;
  } else {
    const std::string& path = shared->config.token_mount_path;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    if (in) text << in.rdbuf();
    if (!in || in.bad()) {
      return MakeStatus(
          absl::StatusCode::kFailedPrecondition,
          StrCat("vaultTokenMountPath ", path, ": cannot read the token: ", std::strerror(errno)));
    }
    shared->token = std::string(Trim(text.str()));
    if (shared->token.empty()) {
      return MakeStatus(absl::StatusCode::kFailedPrecondition,
                        StrCat("vaultTokenMountPath ", path, ": the token file is empty"));
    }
  }
  http::ClientOptions options;
  if (shared->config.tls) options.tls = TlsOptionsOf(shared->config);
  if (options.tls) {
    if (absl::Status s = http::CheckTlsOptions(*options.tls); !s.ok()) {
      return MakeStatus(s.code(), StrCat(shared->Where(), ": ", MessageOf(s)));
    }
  }
  return std::make_unique<VaultStore>(std::move(shared), *context.io_context, std::move(options));
}

}  // namespace remora::components::secretstores::vault
