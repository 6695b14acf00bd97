#pragma once

// Structured logging to stderr: text or JSON lines (--log-as-json), filtered by --log-level.
// Cheap when a level is off: the arguments are not formatted.

#include <string_view>

#include "remora/components/common/strings.h"

namespace remora::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kFatal = 4 };

void Configure(Level level, bool as_json, std::string_view app_id);
bool ParseLevel(std::string_view text, Level* level);
bool Enabled(Level level);
void Write(Level level, std::string_view message);

template <typename... Args>
void Debug(const Args&... args) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, remora::StrCat(args...));
}
template <typename... Args>
void Info(const Args&... args) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, remora::StrCat(args...));
}
template <typename... Args>
void Warn(const Args&... args) {
  if (Enabled(Level::kWarn)) Write(Level::kWarn, remora::StrCat(args...));
}
template <typename... Args>
void Error(const Args&... args) {
  if (Enabled(Level::kError)) Write(Level::kError, remora::StrCat(args...));
}

}  // namespace remora::log
