#include "http/fast_json.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/json_body.h"
#include "nlohmann/json.hpp"

namespace mooncake::http {
namespace {

// The string `value` holds ("<not a string>" if it holds none).
std::string StringOf(simdjson::simdjson_result<simdjson::dom::element> value) {
  std::string_view text;
  if (value.get_string().get(text) != simdjson::SUCCESS) return "<not a string>";
  return std::string(text);
}

TEST(FastJsonTest, ReadsWhatNlohmannReads) {
  FastJsonDocument document;
  ASSERT_TRUE(
      document.Parse(R"({"keys": ["a", "b\"c", "\u00e9\n"], "n": 18446744073709551615})").ok());
  simdjson::dom::array keys;
  ASSERT_EQ(document.root()["keys"].get_array().get(keys), simdjson::SUCCESS);
  std::vector<std::string> read;
  for (simdjson::dom::element key : keys) read.push_back(StringOf(std::move(key)));
  EXPECT_EQ(read, (std::vector<std::string>{"a", "b\"c", "\xc3\xa9\n"}));
  uint64_t n = 0;
  ASSERT_EQ(document.root()["n"].get_uint64().get(n), simdjson::SUCCESS);
  EXPECT_EQ(n, UINT64_MAX);
  // A blank body is null, as for ParseJsonRequestBody.
  ASSERT_TRUE(document.Parse(" \n").ok());
  EXPECT_TRUE(document.root().is_null());
}

TEST(FastJsonTest, RejectsWhatParseJsonBodyRejects) {
  for (const std::string& bad :
       {std::string("{"), std::string("{\"a\": }"), std::string("[1, 2] trailing"),
        std::string("\"unterminated"), std::string("nul\0l", 5), std::string("{\"k\": \"\xff\"}"),
        std::string("{\"n\": 18446744073709551616}"), std::string(65, '[') + std::string(65, ']'),
        std::string(1000000, '[')}) {
    FastJsonDocument document;
    absl::Status parsed = document.Parse(bad);
    ASSERT_FALSE(parsed.ok()) << bad.substr(0, 80);
    EXPECT_EQ(ErrorCodeOf(parsed), ErrorCode::INVALID_PARAMS);
    EXPECT_NE(parsed.message().find("malformed JSON body"), std::string_view::npos);
  }
  FastJsonDocument deep;
  absl::Status too_deep = deep.Parse(std::string(65, '[') + std::string(65, ']'));
  EXPECT_NE(too_deep.message().find("nested deeper than 64"), std::string_view::npos) << too_deep;
  // At the depth limit it still parses.
  EXPECT_TRUE(deep.Parse(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']')).ok());
}

TEST(FastJsonTest, DocumentsOfOneThreadDoNotShareAParser) {
  FastJsonDocument first, second;
  ASSERT_TRUE(first.Parse(R"({"which": "first"})").ok());
  ASSERT_TRUE(second.Parse(R"({"which": "second"})").ok());
  EXPECT_EQ(StringOf(first.root()["which"]), "first");
  EXPECT_EQ(StringOf(second.root()["which"]), "second");
  // A large body, then a small one, in the same document.
  std::string large = "[\"" + std::string(3u << 20, 'x') + "\"]";
  ASSERT_TRUE(first.Parse(large).ok());
  ASSERT_TRUE(first.Parse("[1]").ok());
  simdjson::dom::array small;
  ASSERT_EQ(first.root().get_array().get(small), simdjson::SUCCESS);
  EXPECT_EQ(small.size(), 1u);
}

TEST(FastJsonTest, AppendJsonStringWritesWhatNlohmannReadsBack) {
  std::string control = "tab\there";
  control += '\x01';
  for (const std::string& value :
       {std::string("plain_key_0_k"), std::string(""), std::string("quote\"back\\slash"), control,
        std::string("\xc3\xa9t\xc3\xa9"), std::string("nul\0in", 6)}) {
    std::string out = "[";
    ASSERT_TRUE(AppendJsonString(out, value));
    out += "]";
    EXPECT_EQ(nlohmann::json::parse(out)[0].get<std::string>(), value) << out;
    FastJsonDocument document;
    ASSERT_TRUE(document.Parse(out).ok()) << out;
    EXPECT_EQ(StringOf(document.root().at(0)), value);
  }
  std::string out = "unchanged";
  EXPECT_FALSE(AppendJsonString(out, "bad\xff"));
  EXPECT_EQ(out, "unchanged");
}

// Keys are checked eight bytes at a time: every byte value at every position of values of 0 to
// 24 bytes (around the word boundaries, the overlapping last word included) is written exactly as
// nlohmann writes it, or refused when it is not UTF-8.
TEST(FastJsonTest, AppendJsonStringAgreesWithNlohmannForEveryByteAnywhere) {
  for (size_t length = 1; length <= 24; ++length) {
    for (size_t at = 0; at < length; ++at) {
      for (int byte = 0; byte < 256; ++byte) {
        std::string value(length, 'k');
        value[at] = static_cast<char>(byte);
        std::string expected;
        bool utf8 = true;
        try {
          expected = nlohmann::json(value).dump();
        } catch (const nlohmann::json::type_error&) {
          utf8 = false;
        }
        std::string out = "x";
        ASSERT_EQ(AppendJsonString(out, value), utf8) << length << " " << at << " " << byte;
        ASSERT_EQ(out, utf8 ? "x" + expected : "x") << length << " " << at << " " << byte;
      }
    }
  }
}

}  // namespace
}  // namespace mooncake::http
