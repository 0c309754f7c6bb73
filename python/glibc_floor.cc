// Keeps the extension's glibc floor (the manylinux tag scripts/wheel.sh gives the wheel) at 2.34,
// the C library of RHEL 9. libstdc++, linked in, built against Debian 12's glibc, calls
// arc4random (glibc 2.36) from std::random_device, which cpp-httplib's client uses for multipart
// boundaries (never sent by us). Defined here, hidden, the reference binds to this and not to
// glibc.
#include <cstdint>

#include "common/random.h"

extern "C" __attribute__((visibility("hidden"))) uint32_t arc4random(void) {
  uint32_t value = 0;
  mooncake::RandomBytes(&value, sizeof(value));
  return value;
}
