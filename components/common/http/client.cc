#include <utility>  // before Asio/Beast: Boost 1.74 + GCC 12 in C++20 needs it first

#include "remora/components/common/http/client.h"

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "remora/components/common/strings.h"

namespace remora::http {

std::string Response::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(Sv(std::string_view(key)), Sv(name))) return value;
  }
  return {};
}

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using ErrorCode = boost::system::error_code;
using Strand = asio::strand<asio::io_context::executor_type>;

bool IEquals(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(Sv(a), Sv(b));
}

// RFC 9110 §9.2.2. Only these may be sent twice when a reused connection turns out dead.
bool IsIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS" || method == "TRACE";
}

bool HasControlChar(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return true;
  }
  return false;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= ' ' || c >= 0x7f || c == ':' || c == '(' || c == ')' || c == ',' || c == '"' ||
        c == '/' || c == ';' || c == '<' || c == '=' || c == '>' || c == '?' || c == '@' ||
        c == '[' || c == '\\' || c == ']' || c == '{' || c == '}') {
      return false;
    }
  }
  return true;
}

absl::Status Validate(std::string_view host, const Request& request) {
  if (host.empty())
    return MakeStatus(absl::StatusCode::kInvalidArgument, "HTTP request: empty host");
  if (!IsToken(request.method)) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("HTTP request: invalid method '", request.method, "'"));
  }
  if (request.target.empty() || request.target.find_first_of(" \t\r\n", 0) != std::string::npos ||
      request.target.find('\0') != std::string::npos) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("HTTP request: invalid target '", request.target, "'"));
  }
  for (const auto& [name, value] : request.headers) {
    if (!IsToken(name) || HasControlChar(value)) {
      return MakeStatus(absl::StatusCode::kInvalidArgument,
                        StrCat("HTTP request: invalid header '", name, "'"));
    }
  }
  return absl::OkStatus();
}

// "host:port", bracketing IPv6 literals; used as pool key, Host header and in error messages.
std::string HostPort(std::string_view host, uint16_t port) {
  if (host.find(':') != std::string_view::npos) return StrCat("[", host, "]:", port);
  return StrCat(host, ":", port);
}

absl::Status TlsError(std::string_view what) {
  return MakeStatus(absl::StatusCode::kInvalidArgument, StrCat("TLS: ", what));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) return TlsError(StrCat("cannot read ", path));
  return text.str();
}

// One context per Client: the CA set and the verification mode never change afterwards.
absl::StatusOr<std::shared_ptr<ssl::context>> MakeTlsContext(const TlsOptions& tls) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  ErrorCode ec;
  auto add_pem = [&](const std::string& pem, std::string_view origin) -> absl::Status {
    ctx->add_certificate_authority(asio::buffer(pem), ec);
    if (ec) return TlsError(StrCat(origin, ": not a PEM certificate (", ec.message(), ")"));
    return absl::OkStatus();
  };
  if (!tls.ca_pem.empty()) {
    if (absl::Status s = add_pem(tls.ca_pem, "the inline CA"); !s.ok()) return s;
  } else if (!tls.ca_path.empty()) {
    std::error_code fs_ec;
    for (std::filesystem::recursive_directory_iterator it(tls.ca_path, fs_ec), end;
         !fs_ec && it != end; it.increment(fs_ec)) {
      if (!it->is_regular_file()) continue;
      auto pem = ReadFile(it->path().string());
      if (!pem.ok()) return pem.status();
      if (absl::Status s = add_pem(*pem, it->path().string()); !s.ok()) return s;
    }
    if (fs_ec) return TlsError(StrCat("CA directory ", tls.ca_path, ": ", fs_ec.message()));
  } else if (!tls.ca_file.empty()) {
    auto pem = ReadFile(tls.ca_file);
    if (!pem.ok()) return pem.status();
    if (absl::Status s = add_pem(*pem, tls.ca_file); !s.ok()) return s;
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) return TlsError(StrCat("the system CA paths: ", ec.message()));
  }
  ctx->set_verify_mode(tls.verify ? ssl::verify_peer : ssl::verify_none);
  return ctx;
}

class Core;

