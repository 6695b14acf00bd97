#include "tests/tools/redis_component.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>

#include "remora/components/common/strings.h"
#include "yaml-cpp/yaml.h"

namespace remora::testing {

boost::asio::io_context& SharedIoContext() {
  static auto* io = [] {
    auto* ctx = new boost::asio::io_context(1);
    new boost::asio::executor_work_guard<boost::asio::io_context::executor_type>(
        ctx->get_executor());
    std::thread([ctx] { ctx->run(); }).detach();
    return ctx;
  }();
  return *io;
}

absl::StatusOr<RedisServer*> SharedRedisServer() {
  static RedisServer* server = nullptr;
  if (server == nullptr) {
    absl::StatusOr<std::unique_ptr<RedisServer>> started = RedisServer::Start();
    if (!started.ok()) return started.status();
    server = started->release();
  }
  return server;
}

absl::StatusOr<MetadataYamlKeys> ReadRedisMetadataKeys(
    const std::string& yaml_path,
    const std::function<absl::Status(const components::Metadata&)>& parse) {
  const char* source = std::getenv("REMORA_SOURCE_DIR");
  if (source == nullptr) {
    return MakeStatus(absl::StatusCode::kFailedPrecondition,
                      "REMORA_SOURCE_DIR is not set (ctest sets it)");
  }
  MetadataYamlKeys keys;
  YAML::Node doc = YAML::LoadFile(StrCat(source, "/", yaml_path));
  keys.type = doc["type"].as<std::string>("");
  for (const YAML::Node& item : doc["metadata"]) {
    keys.documented.insert(item["name"].as<std::string>());
  }
  // Values every key accepts without turning on a refused mode.
  std::map<std::string, std::string> values;
  for (const std::string& name : keys.documented) values[name] = "0";
  values["redisHost"] = "localhost:6379";
  for (const char* k :
       {"enableTLS", "failover", "useEntraID", "useAzureAD", "insecureSkipTLSVerify"}) {
    values[k] = "false";
  }
  values["redisType"] = "node";
  for (const char* k : {"sentinelUsername", "sentinelPassword", "sentinelMasterName", "clientCert",
                        "clientKey", "redisPassword", "redisUsername"}) {
    values[k] = "x";
  }
  values["redisPort"] = "6379";
  // Aliases: the second spelling is read only when the first is absent.
  std::map<std::string, std::string> aliases = values;
  values.erase("maxRetries");
  values.erase("maxRetryBackoff");
  aliases.erase("redisMaxRetries");
  aliases.erase("redisMinRetryInterval");
  for (const auto& run : {values, aliases}) {
    components::Metadata metadata(run);
    if (absl::Status s = parse(metadata); !s.ok()) return s;
    std::vector<std::string> unused = metadata.Unused();
    for (const auto& [k, v] : run) {
      if (std::find(unused.begin(), unused.end(), k) == unused.end()) keys.read.insert(k);
    }
  }
  return keys;
}

}  // namespace remora::testing
