// The name resolution components: `directory` (the default; several sidecars on one host or on
// several hosts sharing a directory) and `kubernetes` (DNS names of the sidecars' Services).
//
// Why a shared directory and not mDNS (daprd's self-hosted default): multicast is often off
// (containers, cloud VPCs, CI sandboxes, network namespaces without a multicast route), mDNS
// answers take a round of queries (tens of ms to seconds) and a process that dies uncleanly stays
// announced until TTLs expire. A directory needs nothing but a filesystem: on one host it is a
// local path; across hosts the same path on NFS/SMB/a shared volume. Each record carries a
// heartbeat (the file's mtime) so a crashed sidecar drops out after `staleAfter`, and on the
// same host its pid is checked at once.

#include "nameresolution/name_resolver.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

#include "remora/components/common/strings.h"
#include "remora/runtime/log.h"

namespace remora::runtime::nameresolution {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status BadConfig(std::string_view component, std::string_view key, std::string_view why) {
  return MakeStatus(absl::StatusCode::kInvalidArgument,
                    StrCat("nameResolution ", component, ": configuration.", key, " ", why));
}

// "2s", "500ms", "1m", or a plain number of seconds.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) return std::nullopt;
  double value = std::atof(std::string(text.substr(0, i)).c_str());
  std::string_view unit = text.substr(i);
  double ms;
  if (unit.empty() || unit == "s") {
    ms = value * 1000;
  } else if (unit == "ms") {
    ms = value;
  } else if (unit == "m") {
    ms = value * 60000;
  } else {
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

std::string Hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

bool MakeDirs(const std::string& path) {
  std::string partial;
  std::stringstream ss(path);
  std::string part;
  if (!path.empty() && path[0] == '/') partial = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    partial += part;
    if (::mkdir(partial.c_str(), 0777) != 0 && errno != EEXIST) return false;
    partial += "/";
  }
  return true;
}

std::string HostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos && !host.starts_with('[')) {
    return StrCat("[", host, "]:", port);
  }
  return StrCat(host, ":", port);
}

// One file per sidecar: <path>/<namespace>/<app-id>/<hostname>-<pid>-<port>, holding
// "host:port\nhostname\npid\n". Its mtime is the heartbeat.
class DirectoryResolver final : public Resolver {
 public:
  DirectoryResolver(std::string path, std::chrono::milliseconds heartbeat,
                    std::chrono::milliseconds stale_after, std::chrono::milliseconds cache_ttl)
      : path_(std::move(path)),
        heartbeat_(heartbeat),
        stale_after_(stale_after),
        cache_ttl_(cache_ttl),
        hostname_(Hostname()) {}

  ~DirectoryResolver() override { Unregister(); }

  std::string Name() const override { return "directory"; }

  absl::Status Register(const Registration& self) override {
    // The runtime registers from the gRPC start-up thread while a shutdown may be unregistering:
    // a heartbeat started after Unregister would never be joined.
    std::lock_guard registration(registration_mu_);
    {
      std::lock_guard lock(mu_);
      if (stopped_) return absl::OkStatus();
    }
    self_ = self;
    std::string dir = StrCat(path_, "/", Ns(self.namespace_), "/", self.app_id);
    if (!MakeDirs(dir)) {
      return MakeStatus(
          absl::StatusCode::kFailedPrecondition,
          StrCat("nameResolution directory: cannot create ", dir, ": ", std::strerror(errno)));
    }
    file_ = StrCat(dir, "/", hostname_, "-", static_cast<int64_t>(::getpid()), "-", self.port);
    record_ = StrCat(HostPort(self.host, self.port), "\n", hostname_, "\n",
                     static_cast<int64_t>(::getpid()), "\n");
    if (absl::Status s = Write(); !s.ok()) return s;
    log::Info("name resolution: registered ", self.app_id, " at ", HostPort(self.host, self.port),
              " in ", file_);
    heartbeat_thread_ = std::thread([this] { Heartbeat(); });
    return absl::OkStatus();
  }