// One TCP connection and, while active, the one request it carries. All of its handlers run on
// its strand. Pending handlers hold a shared_ptr to it, so it outlives every operation it
// started; the pool holds idle ones.
//
// Transport: `socket_`, wrapped by `tls_` on an https client (a TLS session per connection,
// handshaken between connect and the first write). Reads and writes go through WithStream.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(std::shared_ptr<Core> core, asio::io_context& io, std::string host, uint16_t port,
       std::string key)
      : core_(std::move(core)),
        strand_(asio::make_strand(io)),
        socket_(strand_),
        timer_(strand_),
        host_(std::move(host)),
        port_(port),
        key_(std::move(key)) {}
  ~Conn();

  const std::string& key() const { return key_; }
  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }
  const Strand& strand() const { return strand_; }

  void Start(Request request, Callback<Response> done, Clock::time_point deadline, bool reused);
  // Ends the active request with CANCELLED (the client is going away).
  void Cancel();
  // Cheap check on an idle connection before reuse: a server that closed it (FIN) or sent
  // something unsolicited (a 408) makes it unusable. Catches most stale connections without
  // paying a failed request for them.
  bool LooksAlive();

  // Guarded by the Core's mutex.
  Clock::time_point idle_since;
  bool registered = false;

 private:
  enum class Phase { kResolve, kConnect, kHandshake, kWrite, kRead };

  // Calls `f` with the stream requests travel on: the TLS stream or the plain socket.
  template <typename F>
  void WithStream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(socket_);
    }
  }

  void Connect();
  void OnConnected(const ErrorCode& ec);
  void Handshake();
  void Write();
  void Read();
  void OnHeader(const ErrorCode& ec);
  void Complete();
  void OnError(const ErrorCode& ec, Phase phase);
  void Abort();
  void Finish(absl::StatusOr<Response> result, bool keep);
  absl::Status ErrorStatus(absl::StatusCode code, std::string_view detail) const;

  const std::shared_ptr<Core> core_;
  Strand strand_;
  tcp::socket socket_;
  std::optional<ssl::stream<tcp::socket&>> tls_;  // https only; one session per connection
  asio::steady_timer timer_;
  std::optional<tcp::resolver> resolver_;
  const std::string host_;
  const uint16_t port_;
  const std::string key_;

  // Per-request state; reused across requests so a pooled request allocates little.
  uint64_t seq_ = 0;  // identifies the request a timer callback belongs to
  bool active_ = false;
  bool reused_ = false;
  bool timed_out_ = false;
  bool cancelled_ = false;
  bool response_started_ = false;
  size_t bytes_written_ = 0;
  Clock::time_point deadline_;
  Request request_;
  Callback<Response> done_;
  std::string out_;  // serialized request line + headers
  boost::beast::flat_buffer buffer_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
};

