#include "api/http/server.h"

#include <optional>

#include <boost/beast/core.hpp>

#include "absl/status/statusor.h"

#include "remora/components/common/strings.h"
#include "remora/runtime/log.h"

namespace remora::runtime::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

// Upper bound on how much of an oversized body we read and discard after answering 413, so the
// client sees the answer instead of a connection reset.
constexpr size_t kDrainLimit = 8 * 1024 * 1024;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Handler& handler, const ServerOptions& options)
      : stream_(std::move(socket)), handler_(handler), options_(options) {}

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_size);
    parser_->header_limit(options_.max_header_size);
    beast_http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == beast_http::error::end_of_stream || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted) {
      return Close();
    }
    if (ec == beast_http::error::body_limit) {
      Response res = handler_.TooLarge(parser_->get().version(), options_.max_body_size);
      return Write(std::move(res), /*keep_alive=*/false, /*drain=*/true);
    }
    if (ec) {
      if (ec != asio::error::eof) {
        Response res{beast_http::status::bad_request, 11};
        res.set(beast_http::field::content_type, "text/plain");
        res.body() = StrCat("malformed HTTP request: ", ec.message());
        return Write(std::move(res), false, false);
      }
      return Close();
    }
    Request& request = parser_->get();
    bool keep_alive = request.keep_alive();
    handler_.Handle(request, [self = shared_from_this(), keep_alive](Response res) mutable {
      // Components may answer on another thread; the session continues on its own loop, inline
      // when the answer came on that loop already.
      asio::dispatch(self->stream_.get_executor(),
                     [self, keep_alive, res = std::move(res)]() mutable {
                       self->Write(std::move(res), keep_alive, false);
                     });
    });
  }

  void Write(Response res, bool keep_alive, bool drain) {
    response_ = std::move(res);
    response_.keep_alive(keep_alive);
    response_.prepare_payload();
    beast_http::async_write(
        stream_, response_,
        [self = shared_from_this(), keep_alive, drain](beast::error_code ec, size_t) {
          if (ec) return self->Close();
          if (drain) return self->Drain();
          if (!keep_alive) return self->Close();
          self->Read();
        });
  }

  // After a 413 the client may still be sending its body; read and discard it (bounded) before
  // closing so the kernel does not reset the connection under the response.
  void Drain() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    drain_buffer_.resize(64 * 1024);
    stream_.async_read_some(asio::buffer(drain_buffer_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kDrainLimit) return self->Close();
                              self->Drain();
                            });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<beast_http::request_parser<beast_http::string_body>> parser_;
  Response response_;
  Handler& handler_;
  const ServerOptions& options_;
  std::vector<char> drain_buffer_;
  size_t drained_ = 0;
};

absl::StatusOr<asio::ip::address> ParseAddress(std::string text) {
  if (text == "localhost") text = "127.0.0.1";
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  beast::error_code ec;
  auto address = asio::ip::make_address(text, ec);
  if (ec) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("invalid listen address '", text, "'"));
  }
  return address;
}

}  // namespace

Server::Server(std::vector<asio::io_context*> loops, Handler& handler, ServerOptions options)
    : loops_(std::move(loops)), handler_(handler), options_(options) {}

// The loops are stopped before the server is destroyed, so closing here races with nothing.
Server::~Server() {
  for (auto& acceptor : acceptors_) {
    beast::error_code ignored;
    acceptor->close(ignored);
  }
}

absl::Status Server::Listen(const std::vector<std::string>& addresses, int port) {
  for (const std::string& text : addresses) {
    auto address = ParseAddress(text);
    if (!address.ok()) return address.status();
    auto acceptor = std::make_unique<tcp::acceptor>(*loops_.front());
    tcp::endpoint endpoint(*address, static_cast<unsigned short>(port_ != 0 ? port_ : port));
    beast::error_code ec;
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && address->is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      // An IPv6 loopback may be missing on a host without IPv6; one bound address suffices.
      if (address->is_v6() && ec == boost::system::errc::address_not_available &&
          !acceptors_.empty()) {
        log::Warn("skipping listen address ", text, ": ", ec.message());
        continue;
      }
      return MakeStatus(
          absl::StatusCode::kUnavailable,
          StrCat("cannot listen on ", text, ":", endpoint.port(), ": ", ec.message()));
    }
    port_ = acceptor->local_endpoint().port();
    acceptors_.push_back(std::move(acceptor));
    Accept(acceptors_.size() - 1);
  }
  return absl::OkStatus();
}

void Server::Accept(size_t index) {
  asio::io_context& loop = *loops_[next_loop_++ % loops_.size()];
  acceptors_[index]->async_accept(loop, [this, index](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), handler_, options_)->Start();
    } else {
      log::Warn("accept failed: ", ec.message());
    }
    Accept(index);
  });
}

void Server::Stop() {
  for (auto& acceptor : acceptors_) {
    asio::post(acceptor->get_executor(), [a = acceptor.get()] {
      beast::error_code ignored;
      a->close(ignored);
    });
  }
}

}  // namespace remora::runtime::http
