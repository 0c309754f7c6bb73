// The cluster's auth token and the proofs built from it (SPEC.md §8).
//
// One secret, the token, is given to every process of a cluster. HTTP callers prove it with
// `Authorization: Bearer <token>`; the data protocol and the shared-memory socket with a
// challenge-response (an HMAC-SHA256 of a nonce the server chose), so the token itself never
// crosses those wires. Comparisons take constant time.
//
// An empty token means authentication is off: every check passes.
//
// Thread safety: AuthToken is immutable after construction; share it freely.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace mooncake {

inline constexpr size_t kAuthNonceSize = 32;
inline constexpr size_t kAuthProofSize = 32;  // HMAC-SHA256
// The longest token accepted (a file or environment value beyond this is refused).
inline constexpr size_t kMaxAuthTokenBytes = 4096;

using AuthNonce = std::array<uint8_t, kAuthNonceSize>;
using AuthProof = std::array<uint8_t, kAuthProofSize>;

class AuthToken {
 public:
  AuthToken() = default;  // off
  // INVALID_PARAMS for a token with control characters or spaces (it must fit an HTTP header) or
  // longer than kMaxAuthTokenBytes. An empty string is "off".
  static absl::StatusOr<AuthToken> FromString(std::string_view token);
  // The token in `path`, without surrounding whitespace. INVALID_PARAMS naming the file when it
  // cannot be read, is empty, or holds an invalid token.
  static absl::StatusOr<AuthToken> FromFile(const std::string& path);

  bool enabled() const { return !token_.empty(); }

  // The `Authorization` header value callers send ("" when off).
  std::string BearerHeader() const;
  // True when off, or when `authorization` is exactly "Bearer <token>".
  bool AcceptsBearer(std::string_view authorization) const;

  // The proof that answers `nonce` in `purpose` ("data", "shm": a proof for one protocol is not
  // valid for another).
  AuthProof Prove(std::string_view purpose, const AuthNonce& nonce) const;
  // True when off, or when `proof` answers `nonce` in `purpose`.
  bool Verify(std::string_view purpose, const AuthNonce& nonce, const uint8_t* proof) const;

 private:
  explicit AuthToken(std::string token) : token_(std::move(token)) {}
  std::string token_;
};

// Unpredictable bytes for a nonce (the kernel's CSPRNG through OpenSSL).
AuthNonce RandomNonce();

}  // namespace mooncake
