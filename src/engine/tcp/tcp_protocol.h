// The TCP data protocol: fixed-size little-endian headers, then raw bytes.
//
//   request  (32 bytes): magic "MCK1" | opcode u8 | 3 zero bytes | request id u64 | remote address
//                        u64 | length u64, then for WRITE `length` bytes of data
//   response (24 bytes): magic "MCK1" | status i32 (0 or a SPEC.md code) | request id u64 |
//                        length u64, then `length` bytes: the data of a READ, the descriptor of a
//                        DESCRIBE, or an error message
//
// A server answers a request it rejects with an error response and closes the connection (after a
// bad WRITE it cannot know where the next header starts).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mooncake::engine::tcp {

inline constexpr uint32_t kMagic = 0x314b434d;  // "MCK1" read as little-endian
inline constexpr size_t kRequestHeaderSize = 32;
inline constexpr size_t kResponseHeaderSize = 24;
// The largest data of one request (a slice). Larger lengths are refused before any byte moves.
inline constexpr uint64_t kMaxRequestLength = uint64_t{1} << 30;
// The longest error message or descriptor a response may carry.
inline constexpr uint64_t kMaxResponseMetadata = 16u << 20;

// kHandshake carries `length` bytes of JSON (an RDMA queue pair to connect) and is answered with
// JSON; its remote address is 0.
enum class Opcode : uint8_t { kRead = 1, kWrite = 2, kDescribe = 3, kHandshake = 4 };

// The longest handshake a request may carry.
inline constexpr uint64_t kMaxHandshakeLength = 64u << 10;

struct RequestHeader {
  Opcode opcode = Opcode::kRead;
  uint64_t request_id = 0;
  uint64_t remote_addr = 0;
  uint64_t length = 0;
};

struct ResponseHeader {
  int32_t status = 0;
  uint64_t request_id = 0;
  uint64_t length = 0;
};

std::array<uint8_t, kRequestHeaderSize> EncodeRequest(const RequestHeader& header);
std::array<uint8_t, kResponseHeaderSize> EncodeResponse(const ResponseHeader& header);

// INVALID_PARAMS naming the problem: bad magic, unknown opcode, nonzero reserved bytes, a length
// over kMaxRequestLength, an address range that wraps past 2^64, a DESCRIBE with a length, or a
// HANDSHAKE with an address or a length outside 1..kMaxHandshakeLength.
absl::StatusOr<RequestHeader> DecodeRequest(const uint8_t* bytes);
absl::StatusOr<ResponseHeader> DecodeResponse(const uint8_t* bytes);

}  // namespace mooncake::engine::tcp
