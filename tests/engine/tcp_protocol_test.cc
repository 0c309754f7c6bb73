#include "engine/tcp/tcp_protocol.h"

#include <gtest/gtest.h>

namespace mooncake::engine::tcp {
namespace {

TEST(TcpProtocolTest, RoundTrips) {
  RequestHeader in{Opcode::kWrite, 42, 0x7f0000001000, 4096};
  auto bytes = EncodeRequest(in);
  auto out = DecodeRequest(bytes.data());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->opcode, Opcode::kWrite);
  EXPECT_EQ(out->request_id, 42u);
  EXPECT_EQ(out->remote_addr, 0x7f0000001000u);
  EXPECT_EQ(out->length, 4096u);
  auto response = DecodeResponse(EncodeResponse(ResponseHeader{-701, 7, 12}).data());
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, -701);
  EXPECT_EQ(response->length, 12u);
}

TEST(TcpProtocolTest, RejectsMalformedHeaders) {
  auto valid = EncodeRequest(RequestHeader{Opcode::kRead, 1, 0x1000, 10});
  auto mutate = [&](auto change) {
    auto copy = valid;
    change(copy);
    return DecodeRequest(copy.data()).ok();
  };
  EXPECT_TRUE(mutate([](auto&) {}));
  EXPECT_FALSE(mutate([](auto& b) { b[0] ^= 1; }));  // magic
  EXPECT_FALSE(mutate([](auto& b) { b[4] = 0; }));   // opcode
  EXPECT_FALSE(mutate([](auto& b) { b[4] = 9; }));   // opcode
  EXPECT_FALSE(mutate([](auto& b) { b[6] = 1; }));   // reserved
  EXPECT_FALSE(DecodeRequest(EncodeRequest({Opcode::kRead, 1, 0x1000, 0}).data()).ok());
  EXPECT_FALSE(
      DecodeRequest(EncodeRequest({Opcode::kRead, 1, 0x1000, kMaxRequestLength + 1}).data()).ok());
  EXPECT_FALSE(DecodeRequest(EncodeRequest({Opcode::kWrite, 1, UINT64_MAX - 5, 10}).data()).ok());
  EXPECT_FALSE(DecodeRequest(EncodeRequest({Opcode::kDescribe, 1, 0, 10}).data()).ok());
  EXPECT_TRUE(DecodeRequest(EncodeRequest({Opcode::kDescribe, 1, 0, 0}).data()).ok());
  auto response = EncodeResponse(ResponseHeader{0, 1, kMaxRequestLength + 1});
  EXPECT_FALSE(DecodeResponse(response.data()).ok());
}

}  // namespace
}  // namespace mooncake::engine::tcp
