#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace remora::components {

// Component metadata as it reaches a factory: every `spec.metadata` item of the YAML with
// secretKeyRef/envRef already resolved to a plain string.
//
// Reading a key marks it as used. After a component is created the runtime asks Unused() and logs
// every key the component did not read, naming the file and the key, so a typo in a YAML file is
// visible instead of silently ignored. Keys are matched case-insensitively, as Dapr's metadata
// decoder does.
class Metadata {
 public:
  Metadata() = default;
  explicit Metadata(std::map<std::string, std::string> values);

  // Raw lookup. nullopt when the key is absent.
  std::optional<std::string> Get(std::string_view key) const;
  std::string GetString(std::string_view key, std::string_view fallback = "") const;
  // The first present key of several aliases (e.g. "redisMaxRetries", "maxRetries").
  std::optional<std::string> GetAny(std::initializer_list<std::string_view> keys) const;

  // Typed readers. A present but malformed value is an error naming the key.
  absl::StatusOr<bool> GetBool(std::string_view key, bool fallback) const;
  absl::StatusOr<int64_t> GetInt(std::string_view key, int64_t fallback) const;
  // Go duration ("1m30s", "250ms") or a bare integer, which Dapr reads as `bare_unit`.
  absl::StatusOr<std::chrono::milliseconds> GetDuration(
      std::string_view key, std::chrono::milliseconds fallback,
      std::chrono::milliseconds bare_unit = std::chrono::milliseconds(1)) const;

  // Marks keys the runtime itself consumes (keyPrefix, scoping, ...) so they are not reported.
  void MarkUsed(std::string_view key) const;
  std::vector<std::string> Unused() const;
  bool empty() const { return values_.empty(); }
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  const std::string* Find(std::string_view key) const;

  std::map<std::string, std::string> values_;  // original spelling of each key
  mutable std::set<std::string> used_;         // lower-cased
};

// Parses a Go duration string ("300ms", "1.5s", "2h45m", "-1s"). A bare number is rejected here;
// callers decide what unit it means.
absl::StatusOr<std::chrono::milliseconds> ParseGoDuration(std::string_view text);

}  // namespace remora::components