// The shared state behind a Client: the idle pool and the set of active connections (so that
// destroying the Client can cancel them). Outlives the Client while connections are in flight.
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(asio::io_context& io, ClientOptions options) : io_(io), options_(options) {
    if (options_.tls) {
      auto ctx = MakeTlsContext(*options_.tls);
      if (ctx.ok()) {
        tls_context_ = *std::move(ctx);
      } else {
        tls_error_ = ctx.status();
      }
    }
  }

  const ClientOptions& options() const { return options_; }
  // Null on a plain-HTTP client.
  ssl::context* tls_context() const { return tls_context_.get(); }
  bool shut_down() const { return shut_down_.load(std::memory_order_acquire); }

  void Send(std::string host, uint16_t port, Request request, Callback<Response> done) {
    absl::Status status = tls_error_;
    if (status.ok()) status = Validate(host, request);
    if (!status.ok()) {
      asio::post(io_, [done = std::move(done), status = std::move(status)]() mutable {
        std::move(done)(std::move(status));
      });
      return;
    }
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    Clock::time_point deadline = Clock::now() + request.timeout;
    std::string key = HostPort(host, port);
    std::shared_ptr<Conn> conn = TakeIdle(key);
    const bool reused = conn != nullptr;
    if (!conn) {
      conn = std::make_shared<Conn>(shared_from_this(), io_, std::move(host), port, std::move(key));
    }
    Launch(std::move(conn), std::move(request), std::move(done), deadline, reused);
  }

  // The one retry of the stale-connection rule: never from the pool, same deadline.
  void Retry(const Conn& failed, Request request, Callback<Response> done,
             Clock::time_point deadline) {
    auto conn =
        std::make_shared<Conn>(shared_from_this(), io_, failed.host(), failed.port(), failed.key());
    Launch(std::move(conn), std::move(request), std::move(done), deadline, /*reused=*/false);
  }

  // A connection finished its request; `keep` offers it back to the pool.
  void Release(const std::shared_ptr<Conn>& conn, bool keep) {
    absl::MutexLock lock(&mu_);
    active_.erase(conn.get());
    conn->registered = false;
    if (!keep || shut_down()) return;
    std::vector<std::shared_ptr<Conn>>& idle = idle_[conn->key()];
    if (idle.size() >= options_.max_idle_per_host) return;
    conn->idle_since = Clock::now();
    idle.push_back(conn);
  }

  // Called by ~Conn for a connection abandoned while registered (its io_context was destroyed
  // with the request pending).
  void Unregister(Conn* conn) {
    absl::MutexLock lock(&mu_);
    active_.erase(conn);
  }

  void Shutdown() {
    absl::flat_hash_map<std::string, std::vector<std::shared_ptr<Conn>>> idle;
    std::vector<std::shared_ptr<Conn>> active;
    {
      absl::MutexLock lock(&mu_);
      shut_down_.store(true, std::memory_order_release);
      idle.swap(idle_);
      active.reserve(active_.size());
      for (Conn* conn : active_) {
        // Null when that connection is being destroyed right now (its destructor waits for mu_).
        if (std::shared_ptr<Conn> alive = conn->weak_from_this().lock()) {
          active.push_back(std::move(alive));
        }
      }
    }
    for (std::shared_ptr<Conn>& conn : active) {
      Strand strand = conn->strand();
      asio::post(strand, [conn = std::move(conn)] { conn->Cancel(); });
    }
    // Idle connections close here (the pool held the last reference to them).
  }

 private:
  std::shared_ptr<Conn> TakeIdle(const std::string& key) {
    const Clock::time_point now = Clock::now();
    absl::MutexLock lock(&mu_);
    auto it = idle_.find(key);
    if (it == idle_.end()) return nullptr;
    std::vector<std::shared_ptr<Conn>>& idle = it->second;
    // LIFO: the most recently used connection is the least likely to have been dropped.
    while (!idle.empty()) {
      std::shared_ptr<Conn> conn = std::move(idle.back());
      idle.pop_back();
      if (now - conn->idle_since > options_.idle_timeout) {
        idle.clear();  // the others are older still
        break;
      }
      if (conn->LooksAlive()) return conn;
    }
    return nullptr;
  }

  void Launch(std::shared_ptr<Conn> conn, Request request, Callback<Response> done,
              Clock::time_point deadline, bool reused) {
    {
      absl::MutexLock lock(&mu_);
      active_.insert(conn.get());
      conn->registered = true;
    }
    // Always posted: the callback never runs inside Send, and Start runs on the strand.
    Strand strand = conn->strand();
    asio::post(strand, [conn = std::move(conn), request = std::move(request),
                        done = std::move(done), deadline, reused]() mutable {
      conn->Start(std::move(request), std::move(done), deadline, reused);
    });
  }

  asio::io_context& io_;
  const ClientOptions options_;
  std::shared_ptr<ssl::context> tls_context_;
  absl::Status tls_error_;  // unusable TlsOptions: every Send fails with it
  std::atomic<bool> shut_down_{false};
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<std::shared_ptr<Conn>>> idle_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<Conn*> active_ ABSL_GUARDED_BY(mu_);
};

Conn::~Conn() {
  if (registered) core_->Unregister(this);
}

