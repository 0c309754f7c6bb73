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
//
// Every connection opens with HELLO; the server answers nothing else before it. The HELLO's
// remote address is the incarnation the client expects (0: any; a nonzero one the server is not
// is refused with INVALID_VERSION, so a connection never reaches a restarted peer under an old
// view of it). The answer's payload (kHelloReplySize bytes) is the server's incarnation u64 | auth
// u8 (0: none; 1: the client must send AUTH next) | a 32-byte nonce. AUTH carries
// kAuthProofSize bytes, the HMAC-SHA256 of the nonce under the cluster's auth token; the server
// answers 0 or refuses and closes.
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
enum class Opcode : uint8_t {
  kRead = 1,
  kWrite = 2,
  kDescribe = 3,
  kHandshake = 4,
  kHello = 5,
  kAuth = 6,
};
inline constexpr uint8_t kMaxOpcode = 6;

inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kHelloReplySize = 8 + 1 + kNonceSize;
inline constexpr size_t kAuthProofSize = 32;

// What a server says of itself in answer to HELLO.
struct HelloReply {
  uint64_t incarnation = 0;
  bool auth_required = false;
  std::array<uint8_t, kNonceSize> nonce{};
};
std::array<uint8_t, kHelloReplySize> EncodeHelloReply(const HelloReply& reply);
// INVALID_PARAMS for an auth byte other than 0 or 1. REQUIRES: kHelloReplySize bytes.
absl::StatusOr<HelloReply> DecodeHelloReply(const uint8_t* bytes);

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
// HANDSHAKE with an address or a length outside 1..kMaxHandshakeLength, a HELLO with a length, or
// an AUTH with an address or a length other than kAuthProofSize.
absl::StatusOr<RequestHeader> DecodeRequest(const uint8_t* bytes);
absl::StatusOr<ResponseHeader> DecodeResponse(const uint8_t* bytes);

}  // namespace mooncake::engine::tcp
