// libFuzzer target: segment descriptors as the metadata service or a peer's DESCRIBE hands them
// over. A descriptor that decodes must encode and decode to the same thing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/segment_descriptor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using mooncake::engine::DecodeDescriptor;
  using mooncake::engine::EncodeDescriptor;
  auto decoded = DecodeDescriptor(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!decoded.ok()) return 0;
  const std::string encoded = EncodeDescriptor(*decoded);
  auto again = DecodeDescriptor(encoded);
  if (!again.ok() || EncodeDescriptor(*again) != encoded) std::abort();
  return 0;
}
