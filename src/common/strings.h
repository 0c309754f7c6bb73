// String helpers shared by every module.
//
// Debian builds abseil with its own absl::string_view (not an alias of std::string_view), so our
// interfaces use std::string_view and convert at calls into abseil. Messages are built with
// fmt::format (header-only, the formatter spdlog uses too).
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"
#include "fmt/format.h"  // IWYU pragma: export

namespace mooncake {

inline absl::string_view AsAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}
inline std::string_view AsStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace mooncake

// So that absl::string_view (e.g. absl::Status::message()) formats like std::string_view.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(std::string_view(s.data(), s.size()), ctx);
  }
};
