// ParseSimpleRequest: what it takes from our clients' requests, and what it leaves to cpp-httplib.
// (server_test.cc checks that the server's answers to both kinds are what cpp-httplib writes.)
#include "http/simple_request.h"

#include <gtest/gtest.h>

#include <string>

namespace mooncake::http {
namespace {

constexpr SimpleRequestLimits kLimits{/*max_head_bytes=*/16384, /*max_body_bytes=*/1024,
                                      /*max_line_bytes=*/8192, /*max_target_bytes=*/8192};

TEST(SimpleRequestTest, ReadsAPostWithItsBody) {
  const std::string bytes =
      "POST /api/v1/batch_exist_key?x=1 HTTP/1.1\r\nHost: 127.0.0.1:5\r\n"
      "Content-Type: application/json\r\nauthorization:  Bearer abc \t\r\n"
      "Authorization: Bearer second\r\nContent-Length: 11\r\n\r\n{\"keys\":[]}";
  std::optional<SimpleRequest> request = ParseSimpleRequest(bytes, kLimits);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->method, "POST");
  EXPECT_EQ(request->target, "/api/v1/batch_exist_key?x=1");
  EXPECT_EQ(request->path, "/api/v1/batch_exist_key");
  EXPECT_EQ(request->query, "x=1");
  EXPECT_EQ(request->body, "{\"keys\":[]}");
  EXPECT_EQ(request->authorization, "Bearer abc");  // the first, blanks trimmed
  EXPECT_FALSE(request->asks_close);
  EXPECT_FALSE(request->close);
  EXPECT_EQ(request->size, bytes.size());
}

TEST(SimpleRequestTest, StopsAtTheEndOfTheFirstRequest) {
  const std::string first = "PUT /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  const std::string second = "GET /b HTTP/1.1\r\n\r\n";
  const std::string both = first + second;  // the views point into it
  std::optional<SimpleRequest> request = ParseSimpleRequest(both, kLimits);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->body, "abc");
  EXPECT_EQ(request->size, first.size());
  request = ParseSimpleRequest(std::string_view(both).substr(request->size), kLimits);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->path, "/b");
  EXPECT_EQ(request->body, "");
  EXPECT_EQ(request->authorization, std::nullopt);
}

TEST(SimpleRequestTest, ClosesAsCpphttplibDoes) {
  auto parse = [](const std::string& bytes) {
    std::optional<SimpleRequest> request = ParseSimpleRequest(bytes, kLimits);
    EXPECT_TRUE(request.has_value()) << bytes;
    return request.value_or(SimpleRequest{});
  };
  SimpleRequest request = parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(request.asks_close && request.close);
  request = parse("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n");  // compared exactly
  EXPECT_FALSE(request.asks_close || request.close);
  request = parse("GET / HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(!request.asks_close && request.close);
  request = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  EXPECT_FALSE(request.asks_close || request.close);
  // An empty header is dropped: the first Connection with a value counts.
  request = parse("GET / HTTP/1.1\r\nConnection: \r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(request.close);
}

TEST(SimpleRequestTest, LeavesEverythingElseToCpphttplib) {
  const std::string long_target(8200, 'a');
  const std::string long_value(8200, 'v');
  const std::string big_value(5000, 'v');
  const std::string big_body(1025, 'b');
  for (const std::string& bytes : {
           std::string("GET /a HTTP/1.1\r\nHost: x\r\n"),                  // no blank line yet
           std::string("PUT /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"),  // body still coming
           std::string("HEAD /a HTTP/1.1\r\n\r\n"),                        // no route for it
           std::string("OPTIONS /a HTTP/1.1\r\n\r\n"),
           std::string("BREW /a HTTP/1.1\r\n\r\n"),
           std::string("GET /a HTTP/2.0\r\n\r\n"),
           std::string("GET  /a HTTP/1.1\r\n\r\n"),  // cpp-httplib's split skips the empty part
           std::string("GET /a  HTTP/1.1\r\n\r\n"),
           std::string("GET HTTP/1.1\r\n\r\n"),
           std::string("GET a HTTP/1.1\r\n\r\n"),
           std::string("GET http://x/a HTTP/1.1\r\n\r\n"),
           std::string("GET /a#frag HTTP/1.1\r\n\r\n"),
           std::string("GET /a?b?c HTTP/1.1\r\n\r\n"),
           std::string("GET /a b HTTP/1.1\r\n\r\n"),
           std::string("GET /a HTTP/1.1\nHost: x\r\n\r\n"),  // a lone LF ends a line for neither
           std::string("GET /a HTTP/1.1\r\nHost: x\ry\r\n\r\n"),
           std::string("GET /a HTTP/1.1\r\nX-A: 1\r\n  folded\r\n\r\n"),
           std::string("GET /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),  // no body with GET
           std::string(
               "PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
           std::string("PUT /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\na"),
           std::string("GET /a HTTP/1.1\r\nRange: bytes=0-1\r\n\r\n"),
           std::string("GET /a HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"),
           std::string("PUT /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
           std::string("PUT /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
           std::string("PUT /a HTTP/1.1\r\nContent-Length: 1025\r\n\r\n") + big_body,
           std::string("GET /a HTTP/1.1\r\nAuthorization: Bearer a%41\r\n\r\n"),  // decoded there
           std::string("GET /a HTTP/1.1\r\nConnection: clo%73e\r\n\r\n"),
           "GET /" + long_target + " HTTP/1.1\r\n\r\n",              // 414 there
           "GET /a HTTP/1.1\r\nX-Long: " + long_value + "\r\n\r\n",  // 400 there
           "GET /a HTTP/1.1\r\nX-1: " + big_value + "\r\nX-2: " + big_value + "\r\nX-3: " +
               big_value + "\r\nX-4: " + big_value + "\r\n\r\n",  // head beyond its limit
       }) {
    EXPECT_EQ(ParseSimpleRequest(bytes, kLimits), std::nullopt) << bytes.substr(0, 120);
  }
}

}  // namespace
}  // namespace mooncake::http
