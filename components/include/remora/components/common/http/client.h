#pragma once

// The project's one HTTP/1.1 client (app channel, Vault, tests): asynchronous on the event loop,
// keep-alive connections pooled per host:port, a timeout on every request. Owned by
// components/common/http; see its README.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "remora/components/common/callback.h"

namespace boost::asio {
class io_context;
}

namespace remora::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method = "GET";
  std::string target = "/";  // path and query
  Headers headers;
  std::string body;
  std::chrono::milliseconds timeout{5000};  // connect + write + read
};

struct Response {
  int status = 0;
  Headers headers;
  std::string body;
  // Case-insensitive lookup; empty when absent.
  std::string Header(std::string_view name) const;
};

struct ClientOptions {
  size_t max_idle_per_host = 64;
  size_t max_response_body = 64 * 1024 * 1024;
};

class Client {
 public:
  Client(boost::asio::io_context& io, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `request` to host:port. The callback runs on the io_context's thread. Errors:
  // UNAVAILABLE (connect/transport failure), DEADLINE_EXCEEDED (timeout), INTERNAL (bad response).
  void Send(std::string host, uint16_t port, Request request, Callback<Response> done);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace remora::http
