// JSON bodies of the control plane: the uniform error body, bounded request parsing, batch limits.
//
// Every error any of our HTTP servers returns has the body
//   {"error": {"code": -704, "name": "OBJECT_NOT_FOUND", "message": "..."}}
// with the numeric code of SPEC.md §6. Clients turn such a body back into an absl::Status carrying
// the same code.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/error_code.h"
#include "nlohmann/json.hpp"

namespace mooncake::http {

// Deepest nesting a request body may have; deeper documents are rejected before they are built.
inline constexpr int kMaxJsonDepth = 64;

// Default limit on the number of keys one batch request may carry.
inline constexpr size_t kMaxBatchKeys = 16384;

// `value` as compact JSON text; bytes that are not UTF-8 (client input quoted in a message) are
// replaced instead of throwing.
std::string DumpJson(const nlohmann::json& value);

// The uniform error body for `code` and `message`.
std::string ErrorBody(ErrorCode code, std::string_view message);

// Parses a request body as JSON. Malformed text, trailing garbage or nesting deeper than
// kMaxJsonDepth -> INVALID_PARAMS with the parser's position in the message.
absl::StatusOr<nlohmann::json> ParseJsonBody(std::string_view body);
// As ParseJsonBody, but an empty (or blank) body is JSON null: what JSON routes receive.
absl::StatusOr<nlohmann::json> ParseJsonRequestBody(std::string_view body);

// The status an error response stands for: the code and message of a uniform error body when the
// body is one, otherwise a code chosen from the HTTP status (404 -> OBJECT_NOT_FOUND, 5xx ->
// RPC_FAIL, ...) and the start of the body as message. REQUIRES: http_status >= 400.
absl::Status StatusFromErrorResponse(int http_status, std::string_view body);

// INVALID_PARAMS unless `items` is an array of at most `limit` elements.
absl::Status CheckBatch(const nlohmann::json& items, std::string_view field,
                        size_t limit = kMaxBatchKeys);
// INVALID_PARAMS unless `entries` <= `limit` (the count check of CheckBatch).
absl::Status CheckBatchSize(size_t entries, std::string_view field, size_t limit = kMaxBatchKeys);

}  // namespace mooncake::http