bool Conn::LooksAlive() {
  if (!socket_.is_open()) return false;
  char byte;
  ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void Conn::Start(Request request, Callback<Response> done, Clock::time_point deadline,
                 bool reused) {
  ++seq_;
  active_ = true;
  reused_ = reused;
  timed_out_ = false;
  cancelled_ = false;
  response_started_ = false;
  bytes_written_ = 0;
  deadline_ = deadline;
  request_ = std::move(request);
  done_ = std::move(done);
  if (core_->shut_down()) {
    cancelled_ = true;
    Finish(ErrorStatus(absl::StatusCode::kCancelled, "client destroyed"), false);
    return;
  }
  timer_.expires_at(deadline);
  timer_.async_wait([self = shared_from_this(), seq = seq_](const ErrorCode& ec) {
    if (ec || seq != self->seq_ || !self->active_) return;
    self->timed_out_ = true;
    self->Abort();
  });
  if (socket_.is_open()) {
    Write();
  } else {
    Connect();
  }
}

void Conn::Cancel() {
  if (!active_) return;
  cancelled_ = true;
  Abort();
}

// Makes every pending operation complete with an error; the handlers then report the cause.
void Conn::Abort() {
  ErrorCode ignored;
  socket_.close(ignored);
  if (resolver_) resolver_->cancel();
}

void Conn::Connect() {
  ErrorCode ec;
  asio::ip::address address = asio::ip::make_address(host_, ec);
  if (!ec) {
    socket_.async_connect(
        tcp::endpoint(address, port_),
        [self = shared_from_this()](const ErrorCode& ec) { self->OnConnected(ec); });
    return;
  }
  if (!resolver_) resolver_.emplace(strand_);
  resolver_->async_resolve(
      host_, std::to_string(port_),
      [self = shared_from_this()](const ErrorCode& ec, tcp::resolver::results_type results) {
        if (ec || self->timed_out_ || self->cancelled_) {
          self->OnError(ec ? ec : asio::error::operation_aborted, Phase::kResolve);
          return;
        }
        asio::async_connect(
            self->socket_, results,
            [self](const ErrorCode& ec, const tcp::endpoint&) { self->OnConnected(ec); });
      });
}

void Conn::OnConnected(const ErrorCode& ec) {
  if (ec || timed_out_ || cancelled_) {
    OnError(ec ? ec : asio::error::operation_aborted, Phase::kConnect);
    return;
  }
  ErrorCode ignored;
  socket_.set_option(tcp::no_delay(true), ignored);
  if (core_->tls_context() != nullptr) {
    Handshake();
    return;
  }
  Write();
}

void Conn::Handshake() {
  const TlsOptions& tls = *core_->options().tls;
  const std::string& name = tls.server_name.empty() ? host_ : tls.server_name;
  tls_.emplace(socket_, *core_->tls_context());
  ErrorCode not_an_address;
  asio::ip::make_address(name, not_an_address);
  if (not_an_address) {
    // SNI carries names only (RFC 6066).
    SSL_set_tlsext_host_name(tls_->native_handle(), name.c_str());
  }
  if (tls.verify) tls_->set_verify_callback(ssl::host_name_verification(name));
  tls_->async_handshake(ssl::stream_base::client, [self = shared_from_this()](const ErrorCode& ec) {
    if (ec || self->timed_out_ || self->cancelled_) {
      self->OnError(ec ? ec : asio::error::operation_aborted, Phase::kHandshake);
      return;
    }
    self->Write();
  });
}

void Conn::Write() {
  // Serialized by hand into a buffer the connection keeps: no per-field allocations, and the
  // body goes out from the caller's string in the same gather write.
  out_.clear();
  StrAppend(&out_, request_.method, " ", request_.target, " HTTP/1.1\r\n");
  bool has_host = false;
  for (const auto& [name, value] : request_.headers) {
    if (IEquals(name, "content-length") || IEquals(name, "transfer-encoding")) continue;
    if (IEquals(name, "host")) has_host = true;
    StrAppend(&out_, name, ": ", value, "\r\n");
  }
  if (!has_host) StrAppend(&out_, "Host: ", key_, "\r\n");
  const std::string_view method = request_.method;
  if (!request_.body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    StrAppend(&out_, "Content-Length: ", request_.body.size(), "\r\n");
  }
  out_.append("\r\n");
  std::array<asio::const_buffer, 2> buffers{asio::buffer(out_), asio::buffer(request_.body)};
  WithStream([&](auto& stream) {
    asio::async_write(stream, buffers,
                      [self = shared_from_this()](const ErrorCode& ec, size_t written) {
                        self->bytes_written_ = written;
                        if (ec || self->timed_out_ || self->cancelled_) {
                          self->OnError(ec ? ec : asio::error::operation_aborted, Phase::kWrite);
                          return;
                        }
                        self->Read();
                      });
  });
}

void Conn::Read() {
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(core_->options().max_response_header));
  parser_->body_limit(static_cast<uint64_t>(core_->options().max_response_body));
  if (request_.method == "HEAD") parser_->skip(true);
  // Header first: Beast 1.74's eager parsing (what async_read does) drops the body_limit error
  // for an oversized Content-Length and goes on to reserve that much; the header-only read
  // reports it.
  WithStream([&](auto& stream) {
    bhttp::async_read_header(
        stream, buffer_, *parser_,
        [self = shared_from_this()](const ErrorCode& ec, size_t) { self->OnHeader(ec); });
  });
}

void Conn::OnHeader(const ErrorCode& ec) {
  if (ec) {
    OnError(ec, Phase::kRead);
    return;
  }
  const unsigned status = parser_->get().result_int();
  if (status >= 100 && status < 200 && status != 101) {
    // Interim response (100 Continue, 103 Early Hints): the real one follows.
    response_started_ = true;
    Read();
    return;
  }
  if (parser_->is_done()) {
    Complete();
    return;
  }
  WithStream([&](auto& stream) {
    bhttp::async_read(stream, buffer_, *parser_,
                      [self = shared_from_this()](const ErrorCode& ec, size_t) {
                        if (ec) {
                          self->OnError(ec, Phase::kRead);
                          return;
                        }
                        self->Complete();
                      });
  });
}

