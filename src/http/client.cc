#include "http/client.h"

#include <http_parser.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "http/httplib_config.h"
#include "http/json_body.h"
#include "http/socket_io.h"
#include "http/spin_wait.h"

namespace mooncake::http {
namespace {

bool IsIdempotentMethod(std::string_view method) {
  return method == "GET" || method == "PUT" || method == "DELETE" || method == "HEAD";
}

// `d` (at least a millisecond) as cpp-httplib takes timeouts: seconds and microseconds.
std::pair<time_t, time_t> SecondsAndMicros(absl::Duration d) {
  const int64_t micros = std::max<int64_t>(absl::ToInt64Microseconds(d), 1000);
  return {static_cast<time_t>(micros / 1000000), static_cast<time_t>(micros % 1000000)};
}

// What the parser's callbacks learn of an answer.
struct Answer {
  HttpResult* result = nullptr;
  const char* capture = nullptr;  // a header to keep, or null
  std::string* captured = nullptr;
  size_t max_body = 0;
  bool head = false;  // the answer to a HEAD request has no body
  bool too_large = false;
  bool complete = false;
  bool content_type_seen = false, capture_seen = false;
  std::string field;  // of the header being read
  bool in_value = false;
  std::string* value = nullptr;  // where the header being read goes, or null
};

Answer& AnswerOf(http_parser* parser) { return *static_cast<Answer*>(parser->data); }

int OnHeaderField(http_parser* parser, const char* at, size_t length) {
  Answer& answer = AnswerOf(parser);
  if (answer.in_value) {
    answer.in_value = false;
    answer.field.clear();
  }
  answer.field.append(at, length);
  return 0;
}

int OnHeaderValue(http_parser* parser, const char* at, size_t length) {
  Answer& answer = AnswerOf(parser);
  if (!answer.in_value) {
    answer.in_value = true;
    answer.value = nullptr;
    // The first of each, as cpp-httplib's lookup answered.
    if (!answer.content_type_seen && absl::EqualsIgnoreCase(answer.field, "Content-Type")) {
      answer.content_type_seen = true;
      answer.value = &answer.result->content_type;
    } else if (answer.capture != nullptr && !answer.capture_seen &&
               absl::EqualsIgnoreCase(answer.field, answer.capture)) {
      answer.capture_seen = true;
      answer.value = answer.captured;
    }
  }
  if (answer.value != nullptr) answer.value->append(at, length);
  return 0;
}

int OnHeadersComplete(http_parser* parser) { return AnswerOf(parser).head ? 1 : 0; }

int OnBody(http_parser* parser, const char* at, size_t length) {
  Answer& answer = AnswerOf(parser);
  if (answer.result->body.size() + length > answer.max_body) {
    answer.too_large = true;
    return 1;  // stops the parser
  }
  answer.result->body.append(at, length);
  return 0;
}

int OnMessageComplete(http_parser* parser) {
  Answer& answer = AnswerOf(parser);
  if (parser->status_code < 200) {
    // An interim answer ("100 Continue"): the final one follows.
    answer.result->content_type.clear();
    if (answer.captured != nullptr) answer.captured->clear();
    answer.content_type_seen = answer.capture_seen = false;
    return 0;
  }
  answer.complete = true;
  http_parser_pause(parser, 1);
  return 0;
}

}  // namespace

// One keep-alive connection: a request leaves in one piece, and its answer is polled for before
// the thread sleeps (spin_wait.h), then parsed with http-parser. (cpp-httplib's client built a
// header map per request and matched each answer's status line with a regular expression; it
// connects the socket still.)
class HttpClient::Connection {
 public:
  Connection(const std::string& host, int port, const HttpClientOptions& options)
      : host_(host), port_(port), options_(options) {}
  ~Connection() { Close(); }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends `request` and reads its answer into `result`, within `timeout` for each. Success, or
  // what failed: Connection/ConnectionTimeout (nothing was sent), Write, Read. `too_large`: the
  // answer's body outgrew options_.max_response_bytes.
  httplib::Error Exchange(std::string_view request, bool head, absl::Duration timeout,
                          const CallOptions& call, HttpResult& result, bool& too_large) {
    if (sock_ != INVALID_SOCKET && !Alive()) Close();
    if (sock_ == INVALID_SOCKET) {
      httplib::Error error = httplib::Error::Success;
      const auto [connect_s, connect_us] = SecondsAndMicros(options_.connect_timeout);
      sock_ = httplib::detail::create_client_socket(host_, "", port_, AF_UNSPEC,
                                                    CPPHTTPLIB_TCP_NODELAY, nullptr, connect_s,
                                                    connect_us, 0, 0, 0, 0, "", error);
      if (sock_ == INVALID_SOCKET) {
        return error == httplib::Error::ConnectionTimeout ? error : httplib::Error::Connection;
      }
    }
    if (!SendWhole(sock_, request, absl::Now() + timeout)) {
      Close();
      return httplib::Error::Write;
    }
    const httplib::Error error = Read(head, absl::Now() + timeout, call, result, too_large);
    if (error != httplib::Error::Success) Close();
    return error;
  }

