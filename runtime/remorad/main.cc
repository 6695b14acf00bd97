// remorad: a Dapr-compatible sidecar. Flags and environment follow daprd (contract §6).

#include <chrono>

#include "remora/runtime/log.h"
#include "remora/runtime/options.h"
#include "remora/runtime/runtime.h"

int main(int argc, char** argv) {
  auto start = std::chrono::steady_clock::now();
  remora::runtime::ParseResult parsed = remora::runtime::ParseCommandLine(argc, argv);
  if (!parsed.options) return parsed.exit_code;
  const remora::runtime::Options& options = *parsed.options;

  remora::log::Level level = remora::log::Level::kInfo;
  remora::log::ParseLevel(options.log_level, &level);
  remora::log::Configure(level, options.log_as_json, options.app_id);

  auto runtime = remora::runtime::Runtime::Create(options);
  if (!runtime.ok()) {
    remora::log::Error("start-up failed: ", remora::MessageOf(runtime.status()));
    return 1;
  }
  if (absl::Status s = (*runtime)->StartServers(); !s.ok()) {
    remora::log::Error("start-up failed: ", remora::MessageOf(s));
    return 1;
  }
  auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  remora::log::Info("remorad ready: HTTP API on port ", (*runtime)->http_port(), ", init took ",
                    elapsed.count() / 1000.0, " ms");
  return (*runtime)->Wait();
}
