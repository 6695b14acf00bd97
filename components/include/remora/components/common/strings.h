#pragma once

// String helpers that take std::string_view.
//
// Debian's abseil is built with ABSL_OPTION_USE_STD_STRING_VIEW=0: absl::string_view is its own
// type and absl::StrCat does not accept std::string_view. Project code uses std::string_view and
// these helpers; Sv() converts at the few places an absl API wants absl::string_view.

#include <charconv>
#include <concepts>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace remora {

inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }
inline absl::string_view Sv(const std::string& s) { return absl::string_view(s.data(), s.size()); }

namespace strings_internal {
inline void Append(std::string& out, std::string_view s) { out.append(s); }
inline void Append(std::string& out, absl::string_view s) { out.append(s.data(), s.size()); }
inline void Append(std::string& out, const char* s) { out.append(s); }
inline void Append(std::string& out, const std::string& s) { out.append(s); }
inline void Append(std::string& out, char c) { out.push_back(c); }
template <std::integral T>
requires(!std::same_as<T, char> && !std::same_as<T, bool>) void Append(std::string& out, T value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, end);
}
inline void Append(std::string& out, bool b) { out.append(b ? "true" : "false"); }
inline void Append(std::string& out, double value) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, end);
}
}  // namespace strings_internal

template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  (strings_internal::Append(out, args), ...);
  return out;
}

template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  (strings_internal::Append(*out, args), ...);
}

// absl status constructors taking std::string_view.
inline absl::Status MakeStatus(absl::StatusCode code, std::string_view message) {
  return absl::Status(code, Sv(message));
}
inline std::string_view MessageOf(const absl::Status& status) { return Sv(status.message()); }

}  // namespace remora
