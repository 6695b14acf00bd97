#pragma once

// What the tests of every Redis-backed component (state.redis, lock.redis, configuration.redis)
// share: one event loop for the stores, one redis-server for the suite, and the check that a
// component's metadata.yaml lists exactly the keys its ParseConfig reads.

#include <utility>  // before Asio: Boost 1.74 + GCC 12 in C++20 needs it first

#include <functional>
#include <set>
#include <string>

#include <boost/asio/io_context.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "remora/components/common/metadata.h"
#include "tests/tools/redis_server.h"

namespace remora::testing {

// One io_context run by one thread for the whole test binary (as remorad's event loop). Never
// destroyed: stores of finished tests may still post callbacks onto it.
boost::asio::io_context& SharedIoContext();

// The suite's redis-server: started on first use (call it from the main thread, e.g. in SetUp)
// and shared by every test of the binary.
absl::StatusOr<RedisServer*> SharedRedisServer();

struct MetadataYamlKeys {
  std::string type;                  // metadata.yaml's `type`
  std::set<std::string> documented;  // every `metadata[].name`
  std::set<std::string> read;        // those `parse` marked as used
};

// Reads <REMORA_SOURCE_DIR>/<yaml_path> and runs `parse` over every documented key with a value
// it accepts (the shared Redis connection keys get valid ones), once with each spelling of the
// aliased retry keys, recording which keys it read. `parse` fails → its status.
absl::StatusOr<MetadataYamlKeys> ReadRedisMetadataKeys(
    const std::string& yaml_path,
    const std::function<absl::Status(const components::Metadata&)>& parse);

}  // namespace remora::testing
