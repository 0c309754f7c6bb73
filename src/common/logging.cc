#include "common/logging.h"

#include <memory>
#include <string>

#include "common/error_code.h"
#include "common/strings.h"
#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace mooncake {

absl::Status InitLogging(std::string_view level) {
  spdlog::level::level_enum parsed = spdlog::level::from_str(std::string(level));
  // from_str answers `off` for any name it does not know; only "off" itself means off.
  if (parsed == spdlog::level::off && level != "off") {
    return MakeError(
        ErrorCode::INVALID_PARAMS,
        fmt::format("unknown log level '{}' (expected trace, debug, info, warn, error or off)",
                    level));
  }
  auto logger = std::make_shared<spdlog::logger>("mooncake",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ %t] %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

absl::Status AddLogFile(const std::string& path) {
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> file;
  try {
    file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
  } catch (const spdlog::spdlog_ex& e) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("cannot write {}: {}", path, e.what()));
  }
  file->set_pattern("%Y-%m-%dT%H:%M:%S.%e %L %t] %v");
  spdlog::default_logger()->sinks().push_back(std::move(file));
  return absl::OkStatus();
}

}  // namespace mooncake
