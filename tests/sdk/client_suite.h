#pragma once

// The state API through remora::Client, one parameterised suite run over both transports: the
// embedded runtime (sdk_embedded_test) and gRPC to a real remorad (sdk_remote_test). Both must
// give the same answers, status codes and error reasons included, since a function is meant to
// switch transports without noticing.
//
// A transport's harness makes a client whose store "statestore" is of `store_type`
// (state.in-memory, or state.redis against a real redis-server) and whose app id is kAppId. Clients
// may share a store across tests: keys carry the test's name.

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "absl/status/statusor.h"
#include "remora/client.h"

namespace remora::sdk_test {

inline constexpr const char* kAppId = "sdktest";

struct Transport {
  std::string name;
  std::string store_type = "state.in-memory";
  // Called once per test, from the test's thread.
  std::function<absl::StatusOr<std::unique_ptr<Client>>()> make;
};

class ClientSuite : public ::testing::TestWithParam<Transport> {
 protected:
  void SetUp() override;
  // `name` made unique to this test (and transport).
  std::string Key(const std::string& name) const;

  std::unique_ptr<Client> client_;
};

inline void PrintTo(const Transport& transport, std::ostream* os) { *os << transport.name; }

inline std::string TransportName(const ::testing::TestParamInfo<Transport>& info) {
  return info.param.name;
}

}  // namespace remora::sdk_test
