#include "common/random.h"

#include <sys/random.h>

#include <cerrno>

#include "absl/random/random.h"

namespace mooncake {

void RandomBytes(void* out, size_t size) {
  auto* bytes = static_cast<uint8_t*>(out);
  size_t got = 0;
  while (got < size) {
    const ssize_t n = getrandom(bytes + got, size - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (errno != EINTR) {
      // No getrandom (Linux before 3.17): abseil's generator, seeded from the OS.
      absl::BitGen gen;
      for (; got < size; ++got) bytes[got] = absl::Uniform<uint8_t>(gen);
    }
  }
}

}  // namespace mooncake
