// The SDK's remote transport: the shared client suite over gRPC against a real remorad, plus what
// only a network client has: the address from the environment, the API token, failing fast when
// no sidecar answers, the per-call deadline, and finding a sidecar that starts late.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "remora/client.h"
#include "remora/components/common/strings.h"
#include "tests/sdk/client_suite.h"
#include "tests/tools/test_env.h"

namespace remora::sdk_test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string Address(int port) { return StrCat("127.0.0.1:", port); }

// One remorad for the whole suite (state.in-memory default store), started on first use from the
// test thread and killed when the process exits.
absl::StatusOr<int> SharedRemoradGrpcPort() {
  static std::optional<testing::Remorad> remorad;
  if (!remorad) {
    auto started = testing::StartRemorad({"--app-id", kAppId});
    if (!started.ok()) return started.status();
    remorad = *std::move(started);
  }
  return remorad->grpc_port;
}

Transport RemoteTransport() {
  return {"Remote", "state.in-memory", []() -> absl::StatusOr<std::unique_ptr<Client>> {
            auto port = SharedRemoradGrpcPort();
            if (!port.ok()) return port.status();
            RemoteOptions options;
            options.address = Address(*port);
            return Client::Remote(options);
          }};
}

INSTANTIATE_TEST_SUITE_P(Remote, ClientSuite, ::testing::Values(RemoteTransport()), TransportName);

// Sets an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

milliseconds Since(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
}

TEST(RemoteClientTest, NoSidecarIsUnavailableQuicklyAndSaysWhere) {
  const int port = testing::FreePort();  // nothing listens here
  RemoteOptions options;
  options.address = Address(port);
  auto client = Client::Remote(options);  // no connection yet: must not fail or block
  for (int call = 0; call < 2; ++call) {
    Clock::time_point start = Clock::now();
    auto got = client->GetState("statestore", "k");
    milliseconds elapsed = Since(start);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
    EXPECT_NE(got.status().message().find(Address(port)), absl::string_view::npos) << got.status();
    // The default deadline is 5 s: failing well before it shows the call did not wait.
    EXPECT_LT(elapsed, milliseconds(3000)) << "call " << call;
  }
}

TEST(RemoteClientTest, DefaultAddressComesFromDaprGrpcPort) {
  const int port = testing::FreePort();
  ScopedEnv env("DAPR_GRPC_PORT", std::to_string(port));
  auto client = Client::Remote();
  absl::Status s = client->SaveState("statestore", "k", "v");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find(Address(port)), absl::string_view::npos) << s;
}

// A peer that completes TCP handshakes (the kernel does, from the listen backlog) but never
// speaks HTTP/2: the call must end at its deadline, not hang.
TEST(RemoteClientTest, SilentPeerEndsAtTheDeadline) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  RemoteOptions options;
  options.address = Address(ntohs(addr.sin_port));
  options.timeout = milliseconds(300);
  auto client = Client::Remote(options);
  Clock::time_point start = Clock::now();
  auto got = client->GetState("statestore", "k");
  milliseconds elapsed = Since(start);
  ::close(fd);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded) << got.status();
  EXPECT_NE(got.status().message().find("300 ms"), absl::string_view::npos) << got.status();
  EXPECT_GE(elapsed, milliseconds(250));
  EXPECT_LT(elapsed, milliseconds(2000));
}

TEST(RemoteClientTest, ApiTokenFromOptionsOrEnvironment) {
  auto remorad = testing::StartRemorad({"--app-id", kAppId}, {{"DAPR_API_TOKEN", "s3cret"}});
  ASSERT_TRUE(remorad.ok()) << remorad.status();
  RemoteOptions options;
  options.address = Address(remorad->grpc_port);

  options.api_token = "";  // explicitly none, whatever the environment says
  EXPECT_EQ(Client::Remote(options)->GetMetadata().status().code(),
            absl::StatusCode::kUnauthenticated);
  options.api_token = "wrong";
  EXPECT_EQ(Client::Remote(options)->GetMetadata().status().code(),
            absl::StatusCode::kUnauthenticated);
  options.api_token = "s3cret";
  EXPECT_TRUE(Client::Remote(options)->GetMetadata().ok());

  ScopedEnv env("DAPR_API_TOKEN", "s3cret");
  options.api_token.reset();
  auto md = Client::Remote(options)->GetMetadata();
  EXPECT_TRUE(md.ok()) << md.status();
}

// A function often starts before its sidecar. Its client must find the sidecar soon after the
// sidecar is up, not after gRPC's default reconnect backoff (up to two minutes).
TEST(RemoteClientTest, SidecarThatStartsLaterIsFoundWithinAboutASecond) {
  const int grpc_port = testing::FreePort();
  RemoteOptions options;
  options.address = Address(grpc_port);
  auto client = Client::Remote(options);
  ASSERT_EQ(client->GetMetadata().status().code(), absl::StatusCode::kUnavailable);

  const int http_port = testing::FreePort();
  auto process = testing::ChildProcess::Start(
      {testing::RemoradPath(), "--app-id", kAppId, "--dapr-http-port", std::to_string(http_port),
       "--dapr-grpc-port", std::to_string(grpc_port), "--metrics-port",
       std::to_string(testing::FreePort())});
  ASSERT_TRUE(process.ok()) << process.status();
  ASSERT_TRUE(testing::WaitForHttp(http_port, "/v1.0/healthz/outbound", 204, milliseconds(10000)))
      << (*process)->Output();

  Clock::time_point ready = Clock::now();
  absl::Status last;
  while (Since(ready) < milliseconds(5000)) {
    last = client->GetMetadata().status();
    if (last.ok()) break;
    // Each failing call returns at once while the channel backs off; poll, don't spin.
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_TRUE(last.ok()) << last << "\n" << (*process)->Output();
  EXPECT_LT(Since(ready), milliseconds(2000));
}

TEST(RemoteClientTest, ShutdownStopsTheSidecar) {
  auto remorad = testing::StartRemorad({"--app-id", kAppId});
  ASSERT_TRUE(remorad.ok()) << remorad.status();
  RemoteOptions options;
  options.address = Address(remorad->grpc_port);
  ASSERT_TRUE(Client::Remote(options)->Shutdown().ok());
  EXPECT_EQ(remorad->process->Wait(milliseconds(10000)), 0) << remorad->process->Output();
}

}  // namespace
}  // namespace remora::sdk_test
