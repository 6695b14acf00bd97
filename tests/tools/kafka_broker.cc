#include "tests/tools/kafka_broker.h"

#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <thread>

#include "remora/components/common/strings.h"

namespace remora::testing {
namespace {

using Clock = std::chrono::steady_clock;

size_t CountOccurrences(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

}  // namespace

std::string KafkaBrokerPath() {
  if (const char* env = ::getenv("REMORA_KAFKA_BROKER"); env != nullptr && *env != '\0') {
    return env;
  }
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / "remora_kafka_broker").string();
}

absl::StatusOr<std::unique_ptr<KafkaBroker>> KafkaBroker::Start(
    Options options, std::chrono::milliseconds ready_timeout) {
  std::vector<std::string> argv = {KafkaBrokerPath(), "--brokers", std::to_string(options.brokers)};
  for (const auto& [name, partitions] : options.topics) {
    argv.push_back("--topic");
    argv.push_back(StrCat(name, ":", partitions));
  }
  absl::StatusOr<std::unique_ptr<ChildProcess>> process = ChildProcess::Start(argv);
  if (!process.ok()) return process.status();
  std::unique_ptr<KafkaBroker> broker(new KafkaBroker());
  broker->process_ = std::move(*process);

  const Clock::time_point deadline = Clock::now() + ready_timeout;
  while (Clock::now() < deadline) {
    std::string output = broker->process_->Output();
    // The bootstrap list is the first line on stdout; only stderr (merged in) could precede it.
    for (size_t start = 0, eol; (eol = output.find('\n', start)) != std::string::npos;
         start = eol + 1) {
      std::string line = output.substr(start, eol - start);
      if (line.rfind("127.0.0.1:", 0) == 0) {
        broker->bootstrap_ = line;
        return broker;
      }
    }
    if (!broker->process_->Running()) {
      return MakeStatus(absl::StatusCode::kInternal,
                        StrCat("remora_kafka_broker exited during start-up:\n", output));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // poll interval, not a wait
  }
  return MakeStatus(
      absl::StatusCode::kDeadlineExceeded,
      StrCat("remora_kafka_broker printed no address in time:\n", broker->process_->Output()));
}

KafkaBroker::~KafkaBroker() = default;  // ChildProcess kills and reaps

bool KafkaBroker::Running() { return process_ != nullptr && process_->Running(); }

absl::Status KafkaBroker::Stop(std::chrono::milliseconds timeout) {
  if (!Running()) return absl::OkStatus();
  process_->Signal(SIGTERM);
  if (!process_->Wait(timeout)) {
    process_->Signal(SIGKILL);
    process_->Wait(std::chrono::seconds(10));
    return MakeStatus(absl::StatusCode::kDeadlineExceeded, "remora_kafka_broker ignored SIGTERM");
  }
  return absl::OkStatus();
}

absl::Status KafkaBroker::SetDown(bool down, std::chrono::milliseconds timeout) {
  if (!Running()) return MakeStatus(absl::StatusCode::kFailedPrecondition, "broker not running");
  ++toggles_;
  process_->Signal(down ? SIGUSR1 : SIGUSR2);
  const Clock::time_point deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    std::string output = process_->Output();
    if (CountOccurrences(output, "brokers down\n") + CountOccurrences(output, "brokers up\n") >=
        static_cast<size_t>(toggles_)) {
      return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // poll interval, not a wait
  }
  return MakeStatus(absl::StatusCode::kDeadlineExceeded, "remora_kafka_broker did not confirm");
}

std::string KafkaBroker::Output() const { return process_ ? process_->Output() : std::string(); }

}  // namespace remora::testing
