// What client.cc (the puts and the rest) and client_reads.cc (the gets) share. Not part of the
// client's API.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "client/client.h"
#include "common/error_code.h"
#include "fmt/format.h"

namespace mooncake::client::internal {

inline uint64_t TotalSize(const std::vector<Slice>& parts) {
  uint64_t total = 0;
  for (const Slice& part : parts) total += part.size;
  return total;
}

// Every key of a batch fails alike: the lists it came with do not match the keys.
template <typename T>
std::vector<T> CountMismatch(size_t keys, size_t got, const char* what) {
  return std::vector<T>(keys, MakeError(ErrorCode::INVALID_PARAMS,
                                        fmt::format("{} keys but {} {}", keys, got, what)));
}

inline std::vector<std::vector<Slice>> OnePartEach(absl::Span<const Slice> slices) {
  std::vector<std::vector<Slice>> parts;
  parts.reserve(slices.size());
  for (const Slice& slice : slices) parts.push_back({slice});
  return parts;
}

}  // namespace mooncake::client::internal
