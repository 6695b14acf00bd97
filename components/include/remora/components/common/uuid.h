#pragma once

#include <array>
#include <string>

namespace remora {

// A random RFC 4122 version-4 UUID in its 36-character text form. Unique, not secret: the
// generator is absl::BitGen, seeded from the OS once per thread.
using UuidText = std::array<char, 36>;
void WriteUuid(UuidText& out);
std::string NewUuid();

}  // namespace remora
