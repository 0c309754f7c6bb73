#include "common/error_code.h"

#include <gtest/gtest.h>

namespace mooncake {
namespace {

TEST(ErrorCodeTest, MakeErrorCarriesTheExactCode) {
  absl::Status status = MakeError(ErrorCode::OBJECT_HAS_LEASE, "key k is leased");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(ErrorCodeOf(status), ErrorCode::OBJECT_HAS_LEASE);
  EXPECT_EQ(status.message(), "key k is leased");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ErrorCodeTest, NumericValuesMatchTheSpec) {
  EXPECT_EQ(static_cast<int>(ErrorCode::OBJECT_NOT_FOUND), -704);
  EXPECT_EQ(static_cast<int>(ErrorCode::NO_AVAILABLE_HANDLE), -200);
  EXPECT_EQ(static_cast<int>(ErrorCode::NOT_SUPPORTED), -1012);
  EXPECT_EQ(static_cast<int>(ErrorCode::BUFFER_OVERFLOW), -10);
  EXPECT_EQ(ErrorCodeName(ErrorCode::RPC_TIMEOUT), "RPC_TIMEOUT");
  EXPECT_EQ(ErrorCodeName(static_cast<ErrorCode>(-5)), "UNKNOWN");
  EXPECT_TRUE(IsKnownErrorCode(-1010));
  EXPECT_FALSE(IsKnownErrorCode(-1011));
}

TEST(ErrorCodeTest, PlainAbslStatusesMapByMeaning) {
  EXPECT_EQ(ErrorCodeOf(absl::OkStatus()), ErrorCode::OK);
  EXPECT_EQ(ErrorCodeOf(absl::InvalidArgumentError("x")), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(absl::DeadlineExceededError("x")), ErrorCode::RPC_TIMEOUT);
  EXPECT_EQ(ErrorCodeOf(absl::UnavailableError("x")), ErrorCode::RPC_FAIL);
  EXPECT_EQ(ErrorCodeOf(absl::DataLossError("x")), ErrorCode::INTERNAL_ERROR);
}

TEST(ErrorCodeTest, OkIsNotAnError) {
  absl::Status status = MakeError(ErrorCode::OK, "not an error");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(ErrorCodeOf(status), ErrorCode::INTERNAL_ERROR);
}

TEST(ErrorCodeTest, HttpStatuses) {
  EXPECT_EQ(HttpStatusFor(ErrorCode::INVALID_PARAMS), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::OBJECT_NOT_FOUND), 404);
  EXPECT_EQ(HttpStatusFor(ErrorCode::OBJECT_ALREADY_EXISTS), 409);
  EXPECT_EQ(HttpStatusFor(ErrorCode::BUFFER_OVERFLOW), 413);
  EXPECT_EQ(HttpStatusFor(ErrorCode::INTERNAL_ERROR), 500);
}

}  // namespace
}  // namespace mooncake
