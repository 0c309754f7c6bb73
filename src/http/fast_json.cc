#include "http/fast_json.h"

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "http/json_body.h"
#include "nlohmann/json.hpp"

namespace mooncake::http {
namespace {

// A parser's buffers grow to the largest body it read (about ten bytes per byte of JSON); one
// that read more than this is not kept, so a thread holds little once a large body has passed.
constexpr size_t kKeptCapacity = 1u << 20;
constexpr size_t kSparesPerThread = 4;

std::vector<std::unique_ptr<simdjson::dom::parser>>& Spares() {
  thread_local std::vector<std::unique_ptr<simdjson::dom::parser>> spares;
  return spares;
}

// True if every byte of `value` is printable ASCII other than '"' and '\\', i.e. it goes into JSON
// as it is. Eight bytes at a time: a byte's top bit is set in `bad` if the byte is at least 0x80,
// below 0x20 (w - 0x20 borrows into it), '"' or '\\' (zero after the XOR, so w - 1 borrows). A
// borrow can only mark bytes above one that really matches, so the word's verdict is exact. The
// last word overlaps the one before it, and a value shorter than a word is padded with 'a'.
bool IsPlainAscii(std::string_view value) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  auto bad = [](uint64_t w) {
    const uint64_t quote = w ^ (kOnes * '"');
    const uint64_t backslash = w ^ (kOnes * '\\');
    return (w | ((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) |
            ((backslash - kOnes) & ~backslash)) &
           kHigh;
  };
  const char* p = value.data();
  const size_t n = value.size();
  if (n < 8) {  // one word: the value, then plain bytes
    uint64_t w = kOnes * 'a';
    if (n > 0) std::memcpy(&w, p, n);  // an empty view's data may be null
    return bad(w) == 0;
  }
  uint64_t seen = 0;
  uint64_t w;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    std::memcpy(&w, p + i, 8);
    seen |= bad(w);
  }
  std::memcpy(&w, p + n - 8, 8);
  return (seen | bad(w)) == 0;
}

}  // namespace

FastJsonDocument::~FastJsonDocument() {
  if (parser_ == nullptr || parser_->capacity() > kKeptCapacity) return;
  std::vector<std::unique_ptr<simdjson::dom::parser>>& spares = Spares();
  if (spares.size() < kSparesPerThread) spares.push_back(std::move(parser_));
}

absl::Status FastJsonDocument::Parse(std::string_view body) {
  if (parser_ == nullptr) {
    std::vector<std::unique_ptr<simdjson::dom::parser>>& spares = Spares();
    if (!spares.empty()) {
      parser_ = std::move(spares.back());
      spares.pop_back();
    } else {
      parser_ = std::make_unique<simdjson::dom::parser>();
      // Capacity grows with the first body; the depth limit stays.
      if (parser_->allocate(simdjson::dom::MINIMAL_DOCUMENT_CAPACITY, kMaxJsonDepth) !=
          simdjson::SUCCESS) {
        parser_.reset();
        return MakeError(ErrorCode::INTERNAL_ERROR, "cannot allocate a JSON parser");
      }
    }
  }
  if (absl::StripAsciiWhitespace(AsAbsl(body)).empty()) body = "null";
  simdjson::error_code error =
      parser_->parse(body.data(), body.size(), /*realloc_if_needed=*/true).get(root_);
  if (error == simdjson::SUCCESS) return absl::OkStatus();
  if (error == simdjson::DEPTH_ERROR) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("malformed JSON body: nested deeper than {}", kMaxJsonDepth));
  }
  if (error == simdjson::MEMALLOC || error == simdjson::CAPACITY) {
    return MakeError(ErrorCode::INTERNAL_ERROR,
                     fmt::format("cannot parse a JSON body of {} bytes: {}", body.size(),
                                 simdjson::error_message(error)));
  }
  return MakeError(ErrorCode::INVALID_PARAMS,
                   fmt::format("malformed JSON body: {}", simdjson::error_message(error)));
}

bool AppendJsonString(std::string& out, std::string_view value) {
  if (!IsPlainAscii(value)) {
    try {
      out += nlohmann::json(value).dump();
    } catch (const nlohmann::json::type_error&) {
      return false;  // not UTF-8
    }
    return true;
  }
  out.reserve(out.size() + value.size() + 2);
  out += '"';
  out += value;
  out += '"';
  return true;
}

}  // namespace mooncake::http
