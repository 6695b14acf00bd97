#include "remora/runtime/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

namespace remora::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

struct Outcome {
  ParseResult result;
  std::string out;
  std::string err;
};

Outcome Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "remorad");
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  Outcome run;
  run.result = ParseCommandLine(static_cast<int>(argv.size()), argv.data());
  run.out = ::testing::internal::GetCapturedStdout();
  run.err = ::testing::internal::GetCapturedStderr();
  return run;
}

Options ParseOk(std::vector<std::string> args) {
  Outcome run = Parse(std::move(args));
  EXPECT_EQ(run.result.exit_code, 0) << run.err;
  EXPECT_TRUE(run.result.options.has_value()) << run.err;
  return run.result.options.value_or(Options{});
}

// Expects a failure: exit code 1 and one stderr line that mentions `flag`.
void ExpectError(std::vector<std::string> args, const std::string& flag) {
  Outcome run = Parse(args);
  std::string joined;
  for (const auto& a : args) joined += a + " ";
  EXPECT_EQ(run.result.exit_code, 1) << joined;
  EXPECT_FALSE(run.result.options.has_value()) << joined;
  EXPECT_THAT(run.err, HasSubstr(flag)) << joined;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << joined << ": " << run.err;
  EXPECT_THAT(run.out, IsEmpty()) << joined;
}

TEST(OptionsTest, DefaultsMatchTheContract) {
  Options o = ParseOk({});
  EXPECT_EQ(o.app_id, "");
  EXPECT_EQ(o.app_port, 0);
  EXPECT_EQ(o.app_protocol, "http");
  EXPECT_EQ(o.dapr_http_port, 3500);
  EXPECT_EQ(o.dapr_grpc_port, 50001);
  EXPECT_THAT(o.dapr_listen_addresses, ElementsAre("127.0.0.1"));
  EXPECT_EQ(o.max_body_size, 4u << 20);
  EXPECT_EQ(o.read_buffer_size, 4u << 10);
  EXPECT_TRUE(o.enable_metrics);
  EXPECT_EQ(o.enable_api_logging, std::nullopt);
  EXPECT_EQ(o.log_level, "info");
}

TEST(OptionsTest, EveryFlagIsRead) {
  Options o = ParseOk({"--app-id",
                       "orders",
                       "--app-port",
                       "3000",
                       "--app-protocol",
                       "grpc",
                       "--app-channel-address",
                       "10.0.0.2",
                       "--app-max-concurrency",
                       "8",
                       "--dapr-http-port",
                       "3600",
                       "--dapr-grpc-port=50002",
                       "--dapr-internal-grpc-port",
                       "47301",
                       "--dapr-public-port",
                       "3501",
                       "--dapr-listen-addresses",
                       "[::1], 127.0.0.1",
                       "--resources-path",
                       "a",
                       "--components-path",
                       "b",
                       "--resources-path",
                       "c",
                       "--config",
                       "x.yaml",
                       "--config",
                       "y.yaml",
                       "--mode",
                       "kubernetes",
                       "--log-level",
                       "warn",
                       "--log-as-json",
                       "--enable-metrics=false",
                       "--metrics-port",
                       "9091",
                       "--metrics-listen-address",
                       "0.0.0.0",
                       "--max-body-size",
                       "16Mi",
                       "--read-buffer-size",
                       "8Ki",
                       "--enable-api-logging",
                       "--dapr-graceful-shutdown-seconds",
                       "9",
                       "--enable-app-health-check",
                       "--app-health-check-path",
                       "/up",
                       "--app-health-probe-interval",
                       "2",
                       "--app-health-probe-timeout",
                       "300",
                       "--app-health-threshold",
                       "4"});
  EXPECT_EQ(o.app_id, "orders");
  EXPECT_EQ(o.app_port, 3000);
  EXPECT_EQ(o.app_protocol, "grpc");
  EXPECT_EQ(o.app_channel_address, "10.0.0.2");
  EXPECT_EQ(o.app_max_concurrency, 8);
  EXPECT_EQ(o.dapr_http_port, 3600);
  EXPECT_EQ(o.dapr_grpc_port, 50002);
  EXPECT_EQ(o.dapr_internal_grpc_port, 47301);
  EXPECT_EQ(o.dapr_public_port, 3501);
  EXPECT_THAT(o.dapr_listen_addresses, ElementsAre("[::1]", "127.0.0.1"));
  EXPECT_THAT(o.resources_paths, ElementsAre("a", "b", "c"));
  EXPECT_THAT(o.config_files, ElementsAre("x.yaml", "y.yaml"));
  EXPECT_EQ(o.mode, "kubernetes");
  EXPECT_EQ(o.log_level, "warn");
  EXPECT_TRUE(o.log_as_json);
  EXPECT_FALSE(o.enable_metrics);
  EXPECT_EQ(o.metrics_port, 9091);
  EXPECT_EQ(o.metrics_listen_address, "0.0.0.0");
  EXPECT_EQ(o.max_body_size, 16u << 20);
  EXPECT_EQ(o.read_buffer_size, 8u << 10);
  EXPECT_EQ(o.enable_api_logging, true);
  EXPECT_EQ(o.graceful_shutdown_seconds, 9);
  EXPECT_TRUE(o.enable_app_health_check);
  EXPECT_EQ(o.app_health_check_path, "/up");
  EXPECT_EQ(o.app_health_probe_interval_s, 2);
  EXPECT_EQ(o.app_health_probe_timeout_ms, 300);
  EXPECT_EQ(o.app_health_threshold, 4);
}

