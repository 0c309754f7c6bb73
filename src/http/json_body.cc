#include "http/json_body.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "common/strings.h"

namespace mooncake::http {
namespace {

struct DepthExceeded {};

}  // namespace

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ErrorBody(ErrorCode code, std::string_view message) {
  nlohmann::json body = {{"error",
                          {{"code", static_cast<int>(code)},
                           {"name", std::string(ErrorCodeName(code))},
                           {"message", std::string(message)}}}};
  return DumpJson(body);
}

absl::StatusOr<nlohmann::json> ParseJsonBody(std::string_view body) {
  nlohmann::json::parser_callback_t limit_depth = [](int depth, nlohmann::json::parse_event_t event,
                                                     nlohmann::json&) {
    // `depth` is that of the enclosing value: the n-th nested container starts at depth n - 1.
    const bool opens = event == nlohmann::json::parse_event_t::object_start ||
                       event == nlohmann::json::parse_event_t::array_start;
    if (opens && depth >= kMaxJsonDepth) throw DepthExceeded{};
    return true;
  };
  try {
    return nlohmann::json::parse(body.begin(), body.end(), limit_depth);
  } catch (const DepthExceeded&) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("malformed JSON body: nested deeper than {}", kMaxJsonDepth));
  } catch (const nlohmann::json::exception& e) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("malformed JSON body: {}", e.what()));
  }
}

absl::StatusOr<nlohmann::json> ParseJsonRequestBody(std::string_view body) {
  if (absl::StripAsciiWhitespace(AsAbsl(body)).empty()) return nlohmann::json();
  return ParseJsonBody(body);
}

absl::Status StatusFromErrorResponse(int http_status, std::string_view body) {
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
    const nlohmann::json& error = parsed["error"];
    if (error.contains("code") && error["code"].is_number_integer() &&
        IsKnownErrorCode(error["code"].get<int64_t>())) {
      std::string message;
      if (error.contains("message") && error["message"].is_string()) {
        message = error["message"].get<std::string>();
      }
      auto code = static_cast<ErrorCode>(error["code"].get<int64_t>());
      if (code != ErrorCode::OK) return MakeError(code, message);
    }
  }
  ErrorCode code = ErrorCode::INTERNAL_ERROR;
  if (http_status == 404) {
    code = ErrorCode::OBJECT_NOT_FOUND;
  } else if (http_status == 413) {
    code = ErrorCode::BUFFER_OVERFLOW;
  } else if (http_status == 503) {
    code = ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS;
  } else if (http_status == 504 || http_status == 408) {
    code = ErrorCode::RPC_TIMEOUT;
  } else if (http_status >= 500) {
    code = ErrorCode::RPC_FAIL;
  } else if (http_status >= 400) {
    code = ErrorCode::INVALID_PARAMS;
  }
  std::string_view excerpt = body.substr(0, std::min<size_t>(body.size(), 200));
  return MakeError(code, fmt::format("HTTP {}: {}", http_status, excerpt));
}

absl::Status CheckBatch(const nlohmann::json& items, std::string_view field, size_t limit) {
  if (!items.is_array()) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("'{}' must be an array", field));
  }
  return CheckBatchSize(items.size(), field, limit);
}

absl::Status CheckBatchSize(size_t entries, std::string_view field, size_t limit) {
  if (entries > limit) {
    return MakeError(
        ErrorCode::INVALID_PARAMS,
        fmt::format("'{}' has {} entries; a batch may carry at most {}", field, entries, limit));
  }
  return absl::OkStatus();
}

}  // namespace mooncake::http