 private:
  // Whether a kept connection can carry a request: the server has not closed it (nor sent
  // anything unasked).
  bool Alive() const {
    char byte;
    const ssize_t n = ::recv(sock_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  httplib::Error Read(bool head, absl::Time deadline, const CallOptions& call, HttpResult& result,
                      bool& too_large) {
    static constexpr http_parser_settings settings = {.on_header_field = OnHeaderField,
                                                      .on_header_value = OnHeaderValue,
                                                      .on_headers_complete = OnHeadersComplete,
                                                      .on_body = OnBody,
                                                      .on_message_complete = OnMessageComplete};
    Answer answer;
    answer.result = &result;
    if (call.capture_header != nullptr && call.captured != nullptr) {
      answer.capture = call.capture_header;
      answer.captured = call.captured;
      call.captured->clear();
    }
    answer.max_body = options_.max_response_bytes;
    answer.head = head;
    http_parser parser;
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = &answer;
    thread_local std::vector<char> buffer(CPPHTTPLIB_RECV_BUFSIZ);
    SpinUntilReadable(sock_, options_.spin, SpinRole::kClient);
    for (;;) {
      const ssize_t n = ::recv(sock_, buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return httplib::Error::Read;
        if (!WaitFor(sock_, POLLIN, deadline)) return httplib::Error::Read;
        continue;
      }
      // At the end of the stream the parser learns that it ended (an answer without a length
      // ends there).
      const size_t parsed =
          http_parser_execute(&parser, &settings, n == 0 ? nullptr : buffer.data(), n);
      if (answer.too_large) {
        too_large = true;
        return httplib::Error::Read;
      }
      if (answer.complete) {
        result.status = static_cast<int>(parser.status_code);
        // Bytes beyond the answer, or a server that closes: the connection is not reused.
        if (parsed < static_cast<size_t>(n) || n == 0 || !http_should_keep_alive(&parser)) Close();
        return httplib::Error::Success;
      }
      if (n == 0 || HTTP_PARSER_ERRNO(&parser) != HPE_OK) return httplib::Error::Read;
    }
  }

  void Close() {
    if (sock_ == INVALID_SOCKET) return;
    httplib::detail::shutdown_socket(sock_);
    httplib::detail::close_socket(sock_);
    sock_ = INVALID_SOCKET;
  }

  const std::string& host_;
  const int port_;
  const HttpClientOptions& options_;
  socket_t sock_ = INVALID_SOCKET;
};

std::string EncodeQueryValue(std::string_view value) {
  return httplib::detail::encode_query_param(std::string(value));
}

HttpClient::HttpClient(std::string host, int port, HttpClientOptions options)
    : host_(std::move(host)),
      port_(port),
      options_(std::move(options)),
      host_header_(host_.find(':') == std::string::npos ? fmt::format("{}:{}", host_, port_)
                                                        : fmt::format("[{}]:{}", host_, port_)) {
  if (options_.jitter_seed != 0) {
    std::seed_seq seq{options_.jitter_seed};
    jitter_ = absl::BitGen(seq);
  }
}

HttpClient::~HttpClient() = default;

absl::StatusOr<std::pair<std::unique_ptr<HttpClient>, std::string>> HttpClient::ForUrl(
    std::string_view url, HttpClientOptions options) {
  absl::string_view rest = AsAbsl(url);
  if (absl::ConsumePrefix(&rest, "https://")) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("https is not supported: {}", url));
  }
  absl::ConsumePrefix(&rest, "http://");
  size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  std::string path = slash == absl::string_view::npos ? "" : std::string(rest.substr(slash));
  size_t colon = authority.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(authority.substr(colon + 1), &port) || port <= 0 || port > 65535) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("expected http://host:port[/path], got '{}'", url));
  }
  std::string host(authority.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(std::make_unique<HttpClient>(host, port, std::move(options)), path);
}

