#pragma once

// The project's one HTTP/1.1 client (sidecar -> app channel, Vault, tests): asynchronous on an
// Asio io_context, keep-alive connections pooled per host:port, one deadline per request.
// Owned by components/common/http; see its README.
//
// Example:
//   remora::http::Client client(io);
//   client.Send("127.0.0.1", 3000, {.method = "POST", .target = "/orders", .body = json},
//               [](absl::StatusOr<remora::http::Response> r) { ... });

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "remora/components/common/callback.h"

namespace boost::asio {
class io_context;
}

namespace remora::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method = "GET";
  std::string target = "/";  // origin-form: path and query
  // Sent as given, in order. `Host` is added unless present; `Content-Length` is always computed
  // from `body` (a caller-supplied Content-Length or Transfer-Encoding is dropped). Names and
  // values containing CR, LF or NUL are rejected with INVALID_ARGUMENT.
  Headers headers;
  std::string body;
  // Covers the whole exchange: name resolution, connect, write and reading the full response,
  // including a retry on a fresh connection (see Client::Send).
  std::chrono::milliseconds timeout{5000};
};

struct Response {
  int status = 0;
  Headers headers;   // in the order received; names as the server spelled them
  std::string body;  // de-chunked
  // Case-insensitive lookup of the first header named `name`; empty when absent.
  std::string Header(std::string_view name) const;
};

// https for every connection of a Client (a Client speaks one scheme). TLS 1.2 or later, with
// SNI. The server certificate is verified against the CAs below and its name against
// `server_name` (or the host a request is sent to) unless `verify` is false.
struct TlsOptions {
  bool verify = true;       // false: any certificate is accepted (Vault's skipVerify)
  std::string server_name;  // SNI and the name to verify; empty: the request's host
  // Trusted CAs, PEM. The first non-empty one is used (inline, then the directory, then the
  // file, as Dapr's Vault store does); none: the system's default CA paths.
  std::string ca_pem;
  std::string ca_path;  // every file below it must hold PEM certificates
  std::string ca_file;
};

struct ClientOptions {
  // Idle keep-alive connections kept per host:port; more are closed when they become idle.
  size_t max_idle_per_host = 64;
  // An idle connection older than this is closed instead of reused (servers drop idle
  // connections on their own schedule; Node's default is 5 s, and the liveness check on reuse
  // catches most of those).
  std::chrono::milliseconds idle_timeout{60000};
  // Larger responses fail with INTERNAL.
  size_t max_response_body = 64 * 1024 * 1024;
  size_t max_response_header = 64 * 1024;
  // Set: every connection of this client is https (see TlsOptions).
  std::optional<TlsOptions> tls;
};

// OK when `tls` makes a usable TLS context (the CA PEM parses, the file or directory can be
// read); otherwise INVALID_ARGUMENT naming the setting. A Client built with unusable options
// fails every Send with that error.
absl::Status CheckTlsOptions(const TlsOptions& tls);

// Percent-encodes (uppercase hex) every byte but RFC 3986's unreserved characters and those in
// `keep`: "" for a query value or a single path segment, "/" to keep a path's separators,
// "!$&'()*+,;=:@" for everything a path segment may hold.
std::string PercentEncode(std::string_view in, std::string_view keep = "");

// Thread-safety: Send may be called from any thread. Handlers of one connection run on their own
// strand, so the io_context may be run by one thread or several.
//
// Lifetime: destroy the Client before its io_context. Destroying the Client while requests are in
// flight is safe: each of them completes with CANCELLED on the io_context (or with its result,
// when that raced the cancellation). If the io_context is stopped or destroyed without running
// them, pending callbacks are destroyed without being called.
class Client {
 public:
  explicit Client(boost::asio::io_context& io, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `request` to host:port (an IPv4/IPv6 literal is used as is; a name is resolved).
  // `done` runs exactly once, on a thread running the io_context, never inside Send. Any HTTP
  // status is a successful Response. Errors, each message naming the method, host:port and target:
  //   UNAVAILABLE        resolve/connect failure, connection reset or closed before a complete
  //                      response
  //   DEADLINE_EXCEEDED  request.timeout elapsed
  //   INTERNAL           unparsable response, or headers/body above the configured limits
  //   INVALID_ARGUMENT   a request that cannot be sent (bad header, empty host or method)
  //   CANCELLED          the Client was destroyed first
  //
  // Retry rule: a request sent on a reused pooled connection that fails with a transport error
  // before any byte of the response arrived (the server closed the idle connection under us) is
  // sent once more on a fresh connection if its method is idempotent (GET, HEAD, PUT, DELETE,
  // OPTIONS, TRACE) or if not a single byte of it was written. A POST or PATCH that may have
  // reached the server is never sent twice: it fails with UNAVAILABLE. Failures on fresh
  // connections are never retried.
  void Send(std::string host, uint16_t port, Request request, Callback<Response> done);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace remora::http
