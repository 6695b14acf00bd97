#pragma once

// A real redis-server (Debian's package, installed by scripts/setup.sh) for tests: started on a
// free loopback port with no persistence, stopped, killed and restarted on the same port.
//
//   absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Start();
//   ASSERT_TRUE(redis.ok()) << redis.status();
//   Settings s; s.host = "127.0.0.1"; s.port = (*redis)->port();
//   (*redis)->Kill();             // SIGKILL: connections drop at once
//   ASSERT_TRUE((*redis)->Restart().ok());  // same port, empty dataset
//
// Start and Restart from the test's main thread (see ChildProcess). Nothing sleeps for a fixed
// time: readiness is polled with PING against a deadline.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/tools/test_env.h"

namespace remora::testing {

class RedisServer {
 public:
  // `extra_args` are appended to the command line, e.g. {"--requirepass", "secret"}. `port` 0
  // picks a free one. Returns once the server answers PING.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(
      std::vector<std::string> extra_args = {}, int port = 0,
      std::chrono::milliseconds ready_timeout = std::chrono::seconds(10));
  ~RedisServer();  // kills the server if it still runs
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  std::string address() const;  // "127.0.0.1:<port>"
  bool Running();

  // SIGTERM and wait for exit (graceful: the server closes its connections).
  absl::Status Stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // SIGKILL and wait for exit.
  void Kill();
  // Starts again on the same port with the same arguments (after Stop or Kill).
  absl::Status Restart(std::chrono::milliseconds ready_timeout = std::chrono::seconds(10));

  // A blocking command on a fresh connection, for test set-up and inspection (not the client
  // under test). Answers the reply as text: simple/bulk strings as they are, integers in
  // decimal, arrays as their elements joined by "\n". A nil reply is NOT_FOUND, an error reply
  // FAILED_PRECONDITION with Redis' message, a transport failure UNAVAILABLE. `password` sends
  // AUTH first.
  absl::StatusOr<std::string> Command(const std::vector<std::string>& args,
                                      const std::string& password = "",
                                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // What the server printed (for failure messages).
  std::string Output() const;

 private:
  RedisServer() = default;
  absl::Status Launch(std::chrono::milliseconds ready_timeout);

  int port_ = 0;
  std::vector<std::string> extra_args_;
  std::string dir_;  // working directory (nothing is written with persistence off)
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace remora::testing
