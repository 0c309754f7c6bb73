// The numeric error codes of SPEC.md §6, and their mapping to and from absl::Status.
//
// Inside the code base every fallible call returns absl::Status / absl::StatusOr. The numeric code
// travels inside the status as a payload, so that the API edges (HTTP error bodies, the client
// library, Python) report exactly the code the failing layer chose.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"

namespace mooncake {

enum class ErrorCode : int32_t {
  OK = 0,
  INTERNAL_ERROR = -1,
  BUFFER_OVERFLOW = -10,
  SEGMENT_NOT_FOUND = -101,
  SEGMENT_ALREADY_EXISTS = -102,
  CLIENT_NOT_FOUND = -103,
  NO_AVAILABLE_HANDLE = -200,
  INVALID_VERSION = -300,
  INVALID_KEY = -400,
  WRITE_FAIL = -500,
  INVALID_PARAMS = -600,
  ILLEGAL_CLIENT = -601,
  INVALID_WRITE = -700,
  INVALID_READ = -701,
  INVALID_REPLICA = -702,
  REPLICA_IS_NOT_READY = -703,
  OBJECT_NOT_FOUND = -704,
  OBJECT_ALREADY_EXISTS = -705,
  OBJECT_HAS_LEASE = -706,
  LEASE_EXPIRED = -707,
  TRANSFER_FAIL = -800,
  CHECKSUM_MISMATCH = -801,
  RPC_FAIL = -900,
  RPC_TIMEOUT = -901,
  ETCD_OPERATION_ERROR = -1000,
  ETCD_KEY_NOT_EXIST = -1001,
  ETCD_TRANSACTION_FAIL = -1002,
  UNAVAILABLE_IN_CURRENT_STATUS = -1010,
  NOT_SUPPORTED = -1012,
};

// "OBJECT_NOT_FOUND" for ErrorCode::OBJECT_NOT_FOUND; "UNKNOWN" for a value outside the table.
std::string_view ErrorCodeName(ErrorCode code);

// True if `value` is one of the codes above.
bool IsKnownErrorCode(int64_t value);

// A status carrying `code` (which must not be OK) and `message`. The absl code is chosen to match
// the meaning (OBJECT_NOT_FOUND -> kNotFound, ...), so generic absl predicates keep working.
absl::Status MakeError(ErrorCode code, std::string_view message);

// The SPEC.md code carried by `status`: its payload if it has one, otherwise a code derived from
// the absl code (kInvalidArgument -> INVALID_PARAMS, kDeadlineExceeded -> RPC_TIMEOUT, ...).
ErrorCode ErrorCodeOf(const absl::Status& status);

// The HTTP status an error with this code is answered with (400, 404, 409, 413, 500, ...).
int HttpStatusFor(ErrorCode code);

}  // namespace mooncake
