// Byte sizes and durations as users write them in flags and config files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mooncake {

// Parses "4096", "512MB", "16 MB", "4gb", "4GiB", "1.5g". Units are case-insensitive and binary,
// as in the original Mooncake: K/KB/KiB = 1024, M/MB/MiB = 1024^2, G = 1024^3, T = 1024^4; B or no
// unit = bytes. INVALID_PARAMS for anything else (negative, percentages, unknown units, overflow).
absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);

// "16 MiB", "4 GiB", "1000 B": the largest binary unit that divides `bytes`, for messages.
std::string FormatByteSize(uint64_t bytes);

// Parses a duration: a bare non-negative number is in `default_unit` ("10000" with milliseconds);
// otherwise a number with a unit ("10s", "1.5h", "300ms", "2m"). INVALID_PARAMS for negative
// values, unknown units or junk.
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text, absl::Duration default_unit);

}  // namespace mooncake