  void Unregister() override {
    std::lock_guard registration(registration_mu_);
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
    if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
    if (!file_.empty()) ::unlink(file_.c_str());
    file_.clear();
  }

  absl::StatusOr<std::string> Resolve(const std::string& app_id,
                                      const std::string& namespace_) override {
    std::string ns = Ns(namespace_.empty() ? self_.namespace_ : namespace_);
    std::string key = StrCat(ns, "/", app_id);
    auto now = Clock::now();
    {
      std::lock_guard lock(mu_);
      auto it = cache_.find(key);
      if (it != cache_.end() && now < it->second.expires && !it->second.targets.empty()) {
        auto& entry = it->second;
        return entry.targets[entry.next++ % entry.targets.size()];
      }
    }
    std::vector<std::string> targets = Scan(StrCat(path_, "/", key));
    if (targets.empty()) {
      return MakeStatus(absl::StatusCode::kNotFound,
                        StrCat("app id ", app_id, " not found: no live sidecar is registered in ",
                               path_, "/", key));
    }
    std::lock_guard lock(mu_);
    auto& entry = cache_[key];
    entry.targets = std::move(targets);
    entry.expires = now + cache_ttl_;
    return entry.targets[entry.next++ % entry.targets.size()];
  }

 private:
  struct CacheEntry {
    std::vector<std::string> targets;
    Clock::time_point expires;
    size_t next = 0;
  };

  static std::string Ns(const std::string& ns) { return ns.empty() ? "default" : ns; }

  // Written to a temporary name and renamed, so a reader never sees half a record.
  absl::Status Write() {
    std::string tmp = StrCat(file_, ".tmp");
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << record_;
      if (!out) {
        return MakeStatus(absl::StatusCode::kFailedPrecondition,
                          StrCat("nameResolution directory: cannot write ", tmp));
      }
    }
    if (::rename(tmp.c_str(), file_.c_str()) != 0) {
      return MakeStatus(
          absl::StatusCode::kFailedPrecondition,
          StrCat("nameResolution directory: cannot rename ", tmp, ": ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }

  void Heartbeat() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, heartbeat_, [this] { return stopped_; })) {
      lock.unlock();
      // Touch; if someone removed the record (a cleanup by another sidecar that thought us
      // dead), write it again.
      if (::utimensat(AT_FDCWD, file_.c_str(), nullptr, 0) != 0) {
        if (absl::Status s = Write(); !s.ok()) log::Warn(MessageOf(s));
      }
      lock.lock();
    }
  }

  std::vector<std::string> Scan(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    auto wall_now = std::chrono::system_clock::now();
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || name.ends_with(".tmp")) continue;
      std::string file = StrCat(dir, "/", name);
      struct stat st;
      if (::stat(file.c_str(), &st) != 0) continue;
      auto mtime = std::chrono::system_clock::time_point(
          std::chrono::seconds(st.st_mtim.tv_sec) +
          std::chrono::duration_cast<std::chrono::system_clock::duration>(
              std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
      if (wall_now - mtime > stale_after_) continue;
      std::ifstream in(file);
      std::string target, host, pid;
      if (!std::getline(in, target) || target.empty()) continue;
      std::getline(in, host);
      std::getline(in, pid);
      // Same host: a dead pid is gone now, not after staleAfter.
      if (host == hostname_ && !pid.empty()) {
        pid_t p = static_cast<pid_t>(std::atol(pid.c_str()));
        if (p > 0 && ::kill(p, 0) != 0 && errno == ESRCH) {
          ::unlink(file.c_str());
          continue;
        }
      }
      out.push_back(target);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
  }

  const std::string path_;
  const std::chrono::milliseconds heartbeat_;
  const std::chrono::milliseconds stale_after_;
  const std::chrono::milliseconds cache_ttl_;
  const std::string hostname_;
  Registration self_;
  std::string file_;
  std::string record_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::mutex registration_mu_;  // Register against Unregister
  std::thread heartbeat_thread_;
  std::unordered_map<std::string, CacheEntry> cache_;
};

// Kubernetes: every app's sidecar is reachable through the `<app-id>-dapr` Service the injector
// creates; gRPC resolves the DNS name itself (asynchronously), so nothing blocks here.
class KubernetesResolver final : public Resolver {
 public:
  KubernetesResolver(std::string tmpl, std::string cluster_domain, int port)
      : template_(std::move(tmpl)), cluster_domain_(std::move(cluster_domain)), port_(port) {}

