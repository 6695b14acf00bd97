#include "observability/trace.h"

#include <cstring>

#include "absl/random/random.h"

namespace remora::runtime::observability {
namespace {

constexpr char kHex[] = "0123456789abcdef";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper-case hex is invalid in traceparent
}

bool AllHex(std::string_view s) {
  for (char c : s) {
    if (HexValue(c) < 0) return false;
  }
  return true;
}

bool AllZero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

// Writes `n` random hex digits, never all zero (an all-zero id is invalid).
void WriteRandomHex(char* out, size_t n) {
  thread_local absl::BitGen gen;
  do {
    for (size_t i = 0; i < n; i += 16) {
      uint64_t bits = absl::Uniform<uint64_t>(gen);
      for (size_t j = i; j < n && j < i + 16; ++j) {
        out[j] = kHex[bits & 0xf];
        bits >>= 4;
      }
    }
  } while (AllZero(std::string_view(out, n)));
}

}  // namespace

std::optional<TraceContext> TraceContext::Parse(std::string_view traceparent,
                                                std::string_view tracestate) {
  // Surrounding spaces are tolerated by HTTP header parsing, not by the format.
  while (!traceparent.empty() && (traceparent.front() == ' ' || traceparent.front() == '\t')) {
    traceparent.remove_prefix(1);
  }
  while (!traceparent.empty() && (traceparent.back() == ' ' || traceparent.back() == '\t')) {
    traceparent.remove_suffix(1);
  }
  if (traceparent.size() < kTraceparentSize) return std::nullopt;
  std::string_view version = traceparent.substr(0, 2);
  if (!AllHex(version) || version == "ff") return std::nullopt;
  if (version == "00") {
    if (traceparent.size() != kTraceparentSize) return std::nullopt;
  } else if (traceparent.size() > kTraceparentSize && traceparent[kTraceparentSize] != '-') {
    // A future version may append fields, always after a '-'.
    return std::nullopt;
  }
  if (traceparent[2] != '-' || traceparent[35] != '-' || traceparent[52] != '-') {
    return std::nullopt;
  }
  std::string_view trace_id = traceparent.substr(3, 32);
  std::string_view parent_id = traceparent.substr(36, 16);
  std::string_view flags = traceparent.substr(53, 2);
  if (!AllHex(trace_id) || !AllHex(parent_id) || !AllHex(flags)) return std::nullopt;
  if (AllZero(trace_id) || AllZero(parent_id)) return std::nullopt;

  TraceContext context;
  std::memcpy(context.text_.data(), traceparent.data(), kTraceparentSize);
  if (version != "00") {
    // We speak version 00: re-emit as such, keeping only the flag bit 00 defines (sampled).
    context.text_[0] = '0';
    context.text_[1] = '0';
    int sampled = HexValue(flags[1]) & 0x1;
    context.text_[53] = '0';
    context.text_[54] = kHex[sampled];
  }
  if (tracestate.size() <= kMaxTracestateSize) context.tracestate_ = std::string(tracestate);
  return context;
}

TraceContext TraceContext::New(bool sampled) {
  TraceContext context;
  char* t = context.text_.data();
  t[0] = '0';
  t[1] = '0';
  t[2] = '-';
  WriteRandomHex(t + 3, 32);
  t[35] = '-';
  WriteRandomHex(t + 36, 16);
  t[52] = '-';
  t[53] = '0';
  t[54] = sampled ? '1' : '0';
  return context;
}

TraceContext TraceContext::ForRequest(std::string_view traceparent, std::string_view tracestate) {
  if (!traceparent.empty()) {
    if (std::optional<TraceContext> incoming = Parse(traceparent, tracestate)) {
      return incoming->Child();
    }
  }
  return New();
}

TraceContext TraceContext::Child() const {
  TraceContext child = *this;
  WriteRandomHex(child.text_.data() + 36, 16);
  return child;
}

uint8_t TraceContext::flags() const {
  return static_cast<uint8_t>(HexValue(text_[53]) * 16 + HexValue(text_[54]));
}

}  // namespace remora::runtime::observability
