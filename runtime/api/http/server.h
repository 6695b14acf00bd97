#pragma once

// HTTP/1.1 server on Boost.Beast: keep-alive, asynchronous, one session per connection on one of
// the event-loop threads. It knows nothing of Dapr: routes.h supplies the handler.

#include <memory>
#include <string>
#include <vector>

#include "remora/runtime/asio.h"

#include <boost/beast/http.hpp>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace remora::runtime::http {

namespace beast_http = boost::beast::http;
using Request = beast_http::request<beast_http::string_body>;
using Response = beast_http::response<beast_http::string_body>;

// Completes a request exactly once, from any thread; the session resumes on its own loop.
using Reply = absl::AnyInvocable<void(Response) &&>;

class Handler {
 public:
  virtual ~Handler() = default;
  virtual void Handle(Request& request, Reply reply) = 0;
  // The response for a body over the size limit (the body is never read).
  virtual Response TooLarge(unsigned version, uint64_t limit) = 0;
};

struct ServerOptions {
  uint64_t max_body_size = 4 * 1024 * 1024;
  uint32_t max_header_size = 8 * 1024;
};

class Server {
 public:
  // `loops` run the sessions (round robin); the acceptors live on the first one.
  Server(std::vector<boost::asio::io_context*> loops, Handler& handler, ServerOptions options);
  ~Server();

  // Binds and listens on every address (synchronously, so a busy port fails start-up).
  // Port 0 picks a free port; port() tells which.
  absl::Status Listen(const std::vector<std::string>& addresses, int port);
  int port() const { return port_; }
  // Stops accepting; open sessions finish their current request.
  void Stop();

 private:
  void Accept(size_t index);

  std::vector<boost::asio::io_context*> loops_;
  Handler& handler_;
  ServerOptions options_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  size_t next_loop_ = 0;
  int port_ = 0;
};

}  // namespace remora::runtime::http