  std::string Name() const override { return "kubernetes"; }
  absl::Status Register(const Registration& self) override {
    self_ = self;
    return absl::OkStatus();
  }
  void Unregister() override {}

  absl::StatusOr<std::string> Resolve(const std::string& app_id,
                                      const std::string& namespace_) override {
    std::string ns = !namespace_.empty()
                         ? namespace_
                         : (!self_.namespace_.empty() ? self_.namespace_ : "default");
    std::string out = template_;
    Replace(&out, "{{.ID}}", app_id);
    Replace(&out, "{{.Namespace}}", ns);
    Replace(&out, "{{.ClusterDomain}}", cluster_domain_);
    Replace(&out, "{{.Port}}", std::to_string(port_));
    return out;
  }

 private:
  static void Replace(std::string* s, std::string_view from, std::string_view to) {
    for (size_t pos = s->find(from); pos != std::string::npos;
         pos = s->find(from, pos + to.size())) {
      s->replace(pos, from.size(), to);
    }
  }

  std::string template_;
  std::string cluster_domain_;
  int port_;
  Registration self_;
};

std::string DefaultDirectory() {
  if (const char* env = std::getenv("REMORA_NAMERESOLUTION_DIR"); env && *env) return env;
  const char* tmp = std::getenv("TMPDIR");
  return StrCat(tmp && *tmp ? tmp : "/tmp", "/remora-nameresolution");
}

}  // namespace

absl::StatusOr<std::unique_ptr<Resolver>> CreateResolver(const Config& config) {
  auto get = [&](const char* key, std::string fallback) {
    auto it = config.configuration.find(key);
    return it == config.configuration.end() || it->second.empty() ? fallback : it->second;
  };
  std::string component = config.component.empty() ? "directory" : config.component;
  if (component == "directory") {
    auto heartbeat = ParseDuration(get("heartbeatInterval", "2s"));
    if (!heartbeat || heartbeat->count() <= 0) {
      return BadConfig(component, "heartbeatInterval", "must be a duration such as 2s");
    }
    auto stale = ParseDuration(get("staleAfter", StrCat(heartbeat->count() * 3, "ms")));
    if (!stale || *stale <= *heartbeat) {
      return BadConfig(component, "staleAfter", "must be a duration longer than heartbeatInterval");
    }
    auto ttl = ParseDuration(get("cacheTTL", "1s"));
    if (!ttl) return BadConfig(component, "cacheTTL", "must be a duration such as 1s");
    return std::unique_ptr<Resolver>(
        new DirectoryResolver(get("path", DefaultDirectory()), *heartbeat, *stale, *ttl));
  }
  if (component == "kubernetes") {
    std::string port_text = get("port", "50002");
    int port = std::atoi(port_text.c_str());
    if (port <= 0 || port > 65535) return BadConfig(component, "port", "must be a port number");
    return std::unique_ptr<Resolver>(new KubernetesResolver(
        get("template", "{{.ID}}-dapr.{{.Namespace}}.svc.{{.ClusterDomain}}:{{.Port}}"),
        get("clusterDomain", "cluster.local"), port));
  }
  return MakeStatus(absl::StatusCode::kNotFound,
                    StrCat("nameResolution component \"", config.component,
                           "\" is not supported (this build has: directory, kubernetes)"));
}

}  // namespace remora::runtime::nameresolution
