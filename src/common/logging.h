// The one way to log: spdlog, leveled and timestamped, to stderr.
//
// Code logs with spdlog's free functions (spdlog::info, spdlog::debug, ...). Hot data paths do not
// log per request; they count in metrics instead.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "spdlog/spdlog.h"  // IWYU pragma: export

namespace mooncake {

// Routes the default logger to stderr with timestamps at `level` (trace, debug, info, warn, error,
// off). Returns INVALID_PARAMS for an unknown level name. Safe to call more than once.
absl::Status InitLogging(std::string_view level);

// Writes the default logger to the file at `path` too (appended; created if missing). Call after
// InitLogging. INVALID_PARAMS when the file cannot be opened.
absl::Status AddLogFile(const std::string& path);

}  // namespace mooncake
