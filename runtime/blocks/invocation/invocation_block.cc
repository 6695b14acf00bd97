#include "blocks/invocation/invocation_block.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "observability/trace.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/asio.h"
#include "remora/runtime/errors.h"
#include "remora/runtime/log.h"

namespace remora::runtime {

namespace asio = boost::asio;

absl::Status InvokeError(std::string_view app_id, std::string_view why) {
  return errors::Make(errors::Code::kDirectInvoke,
                      StrCat("failed to invoke, id: ", app_id, ", err: ", why));
}

namespace {

// An error from the callee side keeps its message; a status that already carries a Dapr code (a
// callee sidecar's ERR_DIRECT_INVOKE) is not wrapped twice.
absl::Status Wrap(std::string_view app_id, const absl::Status& status) {
  errors::Code code;
  if (errors::CodeOf(status, &code)) return status;
  return InvokeError(app_id, MessageOf(status));
}

// A failure to reach the app or the callee sidecar: UNAVAILABLE (connection refused, peer gone)
// is marked unreachable for the resiliency classifier, after wrapping.
absl::Status TransportError(std::string_view app_id, const absl::Status& status) {
  absl::Status out = Wrap(app_id, status);
  if (status.code() == absl::StatusCode::kUnavailable) resiliency::MarkUnreachable(out);
  return out;
}

}  // namespace

// A remote call waiting for the gRPC module. Exactly one of SetRemoteInvoker, the timer and
// Shutdown takes it (`taken`).
struct InvocationBlock::Waiting {
  std::string target;
  std::string app_id;
  InvokeRequest request;
  Callback<InvokeResponse> done;
  std::atomic<bool> taken{false};
  std::unique_ptr<asio::steady_timer> timer;
};

InvocationBlock::InvocationBlock(Options options) : options_(std::move(options)) {}

InvocationBlock::~InvocationBlock() { Shutdown(); }

void InvocationBlock::SetAppChannel(AppChannel* channel) {
  std::lock_guard lock(mu_);
  app_channel_ = channel;
}

void InvocationBlock::SetRemoteInvoker(RemoteInvoker* invoker) {
  std::deque<std::shared_ptr<Waiting>> released;
  {
    std::lock_guard lock(mu_);
    remote_ = invoker;
    if (invoker != nullptr) released.swap(waiting_);
  }
  for (auto& w : released) {
    if (w->taken.exchange(true)) continue;
    if (w->timer) w->timer->cancel();
    SendRemote(invoker, std::move(w->target), std::move(w->app_id), std::move(w->request),
               std::move(w->done));
  }
}

void InvocationBlock::Shutdown() {
  std::deque<std::shared_ptr<Waiting>> failed;
  {
    std::lock_guard lock(mu_);
    shut_ = true;
    failed.swap(waiting_);
  }
  for (auto& w : failed) {
    if (w->taken.exchange(true)) continue;
    std::move(w->done)(InvokeError(w->app_id, "the sidecar is shutting down"));
  }
}

void InvocationBlock::Invoke(std::string app_id, InvokeRequest request,
                             Callback<InvokeResponse> done) {
  if (app_id.empty()) {
    return std::move(done)(
        errors::Make(errors::Code::kDirectInvokeNoAppId,
                     "failed getting app id either from the URL path or the header dapr-app-id"));
  }
  std::string namespace_;
  if (size_t dot = app_id.rfind('.'); dot != std::string::npos) {
    namespace_ = app_id.substr(dot + 1);
    app_id.resize(dot);
  }
  request.headers.emplace_back("dapr-caller-app-id", options_.app_id);
  request.headers.emplace_back("dapr-callee-app-id", app_id);
  if (!options_.namespace_.empty()) {
    request.headers.emplace_back("dapr-caller-namespace", options_.namespace_);
  }
  // Trace context: a child span of the caller's, on to the callee and back to the caller.
  std::string traceparent, tracestate;
  std::erase_if(request.headers, [&](const auto& h) {
    if (h.first == "traceparent") traceparent = h.second;
    if (h.first == "tracestate") tracestate = h.second;
    return h.first == "traceparent" || h.first == "tracestate";
  });
  auto trace = observability::TraceContext::ForRequest(traceparent, tracestate);
  std::string span(trace.traceparent());
  request.headers.emplace_back("traceparent", span);
  if (!trace.tracestate().empty()) request.headers.emplace_back("tracestate", trace.tracestate());
  done = [span, done = std::move(done)](absl::StatusOr<InvokeResponse> result) mutable {
    if (result.ok() &&
        std::none_of(result->headers.begin(), result->headers.end(), [](const auto& h) {
          return h.first.size() == 11 &&
                 std::equal(h.first.begin(), h.first.end(), "traceparent", [](char a, char b) {
                   return std::tolower(static_cast<unsigned char>(a)) == b;
                 });
        })) {
      result->headers.emplace_back("traceparent", span);
    }
    std::move(done)(std::move(result));
  };

  const bool local =
      app_id == options_.app_id && (namespace_.empty() || namespace_ == options_.namespace_);
  std::shared_ptr<resiliency::PolicyRunner> runner =
      options_.policies ? options_.policies->ForApp(app_id) : nullptr;
  if (runner == nullptr) {
    return Dispatch(local, std::move(app_id), std::move(namespace_), std::move(request),
                    std::move(done));
  }
  // Each attempt sends its own copy: a retry must not see a request moved away.
  auto shared = std::make_shared<const InvokeRequest>(std::move(request));
  runner->Run<InvokeResponse>(
      [this, local, app_id, namespace_, shared](Callback<InvokeResponse> attempt) {
        Dispatch(local, app_id, namespace_, *shared, std::move(attempt));
      },
      [](const absl::StatusOr<InvokeResponse>& r) {
        // Unreachable (retried by Dapr's built-in service retries too) vs a call that cannot
        // succeed (unknown app id: counted, never retried).
        if (!r.ok()) {
          return resiliency::IsUnreachable(r.status()) ? resiliency::Outcome::kUnreachable
                                                       : resiliency::Outcome::kPermanent;
        }
        if (r->grpc_code != 0 || r->http_status < 200 || r->http_status > 399) {
          return resiliency::Outcome::kFailure;
        }
        return resiliency::Outcome::kSuccess;
      },
      [app_id, done = std::move(done)](absl::StatusOr<InvokeResponse> result) mutable {
        if (!result.ok()) return std::move(done)(Wrap(app_id, result.status()));
        std::move(done)(std::move(result));
      });
}

void InvocationBlock::Dispatch(bool local, std::string app_id, std::string namespace_,
                               InvokeRequest request, Callback<InvokeResponse> done) {
  if (local) return InvokeLocal(std::move(request), std::move(done));
  InvokeRemote(std::move(app_id), std::move(namespace_), std::move(request), std::move(done));
}

void InvocationBlock::InvokeLocal(InvokeRequest request, Callback<InvokeResponse> done) {
  AppChannel* channel;
  {
    std::lock_guard lock(mu_);
    channel = app_channel_;
  }
  if (channel == nullptr) {
    return std::move(done)(
        InvokeError(options_.app_id, "no app channel: the sidecar has no --app-port"));
  }
  if (!app_healthy_.load()) {
    return std::move(done)(InvokeError(options_.app_id, "app is not healthy"));
  }
  channel->Invoke(std::move(request), [app_id = options_.app_id, done = std::move(done)](
                                          absl::StatusOr<InvokeResponse> result) mutable {
    if (!result.ok()) return std::move(done)(TransportError(app_id, result.status()));
    std::move(done)(std::move(result));
  });
}

void InvocationBlock::InvokeRemote(std::string app_id, std::string namespace_,
                                   InvokeRequest request, Callback<InvokeResponse> done) {
  if (options_.resolver == nullptr) {
    return std::move(done)(InvokeError(app_id, "no name resolution component is configured"));
  }
  auto target = options_.resolver->Resolve(app_id, namespace_);
  if (!target.ok()) return std::move(done)(InvokeError(app_id, MessageOf(target.status())));
  RemoteInvoker* invoker;
  {
    std::lock_guard lock(mu_);
    if (shut_) {
      return std::move(done)(InvokeError(app_id, "the sidecar is shutting down"));
    }
    invoker = remote_;
    if (invoker == nullptr) {
      // The gRPC module is still loading: wait for it, bounded.
      auto w = std::make_shared<Waiting>();
      w->target = *std::move(target);
      w->app_id = std::move(app_id);
      w->request = std::move(request);
      w->done = std::move(done);
      if (options_.io != nullptr) {
        w->timer = std::make_unique<asio::steady_timer>(*options_.io, options_.remote_wait);
        w->timer->async_wait([w](const boost::system::error_code&) {
          if (w->taken.exchange(true)) return;
          std::move(w->done)(InvokeError(
              w->app_id, "the sidecar-to-sidecar channel (gRPC module) is not available"));
        });
      }
      waiting_.push_back(std::move(w));
      return;
    }
  }
  SendRemote(invoker, *std::move(target), std::move(app_id), std::move(request), std::move(done));
}

void InvocationBlock::SendRemote(RemoteInvoker* invoker, std::string target, std::string app_id,
                                 InvokeRequest request, Callback<InvokeResponse> done) {
  invoker->Invoke(target, app_id, std::move(request), options_.remote_timeout,
                  [app_id, done = std::move(done)](absl::StatusOr<InvokeResponse> result) mutable {
                    if (!result.ok())
                      return std::move(done)(TransportError(app_id, result.status()));
                    std::move(done)(std::move(result));
                  });
}

}  // namespace remora::runtime
