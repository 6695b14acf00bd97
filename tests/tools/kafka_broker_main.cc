// remora_kafka_broker: a Kafka-protocol test broker in its own process, built on librdkafka's
// mock cluster (ARCHITECTURE §7). Tests start it through tests/tools/kafka_broker.h.
//
//   remora_kafka_broker [--brokers N] [--topic NAME[:PARTITIONS]]...
//
// The first line on stdout is the bootstrap address list ("127.0.0.1:PORT,..."). Topics named with
// --topic exist from the start (default 1 partition); any other topic is created on first use with
// the mock's default of 4 partitions (producers and consumers both ask for auto-creation).
// Signals while it runs:
//   SIGTERM, SIGINT  exit 0
//   SIGUSR1          every broker goes down (connections are closed and refused)
//   SIGUSR2          every broker comes back up
// Everything lives in memory: a restarted broker starts empty, on new ports.

#include <librdkafka/rdkafka.h>
// rdkafka_mock.h must follow rdkafka.h.
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

[[noreturn]] void Usage(const char* message) {
  std::fprintf(stderr,
               "remora_kafka_broker: %s\n"
               "usage: remora_kafka_broker [--brokers N] [--topic NAME[:PARTITIONS]]...\n",
               message);
  std::exit(2);
}

int ParsePositive(const std::string& text, const char* what) {
  char* end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < 1 || value > 10000) {
    Usage((std::string("bad ") + what + ": " + text).c_str());
  }
  return static_cast<int>(value);
}

}  // namespace

int main(int argc, char** argv) {
  int broker_count = 1;
  std::vector<std::pair<std::string, int>> topics;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (size_t eq = arg.find('='); eq != std::string::npos) return arg.substr(eq + 1);
      if (i + 1 >= argc) Usage(("missing value for " + arg).c_str());
      return argv[++i];
    };
    if (arg.rfind("--brokers", 0) == 0) {
      broker_count = ParsePositive(value(), "--brokers");
    } else if (arg.rfind("--topic", 0) == 0) {
      std::string spec = value();
      int partitions = 1;
      if (size_t colon = spec.rfind(':'); colon != std::string::npos) {
        partitions = ParsePositive(spec.substr(colon + 1), "partition count");
        spec.resize(colon);
      }
      if (spec.empty()) Usage("empty topic name");
      topics.emplace_back(spec, partitions);
    } else {
      Usage(("unknown argument " + arg).c_str());
    }
  }

  // Block the signals before librdkafka starts its threads, so that they inherit the mask and
  // sigwait below is the only receiver.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The mock cluster needs a client handle to live in; a producer that never produces will do.
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) != RD_KAFKA_CONF_OK) {
    std::fprintf(stderr, "remora_kafka_broker: %s\n", err);
    return 1;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    std::fprintf(stderr, "remora_kafka_broker: rd_kafka_new: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, broker_count);
  if (cluster == nullptr) {
    std::fprintf(stderr, "remora_kafka_broker: could not create the mock cluster\n");
    return 1;
  }
  for (const auto& [name, partitions] : topics) {
    rd_kafka_resp_err_t e =
        rd_kafka_mock_topic_create(cluster, name.c_str(), partitions, broker_count < 3 ? 1 : 3);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "remora_kafka_broker: topic %s: %s\n", name.c_str(),
                   rd_kafka_err2str(e));
      return 1;
    }
  }

  std::printf("%s\n", rd_kafka_mock_cluster_bootstraps(cluster));
  std::fflush(stdout);

  for (;;) {
    int signo = 0;
    if (sigwait(&signals, &signo) != 0) continue;
    if (signo == SIGUSR1 || signo == SIGUSR2) {
      for (int32_t id = 1; id <= broker_count; ++id) {
        if (signo == SIGUSR1) {
          rd_kafka_mock_broker_set_down(cluster, id);
        } else {
          rd_kafka_mock_broker_set_up(cluster, id);
        }
      }
      std::printf("brokers %s\n", signo == SIGUSR1 ? "down" : "up");
      std::fflush(stdout);
      continue;
    }
    break;
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  return 0;
}
