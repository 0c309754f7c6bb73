// Memory for tests of zero-copy paths: anonymous mappings, and reproducible pseudo-random contents.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include "common/mapped_memory.h"

namespace mooncake::test {

// Stands for an inference engine's host KV pool.
using MappedBuffer = MappedMemory;

// Fills [p, p + n) with bytes determined by `seed`.
inline void FillRandom(char* p, size_t n, uint64_t seed) {
  std::mt19937_64 random(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = random();
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(random());
}

// `size` bytes derived from `key`: any reader can check that a value belongs to its key.
inline std::string BytesFor(const std::string& key, size_t size) {
  std::string value(size, '\0');
  FillRandom(value.data(), size, std::hash<std::string>()(key));
  return value;
}

}  // namespace mooncake::test