void Conn::Complete() {
  const bool keep = parser_->keep_alive() && buffer_.size() == 0 && socket_.is_open() &&
                    !timed_out_ && !cancelled_;
  bhttp::response<bhttp::string_body> message = parser_->release();
  parser_.reset();
  Response response;
  response.status = static_cast<int>(message.result_int());
  for (const auto& field : message) {
    response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  response.body = std::move(message.body());
  Finish(std::move(response), keep);
}

void Conn::OnError(const ErrorCode& ec, Phase phase) {
  if (cancelled_) {
    Finish(ErrorStatus(absl::StatusCode::kCancelled, "client destroyed"), false);
    return;
  }
  if (timed_out_) {
    Finish(ErrorStatus(absl::StatusCode::kDeadlineExceeded,
                       StrCat("timed out after ", request_.timeout.count(), " ms")),
           false);
    return;
  }
  const auto& http_category = bhttp::make_error_code(bhttp::error::end_of_stream).category();
  const bool parse_error = ec.category() == http_category && ec != bhttp::error::end_of_stream &&
                           ec != bhttp::error::partial_message && ec != bhttp::error::short_read;
  const bool response_started =
      response_started_ || buffer_.size() > 0 || (parser_ && parser_->got_some());

  // The stale-connection rule (see Client::Send in the header).
  if (reused_ && !parse_error && !response_started && phase != Phase::kConnect &&
      phase != Phase::kResolve && phase != Phase::kHandshake &&
      (IsIdempotent(request_.method) || bytes_written_ == 0) && !core_->shut_down()) {
    Abort();
    timer_.cancel();
    active_ = false;
    parser_.reset();
    buffer_.clear();
    Request request = std::move(request_);
    Callback<Response> done = std::move(done_);
    std::shared_ptr<Conn> self = shared_from_this();
    core_->Release(self, false);
    core_->Retry(*this, std::move(request), std::move(done), deadline_);
    return;
  }

  absl::StatusCode code = absl::StatusCode::kUnavailable;
  std::string detail;
  if (ec == bhttp::error::body_limit) {
    code = absl::StatusCode::kInternal;
    detail =
        StrCat("response body exceeds the limit of ", core_->options().max_response_body, " bytes");
  } else if (ec == bhttp::error::header_limit) {
    code = absl::StatusCode::kInternal;
    detail = StrCat("response header exceeds the limit of ", core_->options().max_response_header,
                    " bytes");
  } else if (parse_error) {
    code = absl::StatusCode::kInternal;
    detail = StrCat("malformed response: ", ec.message());
  } else if (ec == bhttp::error::end_of_stream) {
    detail = "connection closed by the server before a response";
  } else if (ec == bhttp::error::partial_message || ec == bhttp::error::short_read) {
    detail = "connection closed by the server in the middle of the response";
  } else {
    const char* what = phase == Phase::kResolve     ? "resolve"
                       : phase == Phase::kConnect   ? "connect"
                       : phase == Phase::kHandshake ? "TLS handshake"
                       : phase == Phase::kWrite     ? "write"
                                                    : "read";
    detail = StrCat(what, ": ", ec.message());
  }
  Finish(ErrorStatus(code, detail), false);
}

void Conn::Finish(absl::StatusOr<Response> result, bool keep) {
  timer_.cancel();
  active_ = false;
  parser_.reset();
  Callback<Response> done = std::move(done_);
  done_ = nullptr;
  request_ = Request{};
  if (!keep) {
    Abort();
    buffer_.clear();
  }
  // Back in the pool before the callback runs, so a follow-up request it sends can reuse this
  // connection. Nothing below touches `this`: another thread may already own it.
  core_->Release(shared_from_this(), keep);
  std::move(done)(std::move(result));
}

absl::Status Conn::ErrorStatus(absl::StatusCode code, std::string_view detail) const {
  const char* scheme = core_->tls_context() != nullptr ? " https://" : " http://";
  return MakeStatus(code, StrCat(request_.method, scheme, key_, request_.target, ": ", detail));
}

}  // namespace

absl::Status CheckTlsOptions(const TlsOptions& tls) { return MakeTlsContext(tls).status(); }

std::string PercentEncode(std::string_view in, std::string_view keep) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (unsigned char c : in) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        keep.find(static_cast<char>(c)) != std::string_view::npos) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

struct Client::Impl : Core {
  using Core::Core;
};

Client::Client(boost::asio::io_context& io, ClientOptions options)
    : impl_(std::make_shared<Impl>(io, options)) {}

Client::~Client() { impl_->Shutdown(); }

void Client::Send(std::string host, uint16_t port, Request request, Callback<Response> done) {
  impl_->Send(std::move(host), port, std::move(request), std::move(done));
}

}  // namespace remora::http
