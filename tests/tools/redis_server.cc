#include "tests/tools/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include "remora/components/common/strings.h"

namespace remora::testing {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status Unavailable(std::string_view what) {
  return MakeStatus(absl::StatusCode::kUnavailable, what);
}

// A parsed RESP2 reply, just enough for test set-up.
struct Resp {
  char kind = 0;  // '+', '-', ':', '$', '*'
  bool nil = false;
  std::string text;
  std::vector<Resp> elements;
};

// Parses one reply from buf[*pos...]; nullopt when more bytes are needed.
std::optional<Resp> Parse(const std::string& buf, size_t* pos) {
  size_t eol = buf.find("\r\n", *pos);
  if (eol == std::string::npos || eol == *pos) return std::nullopt;
  Resp r;
  r.kind = buf[*pos];
  std::string line = buf.substr(*pos + 1, eol - *pos - 1);
  size_t next = eol + 2;
  switch (r.kind) {
    case '+':
    case '-':
    case ':':
      r.text = line;
      *pos = next;
      return r;
    case '$': {
      long long len = std::strtoll(line.c_str(), nullptr, 10);
      if (len < 0) {
        r.nil = true;
        *pos = next;
        return r;
      }
      if (buf.size() < next + static_cast<size_t>(len) + 2) return std::nullopt;
      r.text = buf.substr(next, static_cast<size_t>(len));
      *pos = next + static_cast<size_t>(len) + 2;
      return r;
    }
    case '*': {
      long long n = std::strtoll(line.c_str(), nullptr, 10);
      if (n < 0) {
        r.nil = true;
        *pos = next;
        return r;
      }
      size_t p = next;
      for (long long i = 0; i < n; ++i) {
        std::optional<Resp> e = Parse(buf, &p);
        if (!e) return std::nullopt;
        r.elements.push_back(std::move(*e));
      }
      *pos = p;
      return r;
    }
    default:
      r.kind = '-';
      r.text = "unparsable reply: " + line;
      *pos = buf.size();
      return r;
  }
}

std::string Encode(const std::vector<std::string>& args) {
  std::string out = StrCat("*", args.size(), "\r\n");
  for (const std::string& a : args) StrAppend(&out, "$", a.size(), "\r\n", a, "\r\n");
  return out;
}

std::string Flatten(const Resp& r) {
  if (r.kind != '*') return r.text;
  std::string out;
  for (size_t i = 0; i < r.elements.size(); ++i) {
    if (i > 0) out.push_back('\n');
    out += Flatten(r.elements[i]);
  }
  return out;
}

// Sends every command and reads one reply per command over one blocking connection.
absl::StatusOr<std::vector<Resp>> RoundTrip(int port,
                                            const std::vector<std::vector<std::string>>& commands,
                                            std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Unavailable(StrCat("socket: ", std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto wait_for = [&](short events) -> absl::Status {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return MakeStatus(absl::StatusCode::kDeadlineExceeded, "redis: timeout");
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc == 0) return MakeStatus(absl::StatusCode::kDeadlineExceeded, "redis: timeout");
    if (rc < 0 && errno != EINTR) return Unavailable(StrCat("poll: ", std::strerror(errno)));
    return absl::OkStatus();
  };
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) return Unavailable(StrCat("connect: ", std::strerror(errno)));
    if (absl::Status st = wait_for(POLLOUT); !st.ok()) return st;
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Unavailable(StrCat("connect: ", std::strerror(err)));
  }
  std::string out;
  for (const auto& c : commands) out += Encode(c);
  size_t sent = 0;
  while (sent < out.size()) {
    ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (absl::Status st = wait_for(POLLOUT); !st.ok()) return st;
    } else {
      return Unavailable(StrCat("send: ", std::strerror(errno)));
    }
  }
  std::string in;
  size_t pos = 0;
  std::vector<Resp> replies;
  while (replies.size() < commands.size()) {
    if (std::optional<Resp> r = Parse(in, &pos)) {
      replies.push_back(std::move(*r));
      continue;
    }
    if (absl::Status st = wait_for(POLLIN); !st.ok()) return st;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return Unavailable("redis: connection closed");
    } else if (errno != EAGAIN && errno != EINTR) {
      return Unavailable(StrCat("recv: ", std::strerror(errno)));
    }
  }
  return replies;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(
    std::vector<std::string> extra_args, int port, std::chrono::milliseconds ready_timeout) {
  std::unique_ptr<RedisServer> server(new RedisServer());
  server->port_ = port != 0 ? port : FreePort();
  server->extra_args_ = std::move(extra_args);
  std::string tmpl = (std::filesystem::temp_directory_path() / "remora-redis-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return MakeStatus(absl::StatusCode::kInternal, StrCat("mkdtemp: ", std::strerror(errno)));
  }
  server->dir_ = tmpl;
  if (absl::Status st = server->Launch(ready_timeout); !st.ok()) return st;
  return server;
}

