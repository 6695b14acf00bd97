#include <utility>  // before Asio: Boost 1.74 + GCC 12 in C++20 needs it first

#include "remora/components/common/http/client.h"

#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "remora/components/common/strings.h"
#include "tests/tools/test_env.h"

namespace remora::http {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// What the canned server saw of one request.
struct Seen {
  int connection = 0;  // 0-based, in accept order
  int index = 0;       // 0-based position on its connection
  std::string head;    // request line + headers
  std::string body;
};

// What it does about it: write `bytes` (canned HTTP, possibly malformed), then keep the
// connection, close it, or never answer at all.
struct Reply {
  std::string bytes;
  bool close = false;
  bool hang = false;
};

std::string Ok(std::string_view body) {
  return StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
}

// A raw TCP acceptor on 127.0.0.1 that reads requests (head up to the blank line, then a
// Content-Length body) and answers each with bytes the test chose. Not an HTTP server: it knows
// just enough to find where a request ends. Runs its own io_context on its own thread.
class CannedServer {
 public:
  explicit CannedServer(std::function<Reply(const Seen&)> script)
      : script_(std::move(script)),
        acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~CannedServer() {
    asio::post(io_, [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      for (auto& socket : sockets_) socket->close(ignored);
    });
    io_.stop();
    thread_.join();
  }

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  int requests() const { return requests_.load(); }
  int closed() const { return closed_.load(); }
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  struct Session {
    std::shared_ptr<tcp::socket> socket;
    asio::streambuf in;
    int connection = 0;
    int index = 0;
  };

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      auto session = std::make_shared<Session>();
      session->socket = std::make_shared<tcp::socket>(std::move(socket));
      session->connection = accepted_++;
      sockets_.push_back(session->socket);
      ReadHead(session);
      Accept();
    });
  }

  void ReadHead(std::shared_ptr<Session> s) {
    asio::async_read_until(
        *s->socket, s->in, "\r\n\r\n", [this, s](boost::system::error_code ec, size_t n) {
          if (ec) return Close(s);
          std::string head(asio::buffers_begin(s->in.data()),
                           asio::buffers_begin(s->in.data()) + n);
          s->in.consume(n);
          size_t length = ContentLength(head);
          size_t have = s->in.size();
          size_t missing = length > have ? length - have : 0;
          asio::async_read(*s->socket, s->in, asio::transfer_exactly(missing),
                           [this, s, head, length](boost::system::error_code ec, size_t) {
                             if (ec) return Close(s);
                             std::string body(asio::buffers_begin(s->in.data()),
                                              asio::buffers_begin(s->in.data()) + length);
                             s->in.consume(length);
                             Answer(s, Seen{s->connection, s->index++, head, body});
                           });
        });
  }

  void Answer(std::shared_ptr<Session> s, Seen seen) {
    Reply reply = script_(seen);
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(std::move(seen));
    }
    ++requests_;
    if (reply.hang) return;  // the socket stays open until the server goes away
    auto bytes = std::make_shared<std::string>(std::move(reply.bytes));
    asio::async_write(*s->socket, asio::buffer(*bytes),
                      [this, s, bytes, close = reply.close](boost::system::error_code ec, size_t) {
                        if (ec || close) return Close(s);
                        ReadHead(s);
                      });
  }

  void Close(const std::shared_ptr<Session>& s) {
    if (!s->socket->is_open()) return;
    boost::system::error_code ignored;
    s->socket->close(ignored);
    ++closed_;
  }

  static size_t ContentLength(const std::string& head) {
    std::string lower = head;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t at = lower.find("\r\ncontent-length:");
    if (at == std::string::npos) return 0;
    return std::stoul(lower.substr(at + 17));
  }

  std::function<Reply(const Seen&)> script_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;  // server thread only
  std::atomic<int> accepted_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> closed_{0};
  std::mutex mu_;
  std::vector<Seen> seen_;
};

// Polls `condition` against a deadline.
bool Eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Sends through `client` and runs `io` until the callback ran; counts callback invocations.
absl::StatusOr<Response> Call(asio::io_context& io, Client& client, uint16_t port, Request request,
                              int* calls = nullptr) {
  std::optional<absl::StatusOr<Response>> result;
  client.Send("127.0.0.1", port, std::move(request), [&](absl::StatusOr<Response> r) {
    result = std::move(r);
    if (calls != nullptr) ++*calls;
  });
  io.restart();
  io.run();
  if (!result) return absl::InternalError("callback did not run");
  return *std::move(result);
}

