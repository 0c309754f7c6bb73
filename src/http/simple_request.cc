#include "http/simple_request.h"

#include <http_parser.h>

#include <algorithm>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "common/strings.h"

namespace mooncake::http {
namespace {

// What the parser's callbacks learn. All views are into the bytes being parsed, which the
// parser is given in one piece, so an element that arrives in several callbacks is contiguous.
struct Parse {
  std::string_view url;
  std::string_view body;
  std::string_view field;
  std::string_view value;
  bool in_value = false;
  std::optional<std::string_view> authorization;
  std::optional<std::string_view> connection;
  bool content_length = false;
  bool refuse = false;  // a header that makes the request not simple
  bool complete = false;
};

void Extend(std::string_view& view, const char* at, size_t length) {
  view = view.empty()
             ? std::string_view(at, length)
             : std::string_view(view.data(), static_cast<size_t>(at + length - view.data()));
}

Parse& StateOf(http_parser* parser) { return *static_cast<Parse*>(parser->data); }

// The first non-empty value of a header routing reads (what cpp-httplib's lookup answers).
void Keep(Parse& parse, std::string_view value, std::optional<std::string_view>& slot) {
  if (value.find('%') != std::string_view::npos) {
    parse.refuse = true;  // cpp-httplib would read it decoded
  } else if (!value.empty() && !slot) {
    slot = value;
  }
}

// A header line is complete: keep what routing needs, refuse what cpp-httplib treats specially.
void EndHeader(Parse& parse) {
  if (!parse.in_value) return;
  parse.in_value = false;
  const std::string_view name = parse.field;
  // cpp-httplib trims spaces and tabs, drops a header whose value is then empty, and
  // percent-decodes every value.
  std::string_view value = parse.value;
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  parse.field = {};
  parse.value = {};
  const auto is = [name](std::string_view header) {
    return absl::EqualsIgnoreCase(AsAbsl(name), AsAbsl(header));
  };
  if (is("Content-Length")) {
    parse.content_length = true;
  } else if (is("Transfer-Encoding") || is("Expect") || is("Range") || is("Upgrade")) {
    parse.refuse = true;
  } else if (is("Authorization")) {
    Keep(parse, value, parse.authorization);
  } else if (is("Connection")) {
    Keep(parse, value, parse.connection);
  }
}

int OnUrl(http_parser* parser, const char* at, size_t length) {
  Extend(StateOf(parser).url, at, length);
  return 0;
}

int OnHeaderField(http_parser* parser, const char* at, size_t length) {
  Parse& parse = StateOf(parser);
  EndHeader(parse);
  Extend(parse.field, at, length);
  return 0;
}

int OnHeaderValue(http_parser* parser, const char* at, size_t length) {
  Parse& parse = StateOf(parser);
  parse.in_value = true;
  Extend(parse.value, at, length);
  return 0;
}

int OnHeadersComplete(http_parser* parser) {
  EndHeader(StateOf(parser));
  return 0;
}

int OnBody(http_parser* parser, const char* at, size_t length) {
  Extend(StateOf(parser).body, at, length);
  return 0;
}

int OnMessageComplete(http_parser* parser) {
  StateOf(parser).complete = true;
  http_parser_pause(parser, 1);  // one request only: a pipelined next one stays unread
  return 0;
}

// The head's lines as cpp-httplib's reader splits them: each must end in CRLF with no other CR
// or LF in it, fit its limit, and not continue the previous line (obsolete folding).
bool PlainLines(std::string_view head, const SimpleRequestLimits& limits) {
  bool first = true;
  while (!head.empty()) {
    const size_t lf = head.find('\n');
    if (lf == std::string_view::npos || lf == 0 || head[lf - 1] != '\r') return false;
    const std::string_view line = head.substr(0, lf - 1);
    if (line.find('\r') != std::string_view::npos) return false;
    if (lf + 1 > (first ? limits.max_target_bytes : limits.max_line_bytes)) return false;
    if (!first && !line.empty() && (line[0] == ' ' || line[0] == '\t')) return false;
    first = false;
    head.remove_prefix(lf + 1);
  }
  return true;
}

}  // namespace

std::optional<SimpleRequest> ParseSimpleRequest(std::string_view bytes,
                                                const SimpleRequestLimits& limits) {
  const size_t blank = bytes.find("\r\n\r\n");
  if (blank == std::string_view::npos) return std::nullopt;
  const size_t head_size = blank + 4;
  if (head_size > limits.max_head_bytes || !PlainLines(bytes.substr(0, head_size), limits)) {
    return std::nullopt;
  }

  // The request line exactly as cpp-httplib splits it: method, target, version, one space apart.
  const std::string_view line = bytes.substr(0, bytes.find("\r\n"));
  SimpleRequest request;
  const size_t space = line.find(' ');
  if (space == std::string_view::npos || line.rfind(' ') == space) return std::nullopt;
  request.method = line.substr(0, space);
  if (!absl::c_linear_search(kRoutedMethods, request.method)) return std::nullopt;
  const std::string_view version = line.substr(line.rfind(' ') + 1);
  const bool http_1_0 = version == "HTTP/1.0";
  if (!http_1_0 && version != "HTTP/1.1") return std::nullopt;
  request.target = line.substr(space + 1, line.size() - version.size() - space - 2);
  if (request.target.empty() || request.target[0] != '/' ||
      request.target.find_first_of(" #") != std::string_view::npos) {
    return std::nullopt;
  }
  const size_t question = request.target.find('?');
  request.path = request.target.substr(0, question);
  if (question != std::string_view::npos) {
    request.query = request.target.substr(question + 1);
    if (request.query.find('?') != std::string_view::npos) return std::nullopt;
  }

  static constexpr http_parser_settings settings = {.on_url = OnUrl,
                                                    .on_header_field = OnHeaderField,
                                                    .on_header_value = OnHeaderValue,
                                                    .on_headers_complete = OnHeadersComplete,
                                                    .on_body = OnBody,
                                                    .on_message_complete = OnMessageComplete};
  Parse parse;
  http_parser parser;
  http_parser_init(&parser, HTTP_REQUEST);
  parser.data = &parse;
  const size_t parsed = http_parser_execute(&parser, &settings, bytes.data(), bytes.size());
  const bool finished = parse.complete && HTTP_PARSER_ERRNO(&parser) == HPE_PAUSED;
  if (!finished || parser.upgrade || parse.refuse || parse.url != request.target ||
      (parse.content_length && request.method == "GET") ||
      parse.body.size() > limits.max_body_bytes || parsed != head_size + parse.body.size()) {
    return std::nullopt;
  }
  request.body = parse.body;
  request.authorization = parse.authorization;
  request.asks_close = parse.connection == "close";
  request.close = request.asks_close || (http_1_0 && parse.connection != "Keep-Alive");
  request.size = parsed;
  return request;
}

}  // namespace mooncake::http
