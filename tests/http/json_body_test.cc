#include "http/json_body.h"

#include <gtest/gtest.h>

#include <string>

namespace mooncake::http {
namespace {

TEST(JsonBodyTest, ErrorBodyRoundTripsThroughTheClientMapping) {
  std::string body = ErrorBody(ErrorCode::OBJECT_ALREADY_EXISTS, "key k exists");
  nlohmann::json parsed = nlohmann::json::parse(body);
  EXPECT_EQ(parsed["error"]["code"], -705);
  EXPECT_EQ(parsed["error"]["name"], "OBJECT_ALREADY_EXISTS");
  absl::Status status = StatusFromErrorResponse(409, body);
  EXPECT_EQ(ErrorCodeOf(status), ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_EQ(status.message(), "key k exists");
}

TEST(JsonBodyTest, ErrorBodyToleratesNonUtf8Messages) {
  std::string body = ErrorBody(ErrorCode::INVALID_KEY, std::string("bad \xff key"));
  EXPECT_FALSE(nlohmann::json::parse(body, nullptr, false).is_discarded());
}

TEST(JsonBodyTest, ResponsesWithoutOurBodyMapByHttpStatus) {
  EXPECT_EQ(ErrorCodeOf(StatusFromErrorResponse(404, "")), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(ErrorCodeOf(StatusFromErrorResponse(413, "too big")), ErrorCode::BUFFER_OVERFLOW);
  EXPECT_EQ(ErrorCodeOf(StatusFromErrorResponse(502, "<html>")), ErrorCode::RPC_FAIL);
  EXPECT_EQ(ErrorCodeOf(StatusFromErrorResponse(400, "{\"error\": {\"code\": 12345}}")),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(StatusFromErrorResponse(500, "{\"error\": \"text\"}")),
            ErrorCode::RPC_FAIL);
}

TEST(JsonBodyTest, ParseRejectsMalformedTruncatedAndDeepBodies) {
  EXPECT_TRUE(ParseJsonBody("{\"a\": [1, 2]}").ok());
  for (const std::string& bad :
       {std::string("{"), std::string("{\"a\": }"), std::string("[1, 2] trailing"),
        std::string("\"unterminated"), std::string("nul\0l", 5),
        std::string(65, '[') + std::string(65, ']')}) {
    absl::StatusOr<nlohmann::json> parsed = ParseJsonBody(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(ErrorCodeOf(parsed.status()), ErrorCode::INVALID_PARAMS);
  }
  // At the depth limit it still parses.
  EXPECT_TRUE(
      ParseJsonBody(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']')).ok());
  // Very deep input is refused without exhausting the stack.
  EXPECT_FALSE(ParseJsonBody(std::string(1000000, '[')).ok());
}

TEST(JsonBodyTest, CheckBatchBoundsTheBatch) {
  EXPECT_TRUE(CheckBatch(nlohmann::json::array({"a", "b"}), "keys", 2).ok());
  EXPECT_FALSE(CheckBatch(nlohmann::json::array({"a", "b", "c"}), "keys", 2).ok());
  absl::Status not_array = CheckBatch(nlohmann::json("a"), "keys");
  EXPECT_EQ(ErrorCodeOf(not_array), ErrorCode::INVALID_PARAMS);
  EXPECT_NE(std::string(not_array.message()).find("'keys'"), std::string::npos);
}

}  // namespace
}  // namespace mooncake::http
