// Service invocation across three "hosts": three Linux network namespaces joined by a bridge (in a
// fourth namespace, so the root namespace is never touched), one remorad + HTTP app in each, the
// shared-directory name resolver on a common temp dir, each sidecar announcing its namespace IP
// through DAPR_HOST_IP (issue #6). host-a calls host-b and host-c over the bridge; after host-c's
// sidecar is killed, calls to it fail with ERR_DIRECT_INVOKE.
//
// Needs root and CAP_NET_ADMIN (`ip netns add`); skips with the reason otherwise.
//
// Why no app processes: a network namespace is per thread. A helper thread that setns()es into a
// namespace and opens a socket there leaves that socket in the namespace for good, so the
// in-process TestApp listens inside the namespace, and HttpCall made on such a thread talks to the
// sidecar's loopback API there. Only remorad runs under `ip netns exec` (which execs in place, so
// the child's pid is remorad's).

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"
#include "tests/tools/test_app.h"
#include "tests/tools/test_env.h"

namespace remora::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kPrefix[] = "remora-";
// Ports inside the fresh namespaces are all free: nothing else runs there.
constexpr int kHttpPort = 3500;
constexpr int kGrpcPort = 50001;
constexpr int kInternalPort = 50002;
constexpr int kMetricsPort = 9090;

// Runs argv to completion; the exit code and everything it printed.
struct RunResult {
  int code = -1;
  std::string output;
};
RunResult RunCommand(const std::vector<std::string>& argv) {
  auto child = ChildProcess::Start(argv);
  if (!child.ok()) return {-1, std::string(MessageOf(child.status()))};
  auto code = (*child)->Wait(std::chrono::seconds(10));
  return {code.value_or(-1), (*child)->Output()};
}

// Runs `fn` on a fresh thread inside network namespace `ns`; false when the namespace cannot be
// entered. Sockets created by `fn` stay in that namespace.
bool InNetns(const std::string& ns, const std::function<void()>& fn) {
  bool entered = false;
  std::thread t([&] {
    int fd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    entered = ::setns(fd, CLONE_NEWNET) == 0;
    ::close(fd);
    if (entered) fn();
  });
  t.join();
  return entered;
}

// Namespaces left behind by an earlier run that died (its pid is gone): remora-<pid>-<x>.
void DeleteLeftovers() {
  RunResult list = RunCommand({"ip", "netns", "list"});
  std::istringstream in(list.output);
  std::string line;
  while (std::getline(in, line)) {
    std::string name = line.substr(0, line.find(' '));
    if (!name.starts_with(kPrefix)) continue;
    pid_t pid = static_cast<pid_t>(std::atol(name.c_str() + sizeof(kPrefix) - 1));
    if (pid <= 0 || (::kill(pid, 0) != 0 && errno == ESRCH)) {
      RunCommand({"ip", "netns", "del", name});
    }
  }
}

struct Host {
  std::string id;  // app id: host-a, ...
  std::string ns;
  std::string ip;
  std::unique_ptr<TestApp> app;
  std::unique_ptr<ChildProcess> sidecar;
};

class InvokeNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    DeleteLeftovers();
    const std::string base = StrCat(kPrefix, static_cast<int64_t>(::getpid()), "-");
    bridge_ns_ = base + "br";
    RunResult probe = RunCommand({"ip", "netns", "add", bridge_ns_});
    if (probe.code != 0) {
      GTEST_SKIP() << "cannot create a network namespace (needs CAP_NET_ADMIN and iproute2): "
                   << probe.output;
    }
    namespaces_.push_back(bridge_ns_);
    ASSERT_NO_FATAL_FAILURE(Ip({"-n", bridge_ns_, "link", "add", "br0", "type", "bridge"}));
    ASSERT_NO_FATAL_FAILURE(Ip({"-n", bridge_ns_, "link", "set", "br0", "up"}));
    ASSERT_NO_FATAL_FAILURE(Ip({"-n", bridge_ns_, "link", "set", "lo", "up"}));

    registry_ = WriteTempFile("placeholder", "");
    config_ = WriteTempFile("config.yaml", StrCat(R"(apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: { name: netns }
spec:
  nameResolution:
    component: directory
    configuration:
      path: )",
                                                  registry_, R"(/apps
      heartbeatInterval: 200ms
)"));
    const char* letters[] = {"a", "b", "c"};
    for (int i = 0; i < 3; ++i) {
      Host& h = hosts_[i];
      h.id = StrCat("host-", letters[i]);
      h.ns = base + letters[i];
      h.ip = StrCat("10.200.0.", i + 1);
      ASSERT_NO_FATAL_FAILURE(Ip({"netns", "add", h.ns}));
      namespaces_.push_back(h.ns);
      // veth pair: "v<x>" on the bridge, "eth0" in the host's namespace.
      const std::string port = StrCat("v", letters[i]);
      ASSERT_NO_FATAL_FAILURE(Ip({"-n", bridge_ns_, "link", "add", port, "type", "veth", "peer",
                                  "name", "eth0", "netns", h.ns}));
      ASSERT_NO_FATAL_FAILURE(Ip({"-n", bridge_ns_, "link", "set", port, "master", "br0"}));
      ASSERT_NO_FATAL_FAILURE(Ip({"-n", bridge_ns_, "link", "set", port, "up"}));
      ASSERT_NO_FATAL_FAILURE(Ip({"-n", h.ns, "addr", "add", h.ip + "/24", "dev", "eth0"}));
      ASSERT_NO_FATAL_FAILURE(Ip({"-n", h.ns, "link", "set", "eth0", "up"}));
      ASSERT_NO_FATAL_FAILURE(Ip({"-n", h.ns, "link", "set", "lo", "up"}));
    }
    for (Host& h : hosts_) ASSERT_NO_FATAL_FAILURE(StartHost(h));
  }

  void TearDown() override {
    for (Host& h : hosts_) {
      h.sidecar.reset();  // SIGKILLs and reaps
      h.app.reset();
    }
    for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) {
      RunResult r = RunCommand({"ip", "netns", "del", *it});
      EXPECT_EQ(r.code, 0) << "ip netns del " << *it << ": " << r.output;
    }
    if (!registry_.empty()) std::filesystem::remove_all(registry_);
    if (!config_.empty()) std::filesystem::remove_all(config_);
  }

  void Ip(std::vector<std::string> args) {
    args.insert(args.begin(), "ip");
    RunResult r = RunCommand(args);
    ASSERT_EQ(r.code, 0) << ::testing::PrintToString(args) << ": " << r.output;
  }

  // The app (in-process, listening inside the namespace) answers with its own app id, so a reply
  // shows which host served it.
  void StartHost(Host& h) {
    absl::StatusOr<std::unique_ptr<TestApp>> app = absl::UnknownError("not started");
    ASSERT_TRUE(InNetns(h.ns, [&] { app = TestApp::Start({}); })) << "setns into " << h.ns;
    ASSERT_TRUE(app.ok()) << app.status();
    h.app = *std::move(app);
    const std::string id = h.id;
    h.app->SetPolicy([id](const TestApp::Event& e) -> TestApp::Answer {
      auto caller = e.headers.find("dapr-caller-app-id");
      return {200, json{{"app", id},
                        {"path", e.path},
                        {"body", e.body},
                        {"caller", caller == e.headers.end() ? "" : caller->second}}
                       .dump()};
    });
    std::vector<std::string> argv = {"ip", "netns", "exec", h.ns, RemoradPath()};
    for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
             {"--app-id", h.id},
             {"--app-port", std::to_string(h.app->port())},
             {"--dapr-http-port", std::to_string(kHttpPort)},
             {"--dapr-grpc-port", std::to_string(kGrpcPort)},
             {"--metrics-port", std::to_string(kMetricsPort)},
             {"--dapr-internal-grpc-port", std::to_string(kInternalPort)},
             {"--dapr-internal-grpc-listen-address", h.ip},
             {"--config", config_ + "/config.yaml"}}) {
      argv.push_back(flag);
      argv.push_back(value);
    }
    auto sidecar = ChildProcess::Start(argv, {{"DAPR_HOST_IP", h.ip}});
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    h.sidecar = *std::move(sidecar);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    bool ready = false;
    while (!ready && std::chrono::steady_clock::now() < deadline && h.sidecar->Running()) {
      InNetns(h.ns, [&] {
        auto r = HttpCall("127.0.0.1", kHttpPort, "GET", "/v1.0/healthz/outbound", "", {},
                          std::chrono::milliseconds(500));
        ready = r.ok() && r->status == 204;
      });
      if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(ready) << h.id << " not ready in " << h.ns << ":\n" << h.sidecar->Output();
  }

  // An HTTP call to `from`'s sidecar API, made from inside its namespace.
  absl::StatusOr<http::Response> Call(const Host& from, const std::string& method,
                                      const std::string& target, const std::string& body = "") {
    absl::StatusOr<http::Response> r = absl::UnknownError("namespace not entered");
    InNetns(from.ns, [&] { r = HttpCall("127.0.0.1", kHttpPort, method, target, body); });
    return r;
  }

  // The records the directory resolver holds for `app_id` (their first line: host:port).
  std::vector<std::string> Records(const std::string& app_id) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(registry_ + "/apps", ec)) {
      if (!e.is_regular_file() || e.path().parent_path().filename() != app_id) continue;
      std::ifstream in(e.path());
      std::string first;
      std::getline(in, first);
      out.push_back(first);
    }
    return out;
  }

  std::string bridge_ns_;
  std::vector<std::string> namespaces_;
  std::string registry_;
  std::string config_;
  Host hosts_[3];
};

