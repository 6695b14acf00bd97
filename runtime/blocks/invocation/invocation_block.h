#pragma once

// The service-invocation building block (contract §2.1, §1.5 InvokeService, §1.6): protocol-free.
// The HTTP route (/v1.0/invoke/{appId}/method/..., `dapr-app-id` on any path), gRPC InvokeService
// and the internal gRPC server all call it.
//
//   Invoke(app_id == own app id)  -> the app channel (HTTP or gRPC AppCallback)
//   Invoke(another app id)        -> name resolution -> RemoteInvoker -> the other sidecar's
//                                    internal gRPC port -> its InvokeLocal -> its app
//
// The runtime does not link gRPC (api/grpc/api.h): the RemoteInvoker comes from the gRPC module
// once it is loaded (≤ ~100 ms after start). Remote calls made before that wait for it up to
// `remote_wait`, then fail UNAVAILABLE.
//
// Errors (all carry errors::Code, rendered through the one error table):
//   app id empty                      ERR_DIRECT_INVOKE 404 "failed getting app id ..."
//   unknown app id, unreachable peer,
//   callee app down, timeout          ERR_DIRECT_INVOKE 500 "failed to invoke, id: X, err: ..."
//   no app channel / app unhealthy    ERR_DIRECT_INVOKE 500 (same message form)
// Any answer the app gives (404, 500, ...) is a successful InvokeResponse, passed back as is.
//
// Thread-safety: every method may be called from any thread; callbacks run on any thread.

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "appchannel/app_channel.h"
#include "nameresolution/name_resolver.h"
#include "resiliency/runner.h"

namespace boost::asio {
class io_context;
}

namespace remora::runtime {

// Calls another sidecar's internal API. Supplied by the gRPC module.
class RemoteInvoker {
 public:
  virtual ~RemoteInvoker() = default;
  // Sends `request` for app `app_id` to the sidecar at `target` ("host:port"). The callback's
  // error is a transport failure or an error the callee sidecar reported (its app down, ...);
  // any answer of the callee's app is a response. `timeout` bounds the whole call.
  virtual void Invoke(const std::string& target, const std::string& app_id, InvokeRequest request,
                      std::chrono::milliseconds timeout, Callback<InvokeResponse> done) = 0;
};

class InvocationBlock {
 public:
  struct Options {
    std::string app_id;
    std::string namespace_;
    boost::asio::io_context* io = nullptr;         // timers (remote_wait)
    nameresolution::Resolver* resolver = nullptr;  // null: only the own app id can be called
    // Resiliency for app targets (`targets.apps.<appId>`: timeout, retries, circuit breaker);
    // null: each call is tried once. A reply outside 200-399 counts as a failure, as in Dapr.
    resiliency::AppPolicies* policies = nullptr;
    std::chrono::milliseconds remote_wait{3000};
    // Upper bound of one call to another sidecar (Resiliency timeouts may be shorter).
    std::chrono::milliseconds remote_timeout{60000};
  };

  explicit InvocationBlock(Options options);
  ~InvocationBlock();

  // Set before the APIs serve, or later (gRPC app channel). Null: no app to call.
  void SetAppChannel(AppChannel* channel);
  // Set by the gRPC module once loaded; null when it unloads. Releases the waiting calls.
  void SetRemoteInvoker(RemoteInvoker* invoker);
  // App health (--enable-app-health-check): while false, local calls fail without reaching the
  // app.
  void SetAppHealthy(bool healthy) { app_healthy_.store(healthy); }

  // `app_id` may be "app.namespace". The headers of `request` reach the app with
  // dapr-caller-app-id / dapr-callee-app-id added, and `traceparent`/`tracestate` for a child span
  // of the caller's trace (a new trace when it sent none); the response carries that
  // `traceparent` unless the app set its own.
  void Invoke(std::string app_id, InvokeRequest request, Callback<InvokeResponse> done);

  // A call for this sidecar's own app that came from another sidecar (the internal API):
  // `request` is passed to the app channel as is. Errors as for Invoke, with the app id.
  void InvokeLocal(InvokeRequest request, Callback<InvokeResponse> done);

  const std::string& app_id() const { return options_.app_id; }

  // Shuts the block: calls still waiting for the remote invoker fail with UNAVAILABLE.
  void Shutdown();

 private:
  struct Waiting;
  void Dispatch(bool local, std::string app_id, std::string namespace_, InvokeRequest request,
                Callback<InvokeResponse> done);
  void InvokeRemote(std::string app_id, std::string namespace_, InvokeRequest request,
                    Callback<InvokeResponse> done);
  void SendRemote(RemoteInvoker* invoker, std::string target, std::string app_id,
                  InvokeRequest request, Callback<InvokeResponse> done);

  Options options_;
  std::mutex mu_;
  AppChannel* app_channel_ = nullptr;
  RemoteInvoker* remote_ = nullptr;
  bool shut_ = false;
  std::deque<std::shared_ptr<Waiting>> waiting_;
  std::atomic<bool> app_healthy_{true};
};

// ERR_DIRECT_INVOKE "failed to invoke, id: <app_id>, err: <why>".
absl::Status InvokeError(std::string_view app_id, std::string_view why);

}  // namespace remora::runtime