TEST(OptionsTest, SingleDashLongFlagsAsDaprdAcceptsThem) {
  Options o = ParseOk({"-app-id", "minijob", "-dapr-http-port=35100", "-enable-metrics=false",
                       "-app-ssl=true", "-components-path=components"});
  EXPECT_EQ(o.app_id, "minijob");
  EXPECT_EQ(o.dapr_http_port, 35100);
  EXPECT_FALSE(o.enable_metrics);
  EXPECT_THAT(o.resources_paths, ElementsAre("components"));
}

TEST(OptionsTest, BoolFlagsTakeExplicitValues) {
  EXPECT_EQ(ParseOk({"--enable-api-logging=false"}).enable_api_logging, false);
  EXPECT_EQ(ParseOk({"--enable-api-logging=true"}).enable_api_logging, true);
  EXPECT_TRUE(ParseOk({"--log-as-json=true"}).log_as_json);
  EXPECT_FALSE(ParseOk({"--enable-app-health-check=false"}).enable_app_health_check);
}

TEST(OptionsTest, LastOccurrenceOfAFlagWins) {
  EXPECT_EQ(ParseOk({"--app-id", "a", "--app-id", "b"}).app_id, "b");
}

TEST(OptionsTest, EmptyValueAfterEquals) {
  Options o = ParseOk({"--app-id=", "--app-channel-address=", "--dapr-http-port", "1"});
  EXPECT_EQ(o.app_id, "");
  EXPECT_EQ(o.app_channel_address, "");
  EXPECT_EQ(o.dapr_http_port, 1);
  // daprd's --app-port is a string: empty means no app channel.
  EXPECT_EQ(ParseOk({"--app-port", "3000", "--app-port="}).app_port, 0);
}

TEST(OptionsTest, NegativeValuesAreValuesNotFlags) {
  EXPECT_EQ(ParseOk({"--app-max-concurrency", "-1"}).app_max_concurrency, -1);
}

TEST(OptionsTest, DeprecatedSizeFlagsUseTheirUnits) {
  Outcome run = Parse({"--dapr-http-max-request-size", "16", "--dapr-http-read-buffer-size", "64"});
  ASSERT_TRUE(run.result.options.has_value()) << run.err;
  EXPECT_EQ(run.result.options->max_body_size, 16u << 20);
  EXPECT_EQ(run.result.options->read_buffer_size, 64u << 10);
  EXPECT_THAT(run.err, HasSubstr("--dapr-http-max-request-size is deprecated"));
  EXPECT_THAT(run.err, HasSubstr("--dapr-http-read-buffer-size is deprecated"));
}

TEST(OptionsTest, DaprRunFlagsAreAcceptedAndNamedAsIgnored) {
  Outcome run = Parse({"--app-id",
                       "svc",
                       "--placement-host-address",
                       "localhost:50005",
                       "--scheduler-host-address=",
                       "--enable-mtls",
                       "--sentry-address",
                       "localhost:50001",
                       "--control-plane-address",
                       "x:1",
                       "--enable-profiling",
                       "--profile-port",
                       "7777",
                       "--app-ssl",
                       "--unix-domain-socket",
                       "/tmp",
                       "--dapr-internal-grpc-listen-address",
                       "127.0.0.1",
                       "--dapr-public-listen-address",
                       "127.0.0.1",
                       "--allowed-origins",
                       "*",
                       "--disable-init-endpoints",
                       "config",
                       "--dapr-block-shutdown-duration",
                       "5s",
                       "--log-file",
                       "/tmp/x.log",
                       "--app-binding-options-timeout",
                       "3s",
                       "--hot-reload-reconcile-interval",
                       "0",
                       "--wait",
                       "--build-info"});
  ASSERT_EQ(run.result.exit_code, 0) << run.err;
  ASSERT_TRUE(run.result.options.has_value());
  EXPECT_EQ(run.result.options->app_id, "svc");
  // Service invocation acts on this one: parsed, not named as ignored.
  EXPECT_EQ(run.result.options->dapr_internal_grpc_listen_address, "127.0.0.1");
  EXPECT_THAT(run.err, Not(HasSubstr("flag --dapr-internal-grpc-listen-address is accepted")));
  for (const char* flag :
       {"--placement-host-address", "--scheduler-host-address", "--enable-mtls", "--sentry-address",
        "--control-plane-address", "--enable-profiling", "--profile-port", "--app-ssl",
        "--unix-domain-socket", "--dapr-public-listen-address", "--allowed-origins",
        "--disable-init-endpoints", "--dapr-block-shutdown-duration", "--log-file",
        "--app-binding-options-timeout", "--hot-reload-reconcile-interval", "--wait",
        "--build-info"}) {
    EXPECT_THAT(run.err, HasSubstr(std::string("flag ") + flag + " is accepted")) << flag;
  }
}

