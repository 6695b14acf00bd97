#include "remora/runtime/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <string>

#include "nlohmann/json.hpp"

namespace remora::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
bool g_json = false;
std::string g_app_id;

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warning";
    case Level::kError:
      return "error";
    case Level::kFatal:
      return "fatal";
  }
  return "info";
}

std::string Now() {
  auto now = std::chrono::system_clock::now();
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  std::tm tm;
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06ldZ", static_cast<long>(micros));
  return buf;
}

}  // namespace

void Configure(Level level, bool as_json, std::string_view app_id) {
  g_level.store(static_cast<int>(level));
  g_json = as_json;
  g_app_id = std::string(app_id);
}

bool ParseLevel(std::string_view text, Level* level) {
  if (text == "debug")
    *level = Level::kDebug;
  else if (text == "info")
    *level = Level::kInfo;
  else if (text == "warn" || text == "warning")
    *level = Level::kWarn;
  else if (text == "error")
    *level = Level::kError;
  else if (text == "fatal")
    *level = Level::kFatal;
  else
    return false;
  return true;
}

bool Enabled(Level level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void Write(Level level, std::string_view message) {
  std::string line;
  if (g_json) {
    nlohmann::json j = {{"time", Now()},
                        {"level", LevelName(level)},
                        {"msg", message},
                        {"scope", "remorad"},
                        {"app_id", g_app_id}};
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = StrCat("time=\"", Now(), "\" level=", LevelName(level), " msg=\"", message, "\"");
    if (!g_app_id.empty()) StrAppend(&line, " app_id=", g_app_id);
  }
  line.push_back('\n');
  // One write(2) per line keeps lines whole when several threads log at once.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace remora::log
