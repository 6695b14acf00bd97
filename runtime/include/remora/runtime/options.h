#pragma once

// remorad's command line: daprd's flags and environment (contract §6).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace remora::runtime {

struct Options {
  std::string app_id;
  int app_port = 0;  // 0: no app channel
  std::string app_protocol = "http";  // http, https, grpc, grpcs, h2c
  std::string app_channel_address = "127.0.0.1";
  int app_max_concurrency = -1;  // -1: unlimited
  int dapr_http_port = 3500;
  int dapr_grpc_port = 50001;
  int dapr_internal_grpc_port = 0;  // 0: a free port
  // --dapr-internal-grpc-listen-address; empty: dapr_listen_addresses.
  std::string dapr_internal_grpc_listen_address;
  int dapr_public_port = 0;         // 0: no public listener
  // Bind addresses of the API ports. Default: loopback only (unlike daprd's all-interfaces).
  std::vector<std::string> dapr_listen_addresses = {"127.0.0.1"};
  std::vector<std::string> resources_paths;  // --resources-path (repeatable) + --components-path
  std::vector<std::string> config_files;     // --config (repeatable)
  std::string mode = "standalone";
  std::string log_level = "info";  // debug, info, warn, error, fatal
  bool log_as_json = false;
  bool enable_metrics = true;
  int metrics_port = 9090;
  std::string metrics_listen_address = "127.0.0.1";
  uint64_t max_body_size = 4 * 1024 * 1024;    // --max-body-size (quantity) or MB form
  uint64_t read_buffer_size = 4 * 1024;        // --read-buffer-size (quantity) or KB form
  std::optional<bool> enable_api_logging;       // unset: follow Configuration logging.apiLogging
  int graceful_shutdown_seconds = 5;
  bool enable_app_health_check = false;
  std::string app_health_check_path = "/healthz";
  int app_health_probe_interval_s = 5;
  int app_health_probe_timeout_ms = 500;
  int app_health_threshold = 3;

  // From the environment.
  std::string api_token;      // DAPR_API_TOKEN
  std::string app_api_token;  // APP_API_TOKEN
  std::string namespace_;     // NAMESPACE
};

// Outcome of parsing: either options to run with, or an exit code (for --help, --version and
// errors, whose text has already been written to stdout/stderr).
struct ParseResult {
  std::optional<Options> options;
  int exit_code = 0;
};

// Parses daprd-style arguments. Accepts `--flag value`, `--flag=value` and daprd's single-dash
// long form (`-app-id x`). Known daprd flags that remorad does not act on are accepted and named
// in a warning (so `dapr run` command lines keep working). An unknown or malformed flag prints an
// error naming it and yields exit code 1.
ParseResult ParseCommandLine(int argc, const char* const* argv);

// Kubernetes-style resource quantity: "4Mi", "512Ki", "1G", "1048576".
std::optional<uint64_t> ParseQuantity(std::string_view text);

}  // namespace remora::runtime