Request Get(std::string target, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  Request request;
  request.target = std::move(target);
  request.timeout = timeout;
  return request;
}

// A configuration key, a Vault path or an invoked method must reach the server as the bytes the
// user gave: what is neither unreserved nor asked to be kept is escaped, UTF-8 byte by byte.
TEST(PercentEncodeTest, EscapesAllButUnreservedAndKept) {
  EXPECT_EQ(PercentEncode("a b/c?d~e-f_g.h"), "a%20b%2Fc%3Fd~e-f_g.h");
  EXPECT_EQ(PercentEncode("caf\xC3\xA9%"), "caf%C3%A9%25");
  EXPECT_EQ(PercentEncode("kv/my secret", "/"), "kv/my%20secret");
  EXPECT_EQ(PercentEncode("a:b@c", "!$&'()*+,;=:@"), "a:b@c");
  EXPECT_EQ(PercentEncode(""), "");
}

TEST(HttpClientTest, SendsRequestAndParsesStatusHeadersBody) {
  CannedServer server([](const Seen&) {
    return Reply{"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Thing: abc\r\n\r\nhello"};
  });
  asio::io_context io;
  Client client(io);
  Request request;
  request.method = "POST";
  request.target = "/orders?id=7";
  request.headers = {{"X-Req", "v1"}, {"Content-Type", "text/plain"}};
  request.body = "abc";
  int calls = 0;
  auto response = Call(io, client, server.port(), request, &calls);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->Header("x-thing"), "abc");
  EXPECT_EQ(response->Header("content-length"), "5");
  EXPECT_EQ(response->Header("absent"), "");
  EXPECT_EQ(response->body, "hello");

  std::vector<Seen> seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_THAT(seen[0].head, ::testing::StartsWith("POST /orders?id=7 HTTP/1.1\r\n"));
  EXPECT_THAT(seen[0].head, HasSubstr("\r\nX-Req: v1\r\n"));
  EXPECT_THAT(seen[0].head, HasSubstr(StrCat("\r\nHost: 127.0.0.1:", server.port(), "\r\n")));
  EXPECT_THAT(seen[0].head, HasSubstr("\r\nContent-Length: 3\r\n"));
  EXPECT_EQ(seen[0].body, "abc");
}