RedisServer::~RedisServer() {
  process_.reset();  // SIGKILLs and reaps
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string RedisServer::address() const { return StrCat(host(), ":", port_); }

bool RedisServer::Running() { return process_ != nullptr && process_->Running(); }

absl::Status RedisServer::Launch(std::chrono::milliseconds ready_timeout) {
  std::vector<std::string> argv = {"redis-server",
                                   "--port",
                                   std::to_string(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--dir",
                                   dir_,
                                   "--daemonize",
                                   "no",
                                   "--protected-mode",
                                   "no",
                                   "--enable-debug-command",
                                   "local"};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> process = ChildProcess::Start(argv);
  if (!process.ok()) return process.status();
  process_ = std::move(*process);

  // Ready when PING gets any answer: with --requirepass it is "-NOAUTH", which is fine too.
  const Clock::time_point deadline = Clock::now() + ready_timeout;
  std::string last = "no attempt";
  while (Clock::now() < deadline) {
    if (!process_->Running()) {
      return MakeStatus(absl::StatusCode::kInternal,
                        StrCat("redis-server exited during start-up:\n", process_->Output()));
    }
    absl::StatusOr<std::vector<Resp>> r = RoundTrip(port_, {{"PING"}}, std::chrono::seconds(1));
    if (r.ok() && !(r->front().kind == '-' && r->front().text.rfind("LOADING", 0) == 0)) {
      return absl::OkStatus();
    }
    last = r.ok() ? r->front().text : std::string(MessageOf(r.status()));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll interval, not a wait
  }
  return MakeStatus(absl::StatusCode::kDeadlineExceeded,
                    StrCat("redis-server on port ", port_, " did not answer PING (", last, "):\n",
                           process_->Output()));
}

absl::Status RedisServer::Stop(std::chrono::milliseconds timeout) {
  if (!Running()) return absl::OkStatus();
  process_->Signal(SIGTERM);
  if (!process_->Wait(timeout)) {
    Kill();
    return MakeStatus(absl::StatusCode::kDeadlineExceeded, "redis-server ignored SIGTERM");
  }
  return absl::OkStatus();
}

void RedisServer::Kill() {
  if (process_ == nullptr) return;
  if (process_->Running()) {
    process_->Signal(SIGKILL);
    process_->Wait(std::chrono::seconds(10));
  }
}

absl::Status RedisServer::Restart(std::chrono::milliseconds ready_timeout) {
  if (Running()) return MakeStatus(absl::StatusCode::kFailedPrecondition, "still running");
  process_.reset();
  return Launch(ready_timeout);
}

absl::StatusOr<std::string> RedisServer::Command(const std::vector<std::string>& args,
                                                 const std::string& password,
                                                 std::chrono::milliseconds timeout) {
  std::vector<std::vector<std::string>> commands;
  if (!password.empty()) commands.push_back({"AUTH", password});
  commands.push_back(args);
  absl::StatusOr<std::vector<Resp>> replies = RoundTrip(port_, commands, timeout);
  if (!replies.ok()) return replies.status();
  for (const Resp& r : *replies) {
    if (r.kind == '-') return MakeStatus(absl::StatusCode::kFailedPrecondition, r.text);
  }
  const Resp& r = replies->back();
  if (r.nil) return MakeStatus(absl::StatusCode::kNotFound, "(nil)");
  return Flatten(r);
}

std::string RedisServer::Output() const { return process_ ? process_->Output() : std::string(); }

}  // namespace remora::testing