std::unique_ptr<HttpClient::Connection> HttpClient::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Connection> connection = std::move(idle_.back());
      idle_.pop_back();
      return connection;
    }
  }
  return std::make_unique<Connection>(host_, port_, options_);
}

void HttpClient::Release(std::unique_ptr<Connection> connection) {
  absl::MutexLock lock(&mu_);
  if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(connection));
}

absl::Duration HttpClient::Backoff(int attempt) {
  absl::Duration backoff = options_.initial_backoff;
  for (int i = 1; i < attempt && backoff < options_.max_backoff; ++i) backoff *= 2;
  backoff = std::min(backoff, options_.max_backoff);
  absl::MutexLock lock(&mu_);
  // Full jitter in [backoff/2, backoff], so clients that failed together do not retry together.
  return backoff * absl::Uniform(jitter_, 0.5, 1.0);
}

absl::StatusOr<HttpResult> HttpClient::Send(std::string_view method, std::string_view target,
                                            std::string_view body, std::string_view content_type,
                                            const CallOptions& call) {
  const bool idempotent = call.idempotent.value_or(IsIdempotentMethod(method));
  const absl::Duration timeout =
      call.timeout > absl::ZeroDuration() ? call.timeout : options_.timeout;
  // The request, whole: targets arrive encoded (EncodeQueryValue).
  std::string request;
  request.reserve(method.size() + target.size() + host_header_.size() + body.size() + 128);
  request.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ");
  request.append(host_header_).append("\r\n");
  if (options_.auth.enabled()) {
    request.append("Authorization: ").append(options_.auth.BearerHeader()).append("\r\n");
  }
  if (!body.empty() || method == "PUT" || method == "POST") {
    request.append("Content-Type: ").append(content_type).append("\r\n");
    request.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  request.append("\r\n").append(body);

  absl::Status last_error;
  for (int attempt = 1; attempt <= std::max(1, options_.max_attempts); ++attempt) {
    if (attempt > 1) options_.sleep(Backoff(attempt - 1));

    std::unique_ptr<Connection> connection = Acquire();
    HttpResult result;
    bool too_large = false;
    const auto started = std::chrono::steady_clock::now();
    const httplib::Error error =
        connection->Exchange(request, method == "HEAD", timeout, call, result, too_large);
    if (too_large) {
      return MakeError(ErrorCode::RPC_FAIL,
                       fmt::format("{} http://{}:{}{}: response larger than {} bytes", method,
                                   host_, port_, target, options_.max_response_bytes));
    }
    if (error == httplib::Error::Success) {
      Release(std::move(connection));
      if (result.status == 503 && idempotent && attempt < options_.max_attempts) {
        last_error = StatusFromErrorResponse(result.status, result.body);
        continue;
      }
      return result;
    }

    // Transport failure: the connection is in an unknown state and is dropped.
    const bool never_sent =
        error == httplib::Error::Connection || error == httplib::Error::ConnectionTimeout;
    const bool timed_out =
        error == httplib::Error::ConnectionTimeout ||
        (error == httplib::Error::Read &&
         std::chrono::steady_clock::now() - started >= absl::ToChronoMicroseconds(timeout));
    last_error = MakeError(timed_out ? ErrorCode::RPC_TIMEOUT : ErrorCode::RPC_FAIL,
                           fmt::format("{} http://{}:{}{}: {} (attempt {})", method, host_, port_,
                                       target, httplib::to_string(error), attempt));
    if (!idempotent && !never_sent) break;
  }
  return last_error;
}

absl::StatusOr<std::string> HttpClient::CallText(std::string_view method, std::string_view target,
                                                 std::string_view body, const CallOptions& call) {
  absl::StatusOr<HttpResult> result = Send(method, target, body, "application/json", call);
  if (!result.ok()) return result.status();
  if (result->status >= 400) return StatusFromErrorResponse(result->status, result->body);
  return std::move(result->body);
}

absl::StatusOr<nlohmann::json> HttpClient::CallJson(std::string_view method,
                                                    std::string_view target,
                                                    const nlohmann::json& request,
                                                    const CallOptions& call) {
  absl::StatusOr<std::string> body =
      CallText(method, target, request.is_null() ? std::string() : request.dump(), call);
  if (!body.ok()) return body.status();
  if (body->empty()) return nlohmann::json();
  nlohmann::json parsed = nlohmann::json::parse(*body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return MakeError(ErrorCode::RPC_FAIL,
                     fmt::format("{} {}: response is not valid JSON", method, target));
  }
  return parsed;
}

}  // namespace mooncake::http
