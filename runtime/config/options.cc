#include "remora/runtime/options.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "remora/runtime/log.h"

#ifndef REMORA_VERSION
#define REMORA_VERSION "dev"
#endif

namespace remora::runtime {
namespace {

// daprd flags that `dapr run` and deployment manifests pass but remorad does not act on (mTLS,
// control plane, actors, profiling, ...). Accepting them keeps those command lines working; each
// one given is named in a warning so nobody believes it took effect.
constexpr std::string_view kIgnoredValueFlags[] = {
    "--placement-host-address",
    "--scheduler-host-address",
    "--scheduler-job-streams",
    "--actors-disseminate-timeout",
    "--sentry-address",
    "--control-plane-address",
    "--control-plane-trust-domain",
    "--control-plane-namespace",
    "--sentry-request-jwt-audiences",
    "--profile-port",
    "--unix-domain-socket",
    "--dapr-public-listen-address",
    "--allowed-origins",
    "--disable-init-endpoints",
    "--dapr-block-shutdown-duration",
    "--log-file",
    "--app-binding-options-timeout",
    "--hot-reload-reconcile-interval",
};
constexpr std::string_view kIgnoredBoolFlags[] = {
    "--enable-mtls", "--enable-profiling", "--app-ssl",
    "--wait",        "--build-info",       "--disable-builtin-k8s-secret-store",
};

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// An integer in [min, max]. CLI11's own range validators print the bounds of a double; this names
// the value and the accepted range. `allow_empty` is for flags daprd takes as strings.
CLI::Validator IntValidator(int64_t min, int64_t max, bool allow_empty = false) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        if (text.empty() && allow_empty) return "";
        int64_t value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec == std::errc() && end == text.data() + text.size() && value >= min && value <= max) {
          return "";
        }
        std::string range = max == INT_MAX
                                ? ">= " + std::to_string(min)
                                : "in " + std::to_string(min) + ".." + std::to_string(max);
        return "\"" + text + "\" is not an integer " + range;
      },
      "");
}

CLI::Validator PortValidator() { return IntValidator(0, 65535); }

CLI::Validator QuantityValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (ParseQuantity(text)) return "";
        return "\"" + text + "\" is not a size (e.g. 4Mi, 512Ki, 1048576)";
      },
      "QUANTITY");
}

CLI::Validator LogLevelValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        log::Level level;
        if (log::ParseLevel(text, &level)) return "";
        return "\"" + text + "\" is not one of debug, info, warn, error, fatal";
      },
      "LEVEL");
}

std::vector<std::string> SplitCsv(std::string_view csv) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= csv.size()) {
    size_t end = csv.find(',', start);
    if (end == std::string_view::npos) end = csv.size();
    std::string_view item = csv.substr(start, end - start);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) {
      item.remove_prefix(1);
    }
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) {
      item.remove_suffix(1);
    }
    if (!item.empty()) out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

}  // namespace