TEST_F(InvokeNetns, ThreeHostsOverABridge) {
  Host& a = hosts_[0];
  Host& b = hosts_[1];
  Host& c = hosts_[2];
  // Each sidecar announced its namespace address, not loopback.
  for (const Host* h : {&a, &b, &c}) {
    EXPECT_THAT(Records(h->id), ::testing::ElementsAre(StrCat(h->ip, ":", kInternalPort))) << h->id;
  }
  // host-b's and host-c's sidecars are unreachable on loopback from host-a's namespace, so the
  // answers below crossed the bridge.
  for (const Host* target : {&b, &c}) {
    SCOPED_TRACE(target->id);
    auto r = Call(a, "POST", StrCat("/v1.0/invoke/", target->id, "/method/orders/1"), "payload");
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, 200) << r->body;
    json got = json::parse(r->body);
    EXPECT_EQ(got["app"], target->id);
    EXPECT_EQ(got["path"], "/orders/1");
    EXPECT_EQ(got["body"], "payload");
    EXPECT_EQ(got["caller"], "host-a");
  }
  // And back the other way: host-c calls host-a.
  auto back = Call(c, "GET", "/v1.0/invoke/host-a/method/ping");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->status, 200) << back->body;
  EXPECT_EQ(json::parse(back->body)["app"], "host-a");
  EXPECT_EQ(json::parse(back->body)["caller"], "host-c");

  // host-c's sidecar dies without a goodbye: calls to it fail with ERR_DIRECT_INVOKE (promptly:
  // poll against a deadline), while host-b still answers.
  c.sidecar->Signal(SIGKILL);
  ASSERT_TRUE(c.sidecar->Wait(std::chrono::seconds(5)).has_value());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  absl::StatusOr<http::Response> r;
  do {
    r = Call(a, "GET", "/v1.0/invoke/host-c/method/x");
    ASSERT_TRUE(r.ok()) << r.status();
  } while (r->status == 200 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(r->status, 500) << r->body;
  json err = json::parse(r->body);
  EXPECT_EQ(err["errorCode"], "ERR_DIRECT_INVOKE");
  EXPECT_THAT(err["message"].get<std::string>(), HasSubstr("failed to invoke, id: host-c"));

  r = Call(a, "GET", "/v1.0/invoke/host-b/method/still-there");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["app"], "host-b");
}

}  // namespace
}  // namespace remora::testing