TEST(HttpClientTest, DecodesChunkedBody) {
  CannedServer server([](const Seen&) {
    return Reply{
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"};
  });
  asio::io_context io;
  Client client(io);
  auto response = Call(io, client, server.port(), Get("/"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "hello world");
}

TEST(HttpClientTest, ReadsBodyDelimitedByConnectionClose) {
  CannedServer server([](const Seen&) {
    return Reply{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil eof", /*close=*/true};
  });
  asio::io_context io;
  Client client(io);
  auto response = Call(io, client, server.port(), Get("/"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "until eof");
  // Not pooled: the next request opens a new connection.
  ASSERT_TRUE(Call(io, client, server.port(), Get("/")).ok());
  EXPECT_EQ(server.accepted(), 2);
}

TEST(HttpClientTest, ReusesKeepAliveConnection) {
  CannedServer server([](const Seen& seen) { return Reply{Ok(StrCat("n", seen.index))}; });
  asio::io_context io;
  Client client(io);
  auto first = Call(io, client, server.port(), Get("/a"));
  auto second = Call(io, client, server.port(), Get("/b"));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->body, "n0");
  EXPECT_EQ(second->body, "n1");  // second request on the same connection
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpClientTest, ChainedRequestFromCallbackReusesConnection) {
  CannedServer server([](const Seen&) { return Reply{Ok("x")}; });
  asio::io_context io;
  Client client(io);
  int done = 0;
  client.Send("127.0.0.1", server.port(), Get("/1"), [&](absl::StatusOr<Response> r) {
    ASSERT_TRUE(r.ok()) << r.status();
    ++done;
    client.Send("127.0.0.1", server.port(), Get("/2"), [&](absl::StatusOr<Response> r) {
      ASSERT_TRUE(r.ok()) << r.status();
      ++done;
    });
  });
  io.run();
  EXPECT_EQ(done, 2);
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpClientTest, IdleConnectionClosedByServerIsNotReused) {
  // Answers with a keep-alive response, then closes: the pooled connection is dead.
  CannedServer server([](const Seen&) { return Reply{Ok("x"), /*close=*/true}; });
  asio::io_context io;
  Client client(io);
  ASSERT_TRUE(Call(io, client, server.port(), Get("/")).ok());
  ASSERT_TRUE(Eventually([&] { return server.closed() == 1; }));
  for (const char* method : {"GET", "POST"}) {
    Request request = Get("/");
    request.method = method;
    auto response = Call(io, client, server.port(), request);
    ASSERT_TRUE(response.ok()) << method << ": " << response.status();
    EXPECT_EQ(response->body, "x");
    ASSERT_TRUE(Eventually([&] { return server.closed() == server.accepted(); }));
  }
  EXPECT_EQ(server.accepted(), 3);
}

// The server drops a kept-alive connection exactly when the next request arrives on it, which the
// client cannot see coming: the rule in client.h decides whether the request is sent again.
Reply DropSecondRequestOnFirstConnection(const Seen& seen) {
  if (seen.connection == 0 && seen.index == 1) return Reply{"", /*close=*/true};
  return Reply{Ok(StrCat("c", seen.connection))};
}

TEST(HttpClientTest, IdempotentRequestOnStaleConnectionIsRetriedOnce) {
  CannedServer server(DropSecondRequestOnFirstConnection);
  asio::io_context io;
  Client client(io);
  ASSERT_TRUE(Call(io, client, server.port(), Get("/")).ok());
  Request put = Get("/k");
  put.method = "PUT";
  put.body = "v";
  auto response = Call(io, client, server.port(), put);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "c1");  // answered on a fresh connection
  EXPECT_EQ(server.accepted(), 2);
  EXPECT_EQ(server.requests(), 3);
}

TEST(HttpClientTest, PostOnStaleConnectionIsNotSentTwice) {
  CannedServer server(DropSecondRequestOnFirstConnection);
  asio::io_context io;
  Client client(io);
  ASSERT_TRUE(Call(io, client, server.port(), Get("/")).ok());
  Request post = Get("/orders");
  post.method = "POST";
  post.body = "{}";
  auto response = Call(io, client, server.port(), post);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
  EXPECT_THAT(std::string(response.status().message()),
              HasSubstr(StrCat("127.0.0.1:", server.port())));
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpClientTest, ConnectionRefusedIsUnavailable) {
  const int port = remora::testing::FreePort();
  asio::io_context io;
  Client client(io);
  int calls = 0;
  auto response = Call(io, client, static_cast<uint16_t>(port), Get("/"), &calls);
  EXPECT_EQ(calls, 1);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
  EXPECT_THAT(std::string(response.status().message()), HasSubstr(StrCat("127.0.0.1:", port)));
}

TEST(HttpClientTest, ServerThatNeverAnswersTimesOut) {
  CannedServer server([](const Seen&) { return Reply{"", false, /*hang=*/true}; });
  asio::io_context io;
  Client client(io);
  const Clock::time_point start = Clock::now();
  int calls = 0;
  auto response = Call(io, client, server.port(), Get("/", std::chrono::milliseconds(300)), &calls);
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(calls, 1);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
  EXPECT_THAT(std::string(response.status().message()),
              HasSubstr(StrCat("127.0.0.1:", server.port())));
  EXPECT_GE(elapsed, std::chrono::milliseconds(300));
  EXPECT_LT(elapsed, std::chrono::milliseconds(2000));
}

TEST(HttpClientTest, TimeoutCoversSlowBody) {
  // Headers arrive, the body never completes: the deadline covers the whole read.
  CannedServer server(
      [](const Seen&) { return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"}; });
  asio::io_context io;
  Client client(io);
  auto response = Call(io, client, server.port(), Get("/", std::chrono::milliseconds(200)));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
}

TEST(HttpClientTest, MalformedResponseIsInternal) {
  for (const char* bytes : {"HTTP/1.1 abc\r\n\r\n", "garbage\r\n\r\n",
                            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"}) {
    CannedServer server([bytes](const Seen&) { return Reply{bytes}; });
    asio::io_context io;
    Client client(io);
    auto response = Call(io, client, server.port(), Get("/"));
    ASSERT_FALSE(response.ok()) << bytes;
    EXPECT_EQ(response.status().code(), absl::StatusCode::kInternal) << response.status();
    EXPECT_THAT(std::string(response.status().message()),
                HasSubstr(StrCat("127.0.0.1:", server.port())));
  }
}

TEST(HttpClientTest, ResponseBodyLimit) {
  const std::string too_big[] = {
      Ok(std::string(1000, 'x')),
      // Announced only: must fail on the header, not try to make room for 100 GB.
      "HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n" + std::string(80, 'x') +
          "\r\n50\r\n" + std::string(80, 'x') + "\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + std::string(1000, 'x'),
  };
  for (const std::string& bytes : too_big) {
    CannedServer server([bytes](const Seen&) { return Reply{bytes, /*close=*/true}; });
    asio::io_context io;
    Client client(io, ClientOptions{.max_response_body = 100});
    auto response = Call(io, client, server.port(), Get("/"));
    ASSERT_FALSE(response.ok()) << bytes;
    EXPECT_EQ(response.status().code(), absl::StatusCode::kInternal) << response.status();
    EXPECT_THAT(std::string(response.status().message()), HasSubstr("limit"));
  }
  // At the limit is fine.
  CannedServer server([](const Seen&) { return Reply{Ok(std::string(100, 'x'))}; });
  asio::io_context io;
  Client client(io, ClientOptions{.max_response_body = 100});
  auto response = Call(io, client, server.port(), Get("/"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body.size(), 100u);
}

TEST(HttpClientTest, ConnectionClosedMidResponseIsUnavailable) {
  CannedServer server([](const Seen&) {
    return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", /*close=*/true};
  });
  asio::io_context io;
  Client client(io);
  auto response = Call(io, client, server.port(), Get("/"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
}

TEST(HttpClientTest, RejectsHeaderInjection) {
  asio::io_context io;
  Client client(io);
  Request request = Get("/");
  request.headers = {{"X-Evil", "a\r\nInjected: 1"}};
  auto response = Call(io, client, 1, request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HttpClientTest, HundredConcurrentRequestsComplete) {
  CannedServer server([](const Seen& seen) {
    std::string target = seen.head.substr(4, seen.head.find(' ', 4) - 4);
    return Reply{Ok(target)};
  });
  asio::io_context io;
  Client client(io);
  constexpr int kRequests = 100;
  std::vector<std::optional<absl::StatusOr<Response>>> results(kRequests);
  for (int wave = 0; wave < 2; ++wave) {
    for (auto& result : results) result.reset();
    for (int i = 0; i < kRequests; ++i) {
      client.Send("127.0.0.1", server.port(), Get(StrCat("/r", i)),
                  [&results, i](absl::StatusOr<Response> r) {
                    ASSERT_FALSE(results[i].has_value()) << "callback ran twice";
                    results[i] = std::move(r);
                  });
    }
    io.restart();
    io.run();
    for (int i = 0; i < kRequests; ++i) {
      ASSERT_TRUE(results[i].has_value()) << i;
      ASSERT_TRUE(results[i]->ok()) << results[i]->status();
      EXPECT_EQ((*results[i])->body, StrCat("/r", i));
    }
  }
  // The second wave reused the first wave's idle connections (at most 64 kept).
  EXPECT_LE(server.accepted(), 2 * kRequests - 64);
  EXPECT_EQ(server.requests(), 2 * kRequests);
}

TEST(HttpClientTest, ConcurrentRequestsFromSeveralLoopThreads) {
  CannedServer server([](const Seen&) { return Reply{Ok("ok")}; });
  asio::io_context io;
  auto client = std::make_unique<Client>(io);
  std::atomic<int> ok{0};
  std::atomic<int> calls{0};
  constexpr int kRequests = 200;
  for (int i = 0; i < kRequests; ++i) {
    client->Send("127.0.0.1", server.port(), Get("/"), [&](absl::StatusOr<Response> r) {
      ++calls;
      if (r.ok() && r->body == "ok") ++ok;
    });
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) threads.emplace_back([&] { io.run(); });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(calls.load(), kRequests);
  EXPECT_EQ(ok.load(), kRequests);
}

TEST(HttpClientTest, DestroyingClientCancelsInFlightRequests) {
  CannedServer server([](const Seen&) { return Reply{"", false, /*hang=*/true}; });
  asio::io_context io;
  auto client = std::make_unique<Client>(io);
  int calls = 0;
  std::optional<absl::Status> status;
  for (int i = 0; i < 3; ++i) {
    client->Send("127.0.0.1", server.port(), Get("/", std::chrono::seconds(30)),
                 [&](absl::StatusOr<Response> r) {
                   ++calls;
                   status = r.status();
                 });
  }
  // Until the server holds all three requests.
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(5);
  while (server.requests() < 3 && Clock::now() < deadline) io.run_for(std::chrono::milliseconds(5));
  ASSERT_EQ(server.requests(), 3);
  client.reset();
  const Clock::time_point start = Clock::now();
  io.restart();
  io.run();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(calls, 3);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->code(), absl::StatusCode::kCancelled) << *status;
}

TEST(HttpClientTest, AbandonedRequestsAreDestroyedWithTheLoop) {
  // A loop that is never run again: the pending callback is destroyed, not called.
  CannedServer server([](const Seen&) { return Reply{"", false, /*hang=*/true}; });
  int calls = 0;
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> watch = token;
  {
    asio::io_context io;
    Client client(io);
    client.Send("127.0.0.1", server.port(), Get("/"),
                [&calls, token = std::move(token)](absl::StatusOr<Response>) { ++calls; });
    io.run_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(watch.expired());
}

TEST(TestEnvTest, HttpCallAndWaitForHttp) {
  CannedServer server([](const Seen& seen) {
    if (seen.head.starts_with("GET /ready")) return Reply{"HTTP/1.1 204 No Content\r\n\r\n"};
    return Reply{Ok(seen.body)};
  });
  auto response = remora::testing::HttpCall("127.0.0.1", server.port(), "POST", "/echo", "hi");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "hi");
  EXPECT_TRUE(remora::testing::WaitForHttp(server.port(), "/ready", 204, std::chrono::seconds(2)));
  EXPECT_FALSE(
      remora::testing::WaitForHttp(server.port(), "/other", 204, std::chrono::milliseconds(100)));
}

TEST(TestEnvTest, StartRemoradReportsEarlyExitWithOutput) {
  // A stand-in for remorad that prints its command line and fails, as a misconfigured one would.
  std::string dir =
      remora::testing::WriteTempFile("fake-remorad", "#!/bin/sh\necho args: \"$@\"\nexit 2\n");
  ASSERT_FALSE(dir.empty());
  std::string fake = StrCat(dir, "/fake-remorad");
  ASSERT_EQ(::chmod(fake.c_str(), 0755), 0);
  const char* previous = std::getenv("REMORAD");
  std::optional<std::string> saved = previous ? std::optional<std::string>(previous) : std::nullopt;
  ::setenv("REMORAD", fake.c_str(), 1);
  auto remorad = remora::testing::StartRemorad({"--app-id", "x"});
  if (saved) {
    ::setenv("REMORAD", saved->c_str(), 1);
  } else {
    ::unsetenv("REMORAD");
  }
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(remorad.ok());
  const std::string message(remorad.status().message());
  EXPECT_THAT(message, HasSubstr("exited with code 2"));
  EXPECT_THAT(message, HasSubstr("--dapr-http-port"));
  EXPECT_THAT(message, HasSubstr("--metrics-port"));
  EXPECT_THAT(message, HasSubstr("--app-id x"));
}

TEST(ChildProcessTest, CapturesOutputAndExitCode) {
  auto child = remora::testing::ChildProcess::Start({"sh", "-c", "echo hi; echo err >&2; exit 3"});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ((*child)->Wait(std::chrono::seconds(5)), 3);
  EXPECT_FALSE((*child)->Running());
  EXPECT_EQ((*child)->Output(), "hi\nerr\n");
}

TEST(ChildProcessTest, PassesEnvironment) {
  auto child =
      remora::testing::ChildProcess::Start({"sh", "-c", "echo $REMORA_X"}, {{"REMORA_X", "42"}});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ((*child)->Wait(std::chrono::seconds(5)), 0);
  EXPECT_EQ((*child)->Output(), "42\n");
}

TEST(ChildProcessTest, SignalStopsProcess) {
  auto child = remora::testing::ChildProcess::Start({"sleep", "100"});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_TRUE((*child)->Running());
  EXPECT_EQ((*child)->Wait(std::chrono::milliseconds(50)), std::nullopt);
  (*child)->Signal(SIGTERM);
  EXPECT_EQ((*child)->Wait(std::chrono::seconds(5)), 128 + SIGTERM);
}

TEST(ChildProcessTest, DestructorKillsProcessGroup) {
  pid_t pid;
  {
    // The shell's own child (a second sleep) is in the same group and must die too.
    auto child = remora::testing::ChildProcess::Start({"sh", "-c", "sleep 100 & sleep 100"});
    ASSERT_TRUE(child.ok()) << child.status();
    pid = (*child)->pid();
    ASSERT_TRUE(Eventually([&] { return ::kill(-pid, 0) == 0; }));
  }
  EXPECT_TRUE(Eventually([&] { return ::kill(-pid, 0) != 0; }));
}

TEST(ChildProcessTest, MissingProgramFailsToStart) {
  auto child = remora::testing::ChildProcess::Start({"/nonexistent/remora-no-such-binary"});
  ASSERT_FALSE(child.ok());
  EXPECT_THAT(std::string(child.status().message()), HasSubstr("remora-no-such-binary"));
}

}  // namespace
}  // namespace remora::http