std::optional<uint64_t> ParseQuantity(std::string_view text) {
  // Kubernetes resource.Quantity as daprd reads byte sizes: a non-negative decimal number with an
  // optional binary (Ki..Ei) or decimal (k..E) suffix; fractions round up, as Quantity.Value()
  // does.
  std::string_view s = text;
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  size_t num_len = 0;
  while (num_len < s.size() &&
         (std::isdigit(static_cast<unsigned char>(s[num_len])) || s[num_len] == '.')) {
    ++num_len;
  }
  std::string_view number = s.substr(0, num_len);
  std::string_view suffix = s.substr(num_len);

  uint64_t multiplier = 0;
  struct Suffix {
    std::string_view name;
    uint64_t value;
  };
  static constexpr Suffix kSuffixes[] = {
      {"", 1},
      {"Ki", uint64_t{1} << 10},
      {"Mi", uint64_t{1} << 20},
      {"Gi", uint64_t{1} << 30},
      {"Ti", uint64_t{1} << 40},
      {"Pi", uint64_t{1} << 50},
      {"Ei", uint64_t{1} << 60},
      {"k", 1'000},
      {"M", 1'000'000},
      {"G", 1'000'000'000},
      {"T", 1'000'000'000'000},
      {"P", 1'000'000'000'000'000},
      {"E", 1'000'000'000'000'000'000},
  };
  for (const Suffix& candidate : kSuffixes) {
    if (candidate.name == suffix) multiplier = candidate.value;
  }
  if (multiplier == 0) return std::nullopt;

  size_t dot = number.find('.');
  std::string_view whole = number.substr(0, dot);
  std::string_view frac =
      dot == std::string_view::npos ? std::string_view() : number.substr(dot + 1);
  if (whole.empty() && frac.empty()) return std::nullopt;
  if (frac.find('.') != std::string_view::npos) return std::nullopt;

  uint64_t value = 0;
  if (!whole.empty()) {
    auto [end, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), value);
    if (ec != std::errc() || end != whole.data() + whole.size()) return std::nullopt;
  }
  if (value > UINT64_MAX / multiplier) return std::nullopt;
  value *= multiplier;
  // Fraction: ceil(0.frac * multiplier), digit by digit to stay exact.
  if (!frac.empty()) {
    unsigned __int128 numerator = 0;
    unsigned __int128 denominator = 1;
    for (char c : frac.substr(0, 30)) {
      numerator = numerator * 10 + static_cast<unsigned>(c - '0');
      denominator *= 10;
    }
    unsigned __int128 extra = (numerator * multiplier + denominator - 1) / denominator;
    if (extra > UINT64_MAX - value) return std::nullopt;
    value += static_cast<uint64_t>(extra);
  }
  return value;
}

ParseResult ParseCommandLine(int argc, const char* const* argv) {
  Options o;
  CLI::App app{"remorad: a Dapr-compatible sidecar runtime. Takes daprd's flags.", "remorad"};
  // Go's flag package lets a repeated flag override the earlier one; CLI11 would refuse it.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  app.add_option("--app-id", o.app_id, "The id of the application");
  // daprd's --app-port is a string whose empty value means "no app", like 0 here.
  app.add_option("--app-port", o.app_port, "The port the application listens on (0: no app)")
      ->check(IntValidator(0, 65535, /*allow_empty=*/true));
  app.add_option("--app-protocol", o.app_protocol, "Protocol of the app channel")
      ->check(CLI::IsMember({"http", "https", "grpc", "grpcs", "h2c"}));
  app.add_option("--app-channel-address", o.app_channel_address,
                 "The host the application listens on");
  app.add_option("--app-max-concurrency", o.app_max_concurrency,
                 "Concurrent calls into the app (-1: unlimited)")
      ->check(IntValidator(-1, INT_MAX));
  app.add_option("--dapr-http-port", o.dapr_http_port, "HTTP API port")->check(PortValidator());
  app.add_option("--dapr-grpc-port", o.dapr_grpc_port, "gRPC API port")->check(PortValidator());
  app.add_option("--dapr-internal-grpc-port", o.dapr_internal_grpc_port,
                 "Sidecar-to-sidecar gRPC port (0: a free port)")
      ->check(PortValidator());
  app.add_option("--dapr-internal-grpc-listen-address", o.dapr_internal_grpc_listen_address,
                 "Bind address of the sidecar-to-sidecar port (default: the API addresses)");
  app.add_option("--dapr-public-port", o.dapr_public_port, "Public health/metadata port (0: none)")
      ->check(PortValidator());
  std::string listen_addresses;
  CLI::Option* listen_opt =
      app.add_option("--dapr-listen-addresses", listen_addresses,
                     "Comma-separated bind addresses of the API ports (default 127.0.0.1)");
  app.add_option("--resources-path,--components-path", o.resources_paths,
                 "Directory of YAML resources (repeatable; --components-path is deprecated)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  app.add_option("--config", o.config_files, "Configuration file (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  app.add_option("--mode", o.mode, "Runtime mode")
      ->check(CLI::IsMember({"standalone", "kubernetes"}));
  app.add_option("--log-level", o.log_level, "debug, info, warn, error or fatal")
      ->check(LogLevelValidator());
  app.add_flag("--log-as-json", o.log_as_json, "Log JSON lines");
  app.add_flag("--enable-metrics", o.enable_metrics, "Serve Prometheus metrics (default true)");
  app.add_option("--metrics-port", o.metrics_port, "Metrics port")->check(PortValidator());
  app.add_option("--metrics-listen-address", o.metrics_listen_address, "Metrics bind address");
  std::string max_body_size;
  CLI::Option* max_body_opt =
      app.add_option("--max-body-size", max_body_size, "Largest request body (default 4Mi)")
          ->check(QuantityValidator());
  int max_request_size_mb = 0;
  CLI::Option* max_request_mb_opt =
      app.add_option("--dapr-http-max-request-size", max_request_size_mb,
                     "Deprecated: largest request body in MB")
          ->check(IntValidator(0, INT_MAX));
  std::string read_buffer_size;
  CLI::Option* read_buffer_opt = app.add_option("--read-buffer-size", read_buffer_size,
                                                "Largest request header block (default 4Ki)")
                                     ->check(QuantityValidator());
  int read_buffer_kb = 0;
  CLI::Option* read_buffer_kb_opt = app.add_option("--dapr-http-read-buffer-size", read_buffer_kb,
                                                   "Deprecated: largest header block in KB")
                                        ->check(IntValidator(0, INT_MAX));
  bool api_logging = false;
  CLI::Option* api_logging_opt =
      app.add_flag("--enable-api-logging", api_logging, "Log every API call");
  app.add_option("--dapr-graceful-shutdown-seconds", o.graceful_shutdown_seconds,
                 "Time to drain on shutdown")
      ->check(IntValidator(0, INT_MAX));
  app.add_flag("--enable-app-health-check", o.enable_app_health_check, "Probe the app's health");
  app.add_option("--app-health-check-path", o.app_health_check_path, "HTTP path of the probe");
  app.add_option("--app-health-probe-interval", o.app_health_probe_interval_s,
                 "Seconds between probes")
      ->check(IntValidator(1, INT_MAX));
  app.add_option("--app-health-probe-timeout", o.app_health_probe_timeout_ms,
                 "Probe timeout in milliseconds")
      ->check(IntValidator(1, INT_MAX));
  app.add_option("--app-health-threshold", o.app_health_threshold,
                 "Failed probes before the app counts as unhealthy")
      ->check(IntValidator(1, INT_MAX));
  bool version = false;
  app.add_flag("--version", version, "Print the version and exit");

  std::vector<std::string> ignored_values(std::size(kIgnoredValueFlags));
  std::vector<CLI::Option*> ignored;
  constexpr const char* kIgnoredGroup = "Accepted for daprd compatibility, ignored";
  for (size_t i = 0; i < std::size(kIgnoredValueFlags); ++i) {
    ignored.push_back(app.add_option(std::string(kIgnoredValueFlags[i]), ignored_values[i])
                          ->group(kIgnoredGroup));
  }
  for (std::string_view name : kIgnoredBoolFlags) {
    ignored.push_back(app.add_flag(std::string(name))->group(kIgnoredGroup));
  }

  // daprd (Go's flag package) also accepts `-app-id x` and `-app-id=x`. Only names that are
  // flags of ours are rewritten, so an unknown `-foo` is reported as the user typed it.
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() > 2 && arg[0] == '-' && std::isalpha(static_cast<unsigned char>(arg[1]))) {
      size_t eq = arg.find('=');
      std::string name = "--" + arg.substr(1, eq == std::string::npos ? eq : eq - 1);
      if (app.get_option_no_throw(name) != nullptr) arg = "-" + arg;
    }
    // `--flag=` means an empty value (`dapr run` passes `--scheduler-host-address=`), but CLI11
    // would take the next argument instead; hand it the empty value as a separate argument.
    if (arg.size() > 3 && arg.starts_with("--") && arg.back() == '=') {
      arg.pop_back();
      args.push_back(std::move(arg));
      args.emplace_back();
      continue;
    }
    args.push_back(std::move(arg));
  }
  std::reverse(args.begin(), args.end());  // CLI11's vector overload takes the arguments reversed

  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return {std::nullopt, 0};
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return {std::nullopt, 0};
  } catch (const CLI::ParseError& e) {
    // CLI11 exits with its own codes (105, 106, ...); scripts and `dapr run` expect daprd's 1.
    std::cerr << "remorad: error: " << e.what() << " (see remorad --help)" << std::endl;
    return {std::nullopt, 1};
  }
  if (version) {
    std::cout << "remorad " << REMORA_VERSION << std::endl;
    return {std::nullopt, 0};
  }

  if (listen_opt->count() > 0) {
    o.dapr_listen_addresses = SplitCsv(listen_addresses);
    if (o.dapr_listen_addresses.empty()) {
      std::cerr << "remorad: error: --dapr-listen-addresses: no address given (see remorad --help)"
                << std::endl;
      return {std::nullopt, 1};
    }
  }
  if (api_logging_opt->count() > 0) o.enable_api_logging = api_logging;

  // Apply the log settings now so the warnings below already follow --log-level/--log-as-json.
  log::Level level = log::Level::kInfo;
  log::ParseLevel(o.log_level, &level);
  log::Configure(level, o.log_as_json, o.app_id);

  if (max_body_opt->count() > 0) o.max_body_size = *ParseQuantity(max_body_size);
  if (max_request_mb_opt->count() > 0) {
    log::Warn("flag --dapr-http-max-request-size is deprecated; use --max-body-size");
    o.max_body_size = static_cast<uint64_t>(max_request_size_mb) << 20;
  }
  if (read_buffer_opt->count() > 0) o.read_buffer_size = *ParseQuantity(read_buffer_size);
  if (read_buffer_kb_opt->count() > 0) {
    log::Warn("flag --dapr-http-read-buffer-size is deprecated; use --read-buffer-size");
    o.read_buffer_size = static_cast<uint64_t>(read_buffer_kb) << 10;
  }
  for (CLI::Option* opt : ignored) {
    if (opt->count() > 0) {
      log::Warn("flag ", opt->get_name(), " is accepted for daprd compatibility and ignored");
    }
  }

  o.api_token = Env("DAPR_API_TOKEN");
  o.app_api_token = Env("APP_API_TOKEN");
  o.namespace_ = Env("NAMESPACE");
  return {std::move(o), 0};
}

}  // namespace remora::runtime
