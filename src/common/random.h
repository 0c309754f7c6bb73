// Random bytes for names and ids (client ids, shared-memory socket names), from the kernel's
// getrandom(2): no file to open, so they work in a bare chroot or container without /proc or /dev.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mooncake {

void RandomBytes(void* out, size_t size);

inline uint64_t RandomU64() {
  uint64_t value = 0;
  RandomBytes(&value, sizeof(value));
  return value;
}

}  // namespace mooncake
