#include "engine/tcp/tcp_protocol.h"

#include <cstring>

#include "common/error_code.h"
#include "common/strings.h"

namespace mooncake::engine::tcp {
namespace {

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

absl::Status Invalid(std::string message) { return MakeError(ErrorCode::INVALID_PARAMS, message); }

}  // namespace

std::array<uint8_t, kRequestHeaderSize> EncodeRequest(const RequestHeader& header) {
  std::array<uint8_t, kRequestHeaderSize> out{};
  Put32(&out[0], kMagic);
  out[4] = static_cast<uint8_t>(header.opcode);
  Put64(&out[8], header.request_id);
  Put64(&out[16], header.remote_addr);
  Put64(&out[24], header.length);
  return out;
}

std::array<uint8_t, kResponseHeaderSize> EncodeResponse(const ResponseHeader& header) {
  std::array<uint8_t, kResponseHeaderSize> out{};
  Put32(&out[0], kMagic);
  Put32(&out[4], static_cast<uint32_t>(header.status));
  Put64(&out[8], header.request_id);
  Put64(&out[16], header.length);
  return out;
}

absl::StatusOr<RequestHeader> DecodeRequest(const uint8_t* bytes) {
  if (Get32(bytes) != kMagic) return Invalid("bad magic: not a mooncake data request");
  RequestHeader header;
  const uint8_t opcode = bytes[4];
  if (opcode < 1 || opcode > kMaxOpcode) return Invalid(fmt::format("unknown opcode {}", opcode));
  if (bytes[5] != 0 || bytes[6] != 0 || bytes[7] != 0)
    return Invalid("reserved bytes are not zero");
  header.opcode = static_cast<Opcode>(opcode);
  header.request_id = Get64(&bytes[8]);
  header.remote_addr = Get64(&bytes[16]);
  header.length = Get64(&bytes[24]);
  if (header.opcode == Opcode::kHandshake) {
    if (header.remote_addr != 0 || header.length == 0 || header.length > kMaxHandshakeLength) {
      return Invalid(
          fmt::format("a HANDSHAKE carries 1..{} bytes and no address", kMaxHandshakeLength));
    }
    return header;
  }
  if (header.opcode == Opcode::kHello) {
    if (header.length != 0) return Invalid("a HELLO request carries no data");
    return header;
  }
  if (header.opcode == Opcode::kAuth) {
    if (header.remote_addr != 0 || header.length != kAuthProofSize) {
      return Invalid(
          fmt::format("an AUTH request carries {} bytes and no address", kAuthProofSize));
    }
    return header;
  }
  if (header.opcode == Opcode::kDescribe) {
    if (header.length != 0 || header.remote_addr != 0) {
      return Invalid("a DESCRIBE request carries no address or length");
    }
    return header;
  }
  if (header.length == 0 || header.length > kMaxRequestLength) {
    return Invalid(fmt::format("length {} outside 1..{}", header.length, kMaxRequestLength));
  }
  if (header.remote_addr > UINT64_MAX - header.length) {
    return Invalid(
        fmt::format("range {:#x} + {} wraps past 2^64", header.remote_addr, header.length));
  }
  return header;
}

std::array<uint8_t, kHelloReplySize> EncodeHelloReply(const HelloReply& reply) {
  std::array<uint8_t, kHelloReplySize> out{};
  Put64(&out[0], reply.incarnation);
  out[8] = reply.auth_required ? 1 : 0;
  std::memcpy(&out[9], reply.nonce.data(), kNonceSize);
  return out;
}

absl::StatusOr<HelloReply> DecodeHelloReply(const uint8_t* bytes) {
  HelloReply reply;
  reply.incarnation = Get64(bytes);
  if (bytes[8] > 1) return Invalid(fmt::format("unknown authentication method {}", bytes[8]));
  reply.auth_required = bytes[8] == 1;
  std::memcpy(reply.nonce.data(), &bytes[9], kNonceSize);
  return reply;
}

absl::StatusOr<ResponseHeader> DecodeResponse(const uint8_t* bytes) {
  if (Get32(bytes) != kMagic) return Invalid("bad magic: not a mooncake data response");
  ResponseHeader header;
  header.status = static_cast<int32_t>(Get32(&bytes[4]));
  header.request_id = Get64(&bytes[8]);
  header.length = Get64(&bytes[16]);
  if (header.length > kMaxRequestLength) {
    return Invalid(fmt::format("response length {} over {}", header.length, kMaxRequestLength));
  }
  return header;
}

}  // namespace mooncake::engine::tcp
