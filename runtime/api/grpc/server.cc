// The gRPC API server: the body of the libremora_grpc.so module (see api.h).

#include "api/grpc/api.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>

#include <grpcpp/grpcpp.h>

#include "api/grpc/dapr_service.h"
#include "api/grpc/grpc_app_channel.h"
#include "api/grpc/internal_invoke.h"
#include "api/grpc/proxy.h"
#include "remora/components/common/strings.h"

namespace remora::runtime::grpc {
namespace {

// "host:port" as gRPC wants it: IPv6 literals in brackets.
std::string HostPort(std::string_view host, int port) {
  if (host.find(':') != std::string_view::npos && !host.starts_with('[')) {
    return StrCat("[", host, "]:", port);
  }
  return StrCat(host, ":", port);
}

std::string Unbracket(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return std::string(host.substr(1, host.size() - 2));
  }
  return std::string(host);
}

// Binds a throwaway socket to host:port the way a listener would. Returns the bound port, or
// the OS error. Used to choose one free port for several addresses, and to say why gRPC could not
// listen: gRPC's own failure carries no errno we can read.
absl::StatusOr<int> ProbeBind(std::string_view host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string name = Unbracket(host);
  std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(name.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("cannot resolve ", host, ": ", ::gai_strerror(rc)));
  }
  absl::StatusOr<int> result = MakeStatus(absl::StatusCode::kUnavailable, "no address");
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      sockaddr_storage bound{};
      socklen_t len = sizeof(bound);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
      int bound_port = bound.ss_family == AF_INET6
                           ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                           : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
      ::close(fd);
      result = bound_port;
      break;
    }
    result =
        MakeStatus(absl::StatusCode::kUnavailable,
                   StrCat("cannot listen on ", HostPort(host, port), ": ", std::strerror(errno)));
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return result;
}

class Server final : public Api {
 public:
  Server(Blocks blocks, ApiHooks hooks, const ApiConfig& config)
      : service_(blocks, std::move(hooks), config.api_token, config.api_logging),
        unknown_(service_),
        forwarder_(static_cast<int>(std::min<uint64_t>(config.max_message_size, INT_MAX))),
        proxy_(service_, unknown_, forwarder_) {}
  ~Server() override { Shutdown(std::chrono::system_clock::now()); }

  int port() const override { return port_; }

  std::unique_ptr<AppChannel> CreateAppChannel(AppChannelConfig config) override {
    // gRPC proxying calls the same app, on its own channel (generic calls, any method).
    forwarder_.SetApp(config);
    return std::make_unique<GrpcAppChannel>(std::move(config));
  }

  int internal_port() const override { return internal_ ? internal_->port() : 0; }

  // The sidecar-to-sidecar API and the invoker other sidecars are called through.
  absl::Status StartInternal(Blocks blocks, const ApiConfig& config) {
    if (blocks.invocation == nullptr) return absl::OkStatus();
    auto internal = InternalApi::Start(*blocks.invocation, forwarder_,
                                       config.internal_listen_addresses.empty()
                                           ? config.listen_addresses
                                           : config.internal_listen_addresses,
                                       config.internal_port, config.max_message_size);
    if (!internal.ok()) return internal.status();
    internal_ = *std::move(internal);
    invocation_ = blocks.invocation;
    invocation_->SetRemoteInvoker(&internal_->invoker());
    proxy_.SetInvocation(invocation_);
    return absl::OkStatus();
  }

  void Shutdown(std::chrono::system_clock::time_point deadline) override {
    proxy_.SetInvocation(nullptr);
    if (internal_) {
      invocation_->SetRemoteInvoker(nullptr);
      internal_->Shutdown(deadline);
    }
    if (!server_) return;
    // Calls in progress get until `deadline`; then gRPC closes connections at once instead of
    // waiting for idle clients to hang up (see DaprService::Drain).
    service_.Drain(deadline);
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    server_.reset();
  }

  absl::Status Listen(const ApiConfig& config) {
    if (config.listen_addresses.empty()) {
      return MakeStatus(absl::StatusCode::kInvalidArgument, "gRPC API: no listen address");
    }
    // gRPC picks a free port per address; several addresses must share one, so choose it first
    // (as the HTTP server does: the first address decides).
    int port = config.port;
    if (port == 0 && config.listen_addresses.size() > 1) {
      auto free_port = ProbeBind(config.listen_addresses.front(), 0);
      if (!free_port.ok()) return free_port.status();
      port = *free_port;
    }

    ::grpc::ServerBuilder builder;
    // gRPC sets SO_REUSEPORT by default, which would let two sidecars share a port silently;
    // daprd fails to start instead.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    const int limit = static_cast<int>(std::min<uint64_t>(config.max_message_size, INT_MAX));
    builder.SetMaxReceiveMessageSize(limit);
    builder.SetMaxSendMessageSize(limit);
    std::vector<int> selected(config.listen_addresses.size(), 0);
    for (size_t i = 0; i < config.listen_addresses.size(); ++i) {
      builder.AddListeningPort(HostPort(config.listen_addresses[i], port),
                               ::grpc::InsecureServerCredentials(), &selected[i]);
    }
    builder.RegisterService(&service_);
    builder.RegisterCallbackGenericService(&proxy_);
    server_ = builder.BuildAndStart();

    if (server_ == nullptr ||
        !std::all_of(selected.begin(), selected.end(), [](int p) { return p > 0; })) {
      Shutdown(std::chrono::system_clock::now());
      for (const std::string& address : config.listen_addresses) {
        auto probe = ProbeBind(address, port);
        if (!probe.ok()) {
          return MakeStatus(probe.status().code(), StrCat("gRPC API: ", MessageOf(probe.status())));
        }
      }
      return MakeStatus(absl::StatusCode::kUnavailable,
                        StrCat("gRPC API: cannot listen on port ", port, " (see gRPC's log)"));
    }
    port_ = selected.front();
    return absl::OkStatus();
  }

 private:
  // Declared before `server_`, which is destroyed (shut down) first.
  InvocationBlock* invocation_ = nullptr;
  std::unique_ptr<InternalApi> internal_;
  DaprService service_;
  UnknownMethods unknown_;
  AppForwarder forwarder_;
  ProxyService proxy_;
  std::unique_ptr<::grpc::Server> server_;
  int port_ = 0;
};

absl::StatusOr<std::unique_ptr<Api>> Start(Blocks blocks, ApiHooks hooks, ApiConfig config) {
  auto server = std::make_unique<Server>(blocks, std::move(hooks), config);
  if (absl::Status s = server->Listen(config); !s.ok()) return s;
  if (absl::Status s = server->StartInternal(blocks, config); !s.ok()) return s;
  return std::unique_ptr<Api>(std::move(server));
}

}  // namespace

}  // namespace remora::runtime::grpc

// The module's entry point, found by loader.cc with dlsym. (`extern "C"` without braces also
// makes the const variable external.)
extern "C" const remora::runtime::grpc::StartFn remora_grpc_api_start =
    &remora::runtime::grpc::Start;
