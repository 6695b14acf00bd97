// Offline checks of deployments/ and examples/components/: what would otherwise only fail on a
// cluster or a host. Every YAML file parses; every remorad flag in the Kubernetes manifests, the
// compose file and the systemd unit exists (remorad --help lists it); every component file (the
// example directories, compose's, and those embedded in the Kubernetes ConfigMap) loads with
// remorad's own resource loader and names a component type/version this build registers; every
// sidecar container is probed on /v1.0/healthz and has resource requests.

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/registry.h"
#include "remora/runtime/resources.h"
#include "tests/tools/test_env.h"
#include "yaml-cpp/yaml.h"

namespace remora::testing {
namespace {

namespace fs = std::filesystem;

std::string Root() { return SourceDir(); }

std::vector<fs::path> YamlFilesUnder(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    auto ext = entry.path().extension();
    if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// remorad's --help text, once.
const std::string& RemoradHelp() {
  static const std::string help = [] {
    auto p = ChildProcess::Start({RemoradPath(), "--help"});
    if (!p.ok()) return std::string();
    (*p)->Wait(std::chrono::seconds(10));
    return (*p)->Output();
  }();
  return help;
}

bool HelpHasFlag(const std::string& flag) {
  std::regex re(StrCat("(^|[^a-z-])", flag, "($|[^a-z-])"));
  return std::regex_search(RemoradHelp(), re);
}

void ExpectFlagsExist(const std::vector<std::string>& args, const std::string& where) {
  for (const std::string& arg : args) {
    if (arg.rfind("--", 0) != 0) continue;
    std::string flag = arg.substr(0, arg.find('='));
    EXPECT_TRUE(HelpHasFlag(flag)) << where << ": remorad has no flag " << flag;
  }
}

std::vector<std::string> Strings(const YAML::Node& seq) {
  std::vector<std::string> out;
  if (!seq || !seq.IsSequence()) return out;
  for (const auto& item : seq) out.push_back(item.as<std::string>());
  return out;
}

// The component types this build registers, checked per kind.
bool Registered(const runtime::ComponentSpec& c) {
  static runtime::Registry* registry = [] {
    auto* r = new runtime::Registry;
    EXPECT_TRUE(runtime::RegisterBuiltinComponents(*r).ok());
    return r;
  }();
  auto starts = [&](const char* p) { return c.type.rfind(p, 0) == 0; };
  if (starts("state.")) return registry->state().Find(c.type, c.version) != nullptr;
  if (starts("pubsub.")) return registry->pubsub().Find(c.type, c.version) != nullptr;
  if (starts("secretstores.")) return registry->secretstores().Find(c.type, c.version) != nullptr;
  if (starts("configuration.")) return registry->configuration().Find(c.type, c.version) != nullptr;
  return false;
}

void ExpectComponentsLoad(const runtime::Resources& resources, const std::string& where) {
  EXPECT_FALSE(resources.components.empty()) << where;
  for (const auto& c : resources.components) {
    EXPECT_TRUE(Registered(c)) << where << ": " << c.name << " has type " << c.type << "/"
                               << c.version << ", which this remorad does not have";
  }
}

TEST(DeployTest, EveryYamlFileParses) {
  std::vector<fs::path> files = YamlFilesUnder(fs::path(Root()) / "deployments");
  auto examples = YamlFilesUnder(fs::path(Root()) / "examples");
  files.insert(files.end(), examples.begin(), examples.end());
  ASSERT_GT(files.size(), 5u);
  for (const auto& f : files) {
    try {
      std::vector<YAML::Node> docs = YAML::LoadAllFromFile(f.string());
      EXPECT_FALSE(docs.empty()) << f;
    } catch (const YAML::Exception& e) {
      ADD_FAILURE() << f << ": " << e.what();
    }
  }
}

TEST(DeployTest, ExampleAndComposeComponentDirectoriesLoad) {
  std::vector<fs::path> dirs{fs::path(Root()) / "deployments/compose/components"};
  for (const auto& entry : fs::directory_iterator(fs::path(Root()) / "examples/components")) {
    if (entry.is_directory()) dirs.push_back(entry.path());
  }
  ASSERT_GE(dirs.size(), 5u);  // compose + memory, redis, kafka, vault
  for (const auto& dir : dirs) {
    for (const std::string app : {"checkout", "order-processor", "inventory"}) {
      auto resources = runtime::LoadResources({dir.string()}, app, "");
      ASSERT_TRUE(resources.ok()) << dir << ": " << resources.status();
      ExpectComponentsLoad(*resources, StrCat(dir.string(), " as ", app));
    }
  }
}

TEST(DeployTest, KubernetesSidecarsAreProbedSizedAndUseRealFlags) {
  ASSERT_FALSE(RemoradHelp().empty());
  int sidecars = 0;
  int configmap_components = 0;
  for (const auto& f : YamlFilesUnder(fs::path(Root()) / "deployments/kubernetes")) {
    for (const YAML::Node& doc : YAML::LoadAllFromFile(f.string())) {
      if (!doc.IsMap()) continue;
      std::string kind = doc["kind"].as<std::string>("");
      if (kind == "ConfigMap" &&
          doc["metadata"]["name"].as<std::string>("") == "remora-components") {
        runtime::Resources resources;
        for (const auto& item : doc["data"]) {
          std::string name = item.first.as<std::string>();
          absl::Status s = runtime::ParseResourceDocuments(
              item.second.as<std::string>(), StrCat(f.string(), ":", name), "", "", &resources);
          EXPECT_TRUE(s.ok()) << s;
          ++configmap_components;
        }
        ExpectComponentsLoad(resources, f.string());
      }
      if (kind != "Deployment") continue;
      YAML::Node spec = doc["spec"]["template"]["spec"];
      for (const char* list : {"initContainers", "containers"}) {
        for (const auto& c : spec[list]) {
          if (c["name"].as<std::string>("") != "remorad") continue;
          ++sidecars;
          std::string where = StrCat(f.string(), " ", doc["metadata"]["name"].as<std::string>());
          std::vector<std::string> args = Strings(c["command"]);
          auto more = Strings(c["args"]);
          args.insert(args.end(), more.begin(), more.end());
          ExpectFlagsExist(args, where);
          for (const char* probe : {"startupProbe", "readinessProbe", "livenessProbe"}) {
            EXPECT_EQ(c[probe]["httpGet"]["path"].as<std::string>(""), "/v1.0/healthz")
                << where << " " << probe;
          }
          EXPECT_TRUE(c["resources"]["requests"]["memory"]) << where;
          EXPECT_TRUE(c["resources"]["requests"]["cpu"]) << where;
          EXPECT_TRUE(c["resources"]["limits"]["memory"]) << where;
        }
      }
    }
  }
  EXPECT_EQ(sidecars, 3);  // checkout, order-processor, inventory
  EXPECT_GE(configmap_components, 4);
}

TEST(DeployTest, ComposeAndSystemdUseRealFlags) {
  ASSERT_FALSE(RemoradHelp().empty());
  YAML::Node compose = YAML::LoadFile(Root() + "/deployments/compose/compose.yaml");
  int sidecars = 0;
  for (const auto& service : compose["services"]) {
    std::string name = service.first.as<std::string>();
    if (name.find("remorad") == std::string::npos) continue;
    ++sidecars;
    ExpectFlagsExist(Strings(service.second["command"]), StrCat("compose ", name));
  }
  EXPECT_EQ(sidecars, 3);

  // ExecStart with its continuation lines joined, split on blanks.
  std::string unit = ReadAll(Root() + "/deployments/systemd/remorad@.service");
  unit = std::regex_replace(unit, std::regex("\\\\\n"), " ");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(unit, m, std::regex("\nExecStart=([^\n]*)")));
  std::istringstream words(m[1].str());
  std::vector<std::string> args{std::istream_iterator<std::string>(words), {}};
  ASSERT_FALSE(args.empty());
  EXPECT_THAT(args[0], ::testing::EndsWith("/remorad"));
  ExpectFlagsExist(args, "remorad@.service");
  EXPECT_THAT(unit, ::testing::HasSubstr("/v1.0/healthz"));
}

}  // namespace
}  // namespace remora::testing