TEST(OptionsTest, NoWarningWithoutIgnoredFlags) {
  Outcome run = Parse({"--app-id", "svc"});
  EXPECT_THAT(run.err, Not(HasSubstr("ignored")));
}

TEST(OptionsTest, EnvironmentIsRead) {
  setenv("DAPR_API_TOKEN", "secret", 1);
  setenv("APP_API_TOKEN", "app-secret", 1);
  setenv("NAMESPACE", "prod", 1);
  Options o = ParseOk({});
  unsetenv("DAPR_API_TOKEN");
  unsetenv("APP_API_TOKEN");
  unsetenv("NAMESPACE");
  EXPECT_EQ(o.api_token, "secret");
  EXPECT_EQ(o.app_api_token, "app-secret");
  EXPECT_EQ(o.namespace_, "prod");
  EXPECT_EQ(ParseOk({}).api_token, "");
}

TEST(OptionsTest, VersionPrintsAndExitsZero) {
  Outcome run = Parse({"--version"});
  EXPECT_EQ(run.result.exit_code, 0);
  EXPECT_FALSE(run.result.options.has_value());
  EXPECT_EQ(run.out, std::string("remorad ") + REMORA_VERSION + "\n");
}

TEST(OptionsTest, HelpListsFlagsAndExitsZero) {
  Outcome run = Parse({"--help"});
  EXPECT_EQ(run.result.exit_code, 0);
  EXPECT_FALSE(run.result.options.has_value());
  for (const char* flag : {"--app-id", "--dapr-http-port", "--resources-path", "--max-body-size",
                           "--placement-host-address"}) {
    EXPECT_THAT(run.out, HasSubstr(flag));
  }
}

TEST(OptionsTest, BadInputIsOneErrorLineNamingTheFlag) {
  ExpectError({"--no-such-flag"}, "--no-such-flag");
  ExpectError({"-no-such-flag"}, "-no-such-flag");
  ExpectError({"--app-id"}, "--app-id");
  ExpectError({"--dapr-http-port", "abc"}, "--dapr-http-port");
  ExpectError({"--dapr-http-port", "70000"}, "--dapr-http-port");
  ExpectError({"--dapr-grpc-port", "-1"}, "--dapr-grpc-port");
  ExpectError({"--app-port", "65536"}, "--app-port");
  ExpectError({"--metrics-port", "99999"}, "--metrics-port");
  ExpectError({"--max-body-size", "4Qi"}, "--max-body-size");
  ExpectError({"--read-buffer-size", "lots"}, "--read-buffer-size");
  ExpectError({"--log-level", "loud"}, "--log-level");
  ExpectError({"--app-protocol", "ftp"}, "--app-protocol");
  ExpectError({"--mode", "cloud"}, "--mode");
  ExpectError({"--enable-api-logging=maybe"}, "--enable-api-logging");
  ExpectError({"--dapr-listen-addresses", ","}, "--dapr-listen-addresses");
  ExpectError({"--app-health-threshold", "0"}, "--app-health-threshold");
  ExpectError({"--app-id", "x", "stray"}, "stray");
}

TEST(ParseQuantityTest, Valid) {
  EXPECT_EQ(ParseQuantity("4Mi"), 4u << 20);
  EXPECT_EQ(ParseQuantity("512Ki"), 512u << 10);
  EXPECT_EQ(ParseQuantity("1Gi"), uint64_t{1} << 30);
  EXPECT_EQ(ParseQuantity("1G"), 1'000'000'000u);
  EXPECT_EQ(ParseQuantity("2k"), 2000u);
  EXPECT_EQ(ParseQuantity("1048576"), 1048576u);
  EXPECT_EQ(ParseQuantity("0"), 0u);
  EXPECT_EQ(ParseQuantity("1.5Mi"), 1572864u);
  EXPECT_EQ(ParseQuantity("0.5Ki"), 512u);
  EXPECT_EQ(ParseQuantity("1.0001"), 2u);  // fractions of a byte round up
}

TEST(ParseQuantityTest, Invalid) {
  for (const char* text : {"", "Mi", "4Qi", "4mi", "-4Mi", "4 Mi", "1.2.3", ".", "4MiB",
                           "99999999999999999999", "16Ei"}) {
    EXPECT_EQ(ParseQuantity(text), std::nullopt) << text;
  }
}

}  // namespace
}  // namespace remora::runtime
