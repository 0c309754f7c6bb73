#include "common/units.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "common/error_code.h"
#include "common/strings.h"

namespace mooncake {

absl::StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  std::string_view s = AsStd(absl::StripAsciiWhitespace(AsAbsl(text)));
  size_t digits_end = 0;
  while (digits_end < s.size() && (absl::ascii_isdigit(s[digits_end]) || s[digits_end] == '.')) {
    ++digits_end;
  }
  std::string_view number = s.substr(0, digits_end);
  std::string unit =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(AsAbsl(s.substr(digits_end))));
  auto invalid = [&] {
    return MakeError(
        ErrorCode::INVALID_PARAMS,
        fmt::format(
            "invalid size '{}' (expected a byte count, optionally with a unit: 512MB, 4GiB)",
            text));
  };
  if (number.empty()) return invalid();

  uint64_t multiplier = 0;
  if (unit.empty() || unit == "b") {
    multiplier = 1;
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    multiplier = uint64_t{1} << 10;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    multiplier = uint64_t{1} << 20;
  } else if (unit == "g" || unit == "gb" || unit == "gib") {
    multiplier = uint64_t{1} << 30;
  } else if (unit == "t" || unit == "tb" || unit == "tib") {
    multiplier = uint64_t{1} << 40;
  } else {
    return invalid();
  }

  if (number.find('.') == std::string_view::npos) {
    uint64_t value = 0;
    if (!absl::SimpleAtoi(AsAbsl(number), &value) || value > UINT64_MAX / multiplier)
      return invalid();
    return value * multiplier;
  }
  double value = 0;
  if (!absl::SimpleAtod(AsAbsl(number), &value) || !std::isfinite(value) || value < 0)
    return invalid();
  const double bytes = std::floor(value * static_cast<double>(multiplier));
  if (bytes >= 18446744073709551616.0) return invalid();
  return static_cast<uint64_t>(bytes);
}

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text, absl::Duration default_unit) {
  std::string_view s = AsStd(absl::StripAsciiWhitespace(AsAbsl(text)));
  auto invalid = [&] {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("invalid duration '{}' (expected a non-negative number, "
                                 "optionally with a unit: 500ms, 10s, 5m, 1h)",
                                 text));
  };
  if (s.empty() || s[0] == '-' || s[0] == '+') return invalid();
  double number = 0;
  if (absl::SimpleAtod(AsAbsl(s), &number)) {
    if (!std::isfinite(number) || number < 0) return invalid();
    return default_unit * number;
  }
  absl::Duration parsed;
  if (!absl::ParseDuration(AsAbsl(s), &parsed) || parsed < absl::ZeroDuration() ||
      parsed == absl::InfiniteDuration()) {
    return invalid();
  }
  return parsed;
}

std::string FormatByteSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (unit < 4 && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++unit;
  }
  return fmt::format("{} {}", bytes, kUnits[unit]);
}

}  // namespace mooncake
