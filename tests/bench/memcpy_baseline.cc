// Single-thread memcpy bandwidth for a block size, over buffers much larger than the caches: the
// limit scripts/bench-transfer.sh compares the shared-memory transport with.
//   memcpy_baseline BLOCK_BYTES [SECONDS]
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  const size_t block = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (1u << 20);
  const double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;
  const size_t span = size_t{1} << 30;
  if (block == 0 || block > span) return 2;
  auto* src = static_cast<char*>(
      mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  auto* dst = static_cast<char*>(
      mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (src == MAP_FAILED || dst == MAP_FAILED) return 1;
  std::memset(src, 1, span);
  std::memset(dst, 2, span);
  const size_t slots = span / block;
  size_t copied = 0;
  size_t slot = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (int i = 0; i < 64; ++i, ++slot) {
      std::memcpy(dst + (slot % slots) * block, src + ((slot * 7) % slots) * block, block);
      copied += block;
    }
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  std::printf("{\"bench\": \"memcpy\", \"block_size\": %zu, \"gb_per_s\": %.3f}\n", block,
              copied / elapsed / 1e9);
  return 0;
}
