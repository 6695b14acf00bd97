#include "remora/components/common/uuid.h"

#include <cstdint>

#include "absl/random/random.h"

namespace remora {

void WriteUuid(UuidText& out) {
  thread_local absl::BitGen gen;
  uint64_t hi = absl::Uniform<uint64_t>(gen);
  uint64_t lo = absl::Uniform<uint64_t>(gen);
  hi = (hi & ~uint64_t{0xF000}) | uint64_t{0x4000};              // version 4
  lo = (lo & ~(uint64_t{0xC0} << 56)) | (uint64_t{0x80} << 56);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  size_t pos = 0;
  auto put = [&](uint64_t word, int first_byte, int last_byte) {
    for (int b = first_byte; b <= last_byte; ++b) {
      uint8_t byte = static_cast<uint8_t>(word >> (56 - 8 * b));
      out[pos++] = kHex[byte >> 4];
      out[pos++] = kHex[byte & 0xF];
    }
  };
  put(hi, 0, 3);
  out[pos++] = '-';
  put(hi, 4, 5);
  out[pos++] = '-';
  put(hi, 6, 7);
  out[pos++] = '-';
  put(lo, 0, 1);
  out[pos++] = '-';
  put(lo, 2, 7);
}

std::string NewUuid() {
  UuidText text;
  WriteUuid(text);
  return std::string(text.data(), text.size());
}

}  // namespace remora
