#include "remora/components/common/metadata.h"

#include <charconv>
#include <cstdint>
#include <limits>
#include <utility>

#include "remora/components/common/strings.h"

namespace remora::components {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

absl::Status BadValue(std::string_view key, std::string_view value, std::string_view expected) {
  return MakeStatus(absl::StatusCode::kInvalidArgument,
                    StrCat("metadata \"", key, "\": \"", value, "\" is not ", expected));
}

// Parses an optionally signed decimal integer covering all of `text`.
std::optional<int64_t> ParseInt64(std::string_view text) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

constexpr uint64_t kNanosPerMs = 1'000'000;

// Unit lengths in nanoseconds, as Go's time package spells them ("µs" in both Unicode forms).
std::optional<uint64_t> UnitNanos(std::string_view unit) {
  if (unit == "ns") return 1;
  if (unit == "us" || unit == "\u00b5s" || unit == "\u03bcs") return 1'000;
  if (unit == "ms") return kNanosPerMs;
  if (unit == "s") return 1'000'000'000;
  if (unit == "m") return 60ull * 1'000'000'000;
  if (unit == "h") return 3600ull * 1'000'000'000;
  return std::nullopt;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

Metadata::Metadata(std::map<std::string, std::string> values) : values_(std::move(values)) {}

const std::string* Metadata::Find(std::string_view key) const {
  for (const auto& [name, value] : values_) {
    if (EqualsIgnoreCase(name, key)) {
      used_.insert(ToLower(key));
      return &value;
    }
  }
  return nullptr;
}

std::optional<std::string> Metadata::Get(std::string_view key) const {
  const std::string* value = Find(key);
  if (value == nullptr) return std::nullopt;
  return *value;
}

std::string Metadata::GetString(std::string_view key, std::string_view fallback) const {
  const std::string* value = Find(key);
  return value != nullptr ? *value : std::string(fallback);
}

std::optional<std::string> Metadata::GetAny(std::initializer_list<std::string_view> keys) const {
  for (std::string_view key : keys) {
    if (const std::string* value = Find(key)) return *value;
  }
  return std::nullopt;
}

// An empty value reads as absent in the typed readers: `value: ""` (or a bare `value:`) in a YAML
// file is how users leave a setting at its default, and Dapr's decoders treat it the same way.
absl::StatusOr<bool> Metadata::GetBool(std::string_view key, bool fallback) const {
  const std::string* raw = Find(key);
  if (raw == nullptr) return fallback;
  std::string value = ToLower(Trim(*raw));
  if (value.empty()) return fallback;
  // Go's strconv.ParseBool plus the yes/no/on/off spellings of Dapr's utils.IsTruthy.
  if (value == "true" || value == "t" || value == "1" || value == "yes" || value == "y" ||
      value == "on") {
    return true;
  }
  if (value == "false" || value == "f" || value == "0" || value == "no" || value == "n" ||
      value == "off") {
    return false;
  }
  return BadValue(key, *raw, "a boolean");
}

absl::StatusOr<int64_t> Metadata::GetInt(std::string_view key, int64_t fallback) const {
  const std::string* raw = Find(key);
  if (raw == nullptr) return fallback;
  std::string_view value = Trim(*raw);
  if (value.empty()) return fallback;
  std::optional<int64_t> parsed = ParseInt64(value);
  if (!parsed) return BadValue(key, *raw, "an integer");
  return *parsed;
}

absl::StatusOr<std::chrono::milliseconds> Metadata::GetDuration(
    std::string_view key, std::chrono::milliseconds fallback,
    std::chrono::milliseconds bare_unit) const {
  const std::string* raw = Find(key);
  if (raw == nullptr) return fallback;
  std::string_view value = Trim(*raw);
  if (value.empty()) return fallback;
  if (std::optional<int64_t> bare = ParseInt64(value)) {
    if (bare_unit.count() != 0 &&
        (*bare > std::numeric_limits<int64_t>::max() / bare_unit.count() ||
         *bare < std::numeric_limits<int64_t>::min() / bare_unit.count())) {
      return BadValue(key, *raw, "a duration in range");
    }
    return *bare * bare_unit;
  }
  absl::StatusOr<std::chrono::milliseconds> parsed = ParseGoDuration(value);
  if (!parsed.ok()) {
    return BadValue(key, *raw, "a duration (e.g. \"1m30s\", \"250ms\") or an integer");
  }
  return *parsed;
}

void Metadata::MarkUsed(std::string_view key) const { used_.insert(ToLower(key)); }

std::vector<std::string> Metadata::Unused() const {
  std::vector<std::string> unused;
  for (const auto& [name, value] : values_) {
    if (!used_.contains(ToLower(name))) unused.push_back(name);
  }
  return unused;
}

// Follows Go's time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?unit)+, or "0". The sum is kept in
// nanoseconds, as Go does, so the range and rounding match (sub-millisecond parts truncate toward
// zero at the end, as std::chrono::duration_cast does).
absl::StatusOr<std::chrono::milliseconds> ParseGoDuration(std::string_view text) {
  auto invalid = [&] {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("invalid duration \"", text, "\""));
  };
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::milliseconds(0);
  if (s.empty()) return invalid();

  // Largest magnitude Go accepts: 1<<63 nanoseconds for a negative value, one less otherwise.
  const uint64_t limit = negative ? (uint64_t{1} << 63) : (uint64_t{1} << 63) - 1;
  uint64_t total = 0;
  while (!s.empty()) {
    if (!IsDigit(s.front()) && s.front() != '.') return invalid();
    // Integer part.
    uint64_t whole = 0;
    size_t digits = 0;
    bool overflow = false;
    while (!s.empty() && IsDigit(s.front())) {
      if (whole > (std::numeric_limits<uint64_t>::max() - 9) / 10) overflow = true;
      if (!overflow) whole = whole * 10 + static_cast<uint64_t>(s.front() - '0');
      s.remove_prefix(1);
      ++digits;
    }
    // Fraction: keep at most 19 significant digits, enough for nanosecond precision of any unit.
    uint64_t frac = 0;
    uint64_t scale = 1;
    size_t frac_digits = 0;
    if (!s.empty() && s.front() == '.') {
      s.remove_prefix(1);
      while (!s.empty() && IsDigit(s.front())) {
        if (scale <= std::numeric_limits<uint64_t>::max() / 10 / 10) {
          frac = frac * 10 + static_cast<uint64_t>(s.front() - '0');
          scale *= 10;
        }
        s.remove_prefix(1);
        ++frac_digits;
      }
    }
    if (digits == 0 && frac_digits == 0) return invalid();  // "." or ".s"
    if (overflow) return invalid();
    size_t unit_len = 0;
    while (unit_len < s.size() && !IsDigit(s[unit_len]) && s[unit_len] != '.') ++unit_len;
    if (unit_len == 0) return invalid();  // missing unit
    std::optional<uint64_t> unit = UnitNanos(s.substr(0, unit_len));
    if (!unit) return invalid();
    s.remove_prefix(unit_len);

    if (whole > limit / *unit) return invalid();
    uint64_t part = whole * *unit;
    if (frac > 0) {
      // frac/scale < 1, so frac * unit / scale < unit; long double keeps it exact enough for ns.
      part +=
          static_cast<uint64_t>(static_cast<long double>(frac) * static_cast<long double>(*unit) /
                                static_cast<long double>(scale));
    }
    if (part > limit || total > limit - part) return invalid();
    total += part;
  }
  // Truncate toward zero to whole milliseconds.
  int64_t millis = static_cast<int64_t>(total / kNanosPerMs);
  return std::chrono::milliseconds(negative ? -millis : millis);
}

}  // namespace remora::components
