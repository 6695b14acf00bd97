#include "tests/tools/test_app.h"

#include <utility>  // before Asio/Beast: Boost 1.74 + GCC 12 in C++20 needs it first

#include <algorithm>
#include <cctype>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "remora/components/common/strings.h"

namespace remora::testing {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

}  // namespace

struct TestApp::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;
  Options options;

  mutable std::mutex mu;
  Policy policy;
  std::vector<Event> events;
  std::map<std::string, int> attempts;  // path + " " + CloudEvent id
  int subscribe_calls = 0;
  int concurrent = 0;
  int max_concurrent = 0;

  void Accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      std::make_shared<Session>(this, std::move(s))->Read();
      Accept();
    });
  }

  // Records the request and decides the answer.
  Answer Handle(const bhttp::request<bhttp::string_body>& req) {
    std::string target(req.target());
    std::string path = target.substr(0, target.find('?'));
    if (req.method() == bhttp::verb::get && path == "/dapr/subscribe") {
      std::lock_guard lock(mu);
      if (++subscribe_calls <= options.subscribe_failures) return {503, "starting"};
      return {options.subscribe_status, options.subscribe_body};
    }
    Event event;
    event.method = std::string(req.method_string());
    event.path = path;
    if (size_t q = target.find('?'); q != std::string::npos) event.query = target.substr(q + 1);
    for (const auto& field : req) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      event.headers[name] = std::string(field.value());
    }
    event.body = req.body();
    event.json = nlohmann::json::parse(event.body, nullptr, /*allow_exceptions=*/false);
    if (event.json.is_discarded()) event.json = nullptr;
    Policy p;
    {
      std::lock_guard lock(mu);
      std::string id;
      if (event.json.is_object() && event.json.contains("id")) {
        const auto& v = event.json["id"];
        id = v.is_string() ? v.get<std::string>() : v.dump();
      }
      event.attempt = ++attempts[StrCat(path, " ", id)];
      events.push_back(event);
      p = policy;
    }
    return p ? p(event) : Answer{};
  }

  class Session : public std::enable_shared_from_this<Session> {
   public:
    // Sessions live in the io_context's handlers, which `app` owns: it outlives them.
    Session(Impl* app, tcp::socket socket)
        : app_(app), socket_(std::move(socket)), timer_(app_->io) {}

    void Read() {
      req_ = {};
      bhttp::async_read(socket_, buffer_, req_,
                        [self = shared_from_this()](boost::system::error_code ec, size_t) {
                          if (ec) return;
                          self->OnRequest();
                        });
    }

   private:
    void OnRequest() {
      {
        std::lock_guard lock(app_->mu);
        app_->max_concurrent = std::max(app_->max_concurrent, ++app_->concurrent);
      }
      Answer answer = app_->Handle(req_);
      res_ = {static_cast<bhttp::status>(answer.status), req_.version()};
      res_.keep_alive(req_.keep_alive());
      if (!answer.body.empty()) res_.set(bhttp::field::content_type, "application/json");
      res_.body() = std::move(answer.body);
      res_.prepare_payload();
      timer_.expires_after(answer.delay);
      timer_.async_wait([self = shared_from_this()](boost::system::error_code) {
        {
          std::lock_guard lock(self->app_->mu);
          --self->app_->concurrent;
        }
        bhttp::async_write(self->socket_, self->res_, [self](boost::system::error_code ec, size_t) {
          if (ec || !self->res_.keep_alive()) return;
          self->Read();
        });
      });
    }

    Impl* app_;
    tcp::socket socket_;
    asio::steady_timer timer_;
    boost::beast::flat_buffer buffer_;
    bhttp::request<bhttp::string_body> req_;
    bhttp::response<bhttp::string_body> res_;
  };
};

absl::StatusOr<std::unique_ptr<TestApp>> TestApp::Start(Options options) {
  std::unique_ptr<TestApp> app(new TestApp());
  app->impl_ = std::make_unique<Impl>();
  Impl& impl = *app->impl_;
  impl.options = std::move(options);
  boost::system::error_code ec;
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"),
                         static_cast<unsigned short>(impl.options.port));
  impl.acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl.acceptor.bind(endpoint, ec);
  if (!ec) impl.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        Sv(StrCat("test app: cannot listen on 127.0.0.1:", impl.options.port, ": ", ec.message())));
  }
  impl.Accept();
  impl.thread = std::thread([&impl] { impl.io.run(); });
  return app;
}

TestApp::~TestApp() {
  // Stopping the loop ends the sessions; destroying the Impl (and its io_context) closes them.
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int TestApp::port() const { return impl_->acceptor.local_endpoint().port(); }

void TestApp::SetPolicy(Policy policy) {
  std::lock_guard lock(impl_->mu);
  impl_->policy = std::move(policy);
}

std::vector<TestApp::Event> TestApp::Events() const {
  std::lock_guard lock(impl_->mu);
  return impl_->events;
}

std::vector<TestApp::Event> TestApp::EventsOn(const std::string& path) const {
  std::vector<Event> out;
  for (Event& e : Events()) {
    if (e.path == path) out.push_back(std::move(e));
  }
  return out;
}

bool TestApp::WaitFor(const std::function<bool(const std::vector<Event>&)>& done,
                      std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done(Events())) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int TestApp::subscribe_calls() const {
  std::lock_guard lock(impl_->mu);
  return impl_->subscribe_calls;
}

int TestApp::max_concurrent() const {
  std::lock_guard lock(impl_->mu);
  return impl_->max_concurrent;
}

}  // namespace remora::testing
