// The launcher (`remora run ... -- app`) end to end with a real remorad: the app starts only once
// the sidecar answers /v1.0/healthz and finds it through $DAPR_HTTP_PORT; the app's exit code is
// the launcher's and stops remorad; SIGINT stops both; remorad flags pass through; a sidecar that
// cannot start fails the launch without starting the app.

#include <signal.h>

#include <chrono>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "remora/components/common/strings.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr milliseconds kDeadline{15000};

std::unique_ptr<ChildProcess> Launch(const std::vector<std::string>& args) {
  std::vector<std::string> argv{REMORA_LAUNCHER, "run"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::Start(argv, {{"REMORAD", RemoradPath()}});
  EXPECT_TRUE(child.ok()) << child.status();
  return child.ok() ? std::move(*child) : nullptr;
}

// Polls the launcher's output for `pattern`'s first capture group.
std::optional<std::string> AwaitCapture(ChildProcess& p, const std::string& pattern) {
  std::regex re(pattern);
  auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    std::string out = p.Output();
    if (std::regex_search(out, m, re)) return m[1].str();
    if (!p.Running()) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return std::nullopt;
}

bool Answers(int port) {
  auto r = HttpCall("127.0.0.1", port, "GET", "/v1.0/healthz", "", {}, milliseconds(500));
  return r.ok();
}

// True once nothing listens on `port` any more.
bool AwaitGone(int port) {
  auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Answers(port)) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return false;
}

TEST(LauncherTest, AppReachesTheSidecarAndItsExitCodeIsTheLaunchers) {
  auto p = Launch({"--app-id", "hello", "--", "sh", "-c",
                   "echo id=$APP_ID; code=$(curl -s -o /dev/null -w '%{http_code}' "
                   "http://127.0.0.1:$DAPR_HTTP_PORT/v1.0/healthz); echo health=$code; "
                   "echo port=$DAPR_HTTP_PORT; test \"$code\" = 204"});
  ASSERT_NE(p, nullptr);
  std::optional<int> code = p->Wait(kDeadline);
  ASSERT_TRUE(code.has_value()) << p->Output();
  std::string out = p->Output();
  EXPECT_EQ(*code, 0) << out;
  EXPECT_THAT(out, HasSubstr("== APP == id=hello"));
  EXPECT_THAT(out, HasSubstr("== APP == health=204"));
  EXPECT_THAT(out, HasSubstr("== DAPR == "));  // remorad's log lines, prefixed
  // remorad was stopped with the app: its port no longer answers.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("port=(\\d+)"))) << out;
  EXPECT_TRUE(AwaitGone(std::stoi(m[1].str())));
}

TEST(LauncherTest, AppExitingStopsRemoradAndPassesItsCode) {
  // The app waits for both APIs (outbound health), so the stop is not a stop during start-up.
  auto p = Launch({"--", "sh", "-c",
                   "echo port=$DAPR_HTTP_PORT; for i in $(seq 200); do curl -fs "
                   "http://127.0.0.1:$DAPR_HTTP_PORT/v1.0/healthz/outbound && break; sleep 0.02; "
                   "done; exit 7"});
  ASSERT_NE(p, nullptr);
  std::optional<int> code = p->Wait(kDeadline);
  ASSERT_TRUE(code.has_value()) << p->Output();
  EXPECT_EQ(*code, 7) << p->Output();
  auto port = AwaitCapture(*p, "port=(\\d+)");
  ASSERT_TRUE(port.has_value()) << p->Output();
  EXPECT_TRUE(AwaitGone(std::stoi(*port)));
  EXPECT_THAT(p->Output(), HasSubstr("remorad exited with code 0"));
}

TEST(LauncherTest, SigintStopsAppAndSidecar) {
  // The app keeps calling the sidecar until told to stop; on SIGINT it says so and exits 0.
  auto p = Launch({"--app-id", "looper", "--", "sh", "-c",
                   "trap 'echo got-int; exit 0' INT; echo port=$DAPR_HTTP_PORT; "
                   "while true; do sleep 0.05; done"});
  ASSERT_NE(p, nullptr);
  auto port = AwaitCapture(*p, "port=(\\d+)");
  ASSERT_TRUE(port.has_value()) << p->Output();
  ASSERT_TRUE(Answers(std::stoi(*port)));
  p->Signal(SIGINT);
  std::optional<int> code = p->Wait(kDeadline);
  ASSERT_TRUE(code.has_value()) << p->Output();
  std::string out = p->Output();
  EXPECT_EQ(*code, 0) << out;
  EXPECT_THAT(out, HasSubstr("== APP == got-int"));
  EXPECT_THAT(out, Not(HasSubstr("killing")));  // both stopped within the grace period
  EXPECT_TRUE(AwaitGone(std::stoi(*port)));
}

TEST(LauncherTest, GivenPortsAndRemoradFlagsPassThrough) {
  int http = FreePort();
  std::string dir = WriteTempFile("store.yaml", R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: mystore }
spec: { type: state.in-memory, version: v1 }
)");
  auto p = Launch({"--app-id", "flags", "--dapr-http-port", std::to_string(http),
                   "--resources-path", dir, "--log-level", "debug", "--", "sh", "-c",
                   "curl -s http://127.0.0.1:$DAPR_HTTP_PORT/v1.0/metadata; echo; "
                   "echo port=$DAPR_HTTP_PORT"});
  ASSERT_NE(p, nullptr);
  std::optional<int> code = p->Wait(kDeadline);
  ASSERT_TRUE(code.has_value()) << p->Output();
  std::string out = p->Output();
  EXPECT_EQ(*code, 0) << out;
  EXPECT_THAT(out, HasSubstr(StrCat("port=", http)));
  EXPECT_THAT(out, HasSubstr("\"mystore\""));
  EXPECT_THAT(out, HasSubstr("\"flags\""));
}

TEST(LauncherTest, SidecarThatCannotStartFailsWithoutStartingTheApp) {
  auto p = Launch({"--no-such-remorad-flag", "--", "sh", "-c", "echo app-ran"});
  ASSERT_NE(p, nullptr);
  std::optional<int> code = p->Wait(kDeadline);
  ASSERT_TRUE(code.has_value()) << p->Output();
  EXPECT_NE(*code, 0);
  EXPECT_THAT(p->Output(), Not(HasSubstr("app-ran")));
  EXPECT_THAT(p->Output(), HasSubstr("remorad exited before it was ready"));
}

}  // namespace
}  // namespace remora::testing
