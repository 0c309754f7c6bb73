// The requests an HttpServer answers without cpp-httplib's request handling: one that arrived
// whole and uses nothing but a method with a route, an origin-form target, plain header lines and
// a Content-Length body. That is every call of our own clients; cpp-httplib's handling of it (its
// header maps compared a character at a time, regular expressions, a dozen allocations) cost more
// than the master's work on a one-key call.
//
// Parsed with Debian's http-parser. Whatever cpp-httplib could read otherwise, or answers with an
// error of its own, is not simple: chunked bodies, Expect, Range, Upgrade, obsolete line folding,
// lines cut by a lone LF, a header value cpp-httplib would percent-decode where we read it, lines
// or heads beyond cpp-httplib's or our limits, a body with GET. The server hands those to
// cpp-httplib, which answers them as it always did.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace mooncake::http {

// The methods an HttpServer route can have (server.h); the rest are never simple.
inline constexpr std::string_view kRoutedMethods[] = {"GET", "PUT", "POST", "DELETE", "PATCH"};

struct SimpleRequestLimits {
  size_t max_head_bytes = 0;  // request line and header lines, with the blank line
  size_t max_body_bytes = 0;
  size_t max_line_bytes = 0;    // a header line, with its CRLF (cpp-httplib: 400 beyond)
  size_t max_target_bytes = 0;  // the request line, with its CRLF (cpp-httplib: 414 beyond)
};

// Views into the bytes given to ParseSimpleRequest.
struct SimpleRequest {
  std::string_view method;  // GET, PUT, POST, DELETE or PATCH
  std::string_view target;  // as sent: path, then '?' and the query if any
  std::string_view path;    // the target before '?', not percent-decoded
  std::string_view query;   // the target after '?' ("" if none)
  std::string_view body;
  // The first Authorization header, without surrounding blanks; unset if there is none (or only
  // empty ones, which cpp-httplib drops).
  std::optional<std::string_view> authorization;
  // The first Connection header is "close" (the answer says so), or the request is HTTP/1.0
  // without "Connection: Keep-Alive": either way the connection closes after the answer.
  bool asks_close = false;
  bool close = false;
  size_t size = 0;  // bytes of the request, head and body: where the next one starts
};

// The request at the start of `bytes` if it is simple and whole there; nullopt otherwise (not
// simple, malformed, or not all of it in `bytes`).
std::optional<SimpleRequest> ParseSimpleRequest(std::string_view bytes,
                                                const SimpleRequestLimits& limits);

}  // namespace mooncake::http
