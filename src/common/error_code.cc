#include "common/error_code.h"

#include <array>
#include <optional>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "common/strings.h"

namespace mooncake {
namespace {

constexpr char kPayloadUrl[] = "mooncake.error_code";

struct CodeInfo {
  ErrorCode code;
  std::string_view name;
  absl::StatusCode absl_code;
  int http_status;
};

constexpr std::array kCodes = {
    CodeInfo{ErrorCode::OK, "OK", absl::StatusCode::kOk, 200},
    CodeInfo{ErrorCode::INTERNAL_ERROR, "INTERNAL_ERROR", absl::StatusCode::kInternal, 500},
    CodeInfo{ErrorCode::BUFFER_OVERFLOW, "BUFFER_OVERFLOW", absl::StatusCode::kResourceExhausted,
             413},
    CodeInfo{ErrorCode::SEGMENT_NOT_FOUND, "SEGMENT_NOT_FOUND", absl::StatusCode::kNotFound, 404},
    CodeInfo{ErrorCode::SEGMENT_ALREADY_EXISTS, "SEGMENT_ALREADY_EXISTS",
             absl::StatusCode::kAlreadyExists, 409},
    CodeInfo{ErrorCode::CLIENT_NOT_FOUND, "CLIENT_NOT_FOUND", absl::StatusCode::kNotFound, 404},
    CodeInfo{ErrorCode::NO_AVAILABLE_HANDLE, "NO_AVAILABLE_HANDLE",
             absl::StatusCode::kResourceExhausted, 507},
    CodeInfo{ErrorCode::INVALID_VERSION, "INVALID_VERSION", absl::StatusCode::kFailedPrecondition,
             409},
    CodeInfo{ErrorCode::INVALID_KEY, "INVALID_KEY", absl::StatusCode::kInvalidArgument, 400},
    CodeInfo{ErrorCode::WRITE_FAIL, "WRITE_FAIL", absl::StatusCode::kInternal, 500},
    CodeInfo{ErrorCode::INVALID_PARAMS, "INVALID_PARAMS", absl::StatusCode::kInvalidArgument, 400},
    CodeInfo{ErrorCode::ILLEGAL_CLIENT, "ILLEGAL_CLIENT", absl::StatusCode::kPermissionDenied, 403},
    CodeInfo{ErrorCode::INVALID_WRITE, "INVALID_WRITE", absl::StatusCode::kFailedPrecondition, 409},
    CodeInfo{ErrorCode::INVALID_READ, "INVALID_READ", absl::StatusCode::kFailedPrecondition, 409},
    CodeInfo{ErrorCode::INVALID_REPLICA, "INVALID_REPLICA", absl::StatusCode::kFailedPrecondition,
             409},
    CodeInfo{ErrorCode::REPLICA_IS_NOT_READY, "REPLICA_IS_NOT_READY",
             absl::StatusCode::kUnavailable, 409},
    CodeInfo{ErrorCode::OBJECT_NOT_FOUND, "OBJECT_NOT_FOUND", absl::StatusCode::kNotFound, 404},
    CodeInfo{ErrorCode::OBJECT_ALREADY_EXISTS, "OBJECT_ALREADY_EXISTS",
             absl::StatusCode::kAlreadyExists, 409},
    CodeInfo{ErrorCode::OBJECT_HAS_LEASE, "OBJECT_HAS_LEASE", absl::StatusCode::kFailedPrecondition,
             409},
    CodeInfo{ErrorCode::LEASE_EXPIRED, "LEASE_EXPIRED", absl::StatusCode::kDeadlineExceeded, 409},
    CodeInfo{ErrorCode::TRANSFER_FAIL, "TRANSFER_FAIL", absl::StatusCode::kUnavailable, 502},
    CodeInfo{ErrorCode::CHECKSUM_MISMATCH, "CHECKSUM_MISMATCH", absl::StatusCode::kDataLoss, 500},
    CodeInfo{ErrorCode::RPC_FAIL, "RPC_FAIL", absl::StatusCode::kUnavailable, 502},
    CodeInfo{ErrorCode::RPC_TIMEOUT, "RPC_TIMEOUT", absl::StatusCode::kDeadlineExceeded, 504},
    CodeInfo{ErrorCode::ETCD_OPERATION_ERROR, "ETCD_OPERATION_ERROR",
             absl::StatusCode::kUnavailable, 502},
    CodeInfo{ErrorCode::ETCD_KEY_NOT_EXIST, "ETCD_KEY_NOT_EXIST", absl::StatusCode::kNotFound, 404},
    CodeInfo{ErrorCode::ETCD_TRANSACTION_FAIL, "ETCD_TRANSACTION_FAIL", absl::StatusCode::kAborted,
             409},
    CodeInfo{ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "UNAVAILABLE_IN_CURRENT_STATUS",
             absl::StatusCode::kUnavailable, 503},
    CodeInfo{ErrorCode::NOT_SUPPORTED, "NOT_SUPPORTED", absl::StatusCode::kUnimplemented, 501},
};

const CodeInfo* Find(ErrorCode code) {
  for (const CodeInfo& info : kCodes) {
    if (info.code == code) return &info;
  }
  return nullptr;
}

ErrorCode FromAbslCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return ErrorCode::OK;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return ErrorCode::INVALID_PARAMS;
    case absl::StatusCode::kNotFound:
      return ErrorCode::OBJECT_NOT_FOUND;
    case absl::StatusCode::kAlreadyExists:
      return ErrorCode::OBJECT_ALREADY_EXISTS;
    case absl::StatusCode::kDeadlineExceeded:
      return ErrorCode::RPC_TIMEOUT;
    case absl::StatusCode::kUnavailable:
      return ErrorCode::RPC_FAIL;
    case absl::StatusCode::kResourceExhausted:
      return ErrorCode::NO_AVAILABLE_HANDLE;
    case absl::StatusCode::kUnimplemented:
      return ErrorCode::NOT_SUPPORTED;
    default:
      return ErrorCode::INTERNAL_ERROR;
  }
}

}  // namespace

std::string_view ErrorCodeName(ErrorCode code) {
  const CodeInfo* info = Find(code);
  return info ? info->name : "UNKNOWN";
}

bool IsKnownErrorCode(int64_t value) {
  for (const CodeInfo& info : kCodes) {
    if (static_cast<int64_t>(info.code) == value) return true;
  }
  return false;
}

absl::Status MakeError(ErrorCode code, std::string_view message) {
  const CodeInfo* info = Find(code);
  if (info == nullptr || code == ErrorCode::OK) {
    info = Find(ErrorCode::INTERNAL_ERROR);
  }
  absl::Status status(info->absl_code, AsAbsl(message));
  status.SetPayload(kPayloadUrl, absl::Cord(std::to_string(static_cast<int32_t>(info->code))));
  return status;
}

ErrorCode ErrorCodeOf(const absl::Status& status) {
  if (status.ok()) return ErrorCode::OK;
  auto payload = status.GetPayload(kPayloadUrl);
  int32_t value = 0;
  if (payload && absl::SimpleAtoi(std::string(*payload), &value) && IsKnownErrorCode(value)) {
    return static_cast<ErrorCode>(value);
  }
  return FromAbslCode(status.code());
}

int HttpStatusFor(ErrorCode code) {
  const CodeInfo* info = Find(code);
  return info ? info->http_status : 500;
}

}  // namespace mooncake
