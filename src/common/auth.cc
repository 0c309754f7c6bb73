#include "common/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/random.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "common/error_code.h"
#include "common/strings.h"

namespace mooncake {

absl::StatusOr<AuthToken> AuthToken::FromString(std::string_view token) {
  if (token.size() > kMaxAuthTokenBytes) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("auth token is {} bytes; at most {} are allowed", token.size(),
                                 kMaxAuthTokenBytes));
  }
  for (char c : token) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       "auth token must not contain spaces or control characters");
    }
  }
  return AuthToken(std::string(token));
}

absl::StatusOr<AuthToken> AuthToken::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("cannot read auth token file '{}'", path));
  }
  std::string text(kMaxAuthTokenBytes + 64, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  const std::string_view token = AsStd(absl::StripAsciiWhitespace(AsAbsl(text)));
  if (token.empty()) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("auth token file '{}' is empty", path));
  }
  absl::StatusOr<AuthToken> parsed = FromString(token);
  if (!parsed.ok()) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("auth token file '{}': {}", path, parsed.status().message()));
  }
  return parsed;
}

std::string AuthToken::BearerHeader() const {
  return token_.empty() ? std::string() : "Bearer " + token_;
}

bool AuthToken::AcceptsBearer(std::string_view authorization) const {
  if (token_.empty()) return true;
  constexpr std::string_view kPrefix = "Bearer ";
  if (authorization.size() != kPrefix.size() + token_.size() ||
      authorization.substr(0, kPrefix.size()) != kPrefix) {
    return false;
  }
  return CRYPTO_memcmp(authorization.data() + kPrefix.size(), token_.data(), token_.size()) == 0;
}

AuthProof AuthToken::Prove(std::string_view purpose, const AuthNonce& nonce) const {
  // HMAC(token, "mooncake/<purpose>/v1" || nonce): a proof is bound to one protocol.
  std::string message = fmt::format("mooncake/{}/v1", purpose);
  message.append(reinterpret_cast<const char*>(nonce.data()), nonce.size());
  AuthProof proof{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), token_.data(), static_cast<int>(token_.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), proof.data(),
       &length);
  return proof;
}

bool AuthToken::Verify(std::string_view purpose, const AuthNonce& nonce,
                       const uint8_t* proof) const {
  if (token_.empty()) return true;
  const AuthProof expected = Prove(purpose, nonce);
  return CRYPTO_memcmp(expected.data(), proof, expected.size()) == 0;
}

AuthNonce RandomNonce() {
  AuthNonce nonce{};
  if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) {
    // OpenSSL draws from the kernel too; ask it directly if OpenSSL could not.
    size_t got = 0;
    while (got < nonce.size()) {
      const ssize_t n = getrandom(nonce.data() + got, nonce.size() - got, 0);
      if (n > 0) got += static_cast<size_t>(n);
    }
  }
  return nonce;
}

}  // namespace mooncake
