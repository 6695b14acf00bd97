#pragma once

// W3C Trace Context (https://www.w3.org/TR/trace-context/) as Dapr propagates it: `traceparent`
// and `tracestate` are read from a request, a fresh context is made when the request has none (or
// an invalid one), each outgoing call (publish, invocation) gets a child span id under the same
// trace id, and the context goes back to the caller and on to the callee.
//
//   traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
//                version-trace id (32 hex)-parent id (16 hex)-flags (2 hex, bit 0 = sampled)
//
// Validation follows the spec: lower-case hex only; version "ff" is invalid; version 00 is exactly
// 55 characters; a higher version may be longer when character 55 is '-' (its extra fields are
// dropped and the context is handled as version 00); an all-zero trace id or parent id is invalid.
// An invalid traceparent is treated as absent, and its tracestate is then ignored too.
//
// Cheap: the traceparent is kept as its 55 characters in place; a child rewrites 16 of them.
// Random ids come from a per-thread absl::BitGen. Value type, no shared state: thread-safe.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace remora::runtime::observability {

class TraceContext {
 public:
  static constexpr size_t kTraceparentSize = 55;
  static constexpr size_t kMaxTracestateSize = 512;  // longer tracestates are dropped

  // A valid context, or nullopt. `tracestate` is kept when it is at most kMaxTracestateSize
  // characters (it is otherwise passed on unchanged, not parsed).
  static std::optional<TraceContext> Parse(std::string_view traceparent,
                                           std::string_view tracestate = {});

  // A new root context: random trace id and span id, `sampled` flag, no tracestate.
  static TraceContext New(bool sampled = true);

  // The context for work done on behalf of a request that carried these headers (either may be
  // empty): a child of the incoming context when it is valid, else a new root.
  static TraceContext ForRequest(std::string_view traceparent, std::string_view tracestate);

  // Same trace id, flags and tracestate; a new random span id (the id of our outgoing call).
  TraceContext Child() const;

  std::string_view traceparent() const { return {text_.data(), text_.size()}; }
  std::string_view trace_id() const { return {text_.data() + 3, 32}; }
  std::string_view span_id() const { return {text_.data() + 36, 16}; }
  uint8_t flags() const;
  bool sampled() const { return (flags() & 0x01) != 0; }
  const std::string& tracestate() const { return tracestate_; }

 private:
  TraceContext() = default;
  std::array<char, kTraceparentSize> text_{};
  std::string tracestate_;
};

}  // namespace remora::runtime::observability
