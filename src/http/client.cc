#include "http/client.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "http/held_writes.h"
#include "http/httplib_config.h"
#include "http/json_body.h"
#include "http/spin_wait.h"

namespace mooncake::http {
namespace {

bool IsIdempotentMethod(std::string_view method) {
  return method == "GET" || method == "PUT" || method == "DELETE" || method == "HEAD";
}

template <typename Duration>
void SetTimeout(Duration d, const std::function<void(time_t, time_t)>& set) {
  const int64_t micros = std::max<int64_t>(absl::ToInt64Microseconds(d), 1000);
  set(static_cast<time_t>(micros / 1000000), static_cast<time_t>(micros % 1000000));
}

// A connection's stream that sends a request in one piece (held_writes.h) and, on the first read
// after it (the wait for the answer), polls for the answer before it lets cpp-httplib's stream
// sleep in poll(2).
class SpinningStream : public ForwardingStream {
 public:
  SpinningStream(httplib::Stream& inner, absl::Duration spin)
      : ForwardingStream(inner), spin_(spin) {}

  ssize_t read(char* ptr, size_t size) override {
    if (!held_.Flush(inner_)) return -1;
    if (awaiting_answer_) {
      awaiting_answer_ = false;
      SpinUntilReadable(inner_.socket(), spin_, SpinRole::kClient);
    }
    return inner_.read(ptr, size);
  }
  ssize_t write(const char* ptr, size_t size) override {
    awaiting_answer_ = true;
    return held_.Write(inner_, ptr, size);
  }

 private:
  const absl::Duration spin_;
  bool awaiting_answer_ = false;
  HeldWrites held_;
};

}  // namespace

class HttpClient::Connection : public httplib::ClientImpl {
 public:
  Connection(const std::string& host, int port, absl::Duration spin)
      : httplib::ClientImpl(host, port), spin_(spin) {}

 private:
  // cpp-httplib's own, with the socket's stream wrapped.
  bool process_socket(const Socket& socket,
                      std::function<bool(httplib::Stream& strm)> callback) override {
    httplib::detail::SocketStream strm(socket.sock, read_timeout_sec_, read_timeout_usec_,
                                       write_timeout_sec_, write_timeout_usec_);
    SpinningStream spinning(strm, spin_);
    return callback(spinning);
  }

  const absl::Duration spin_;
};

std::string EncodeQueryValue(std::string_view value) {
  return httplib::detail::encode_query_param(std::string(value));
}

HttpClient::HttpClient(std::string host, int port, HttpClientOptions options)
    : host_(std::move(host)), port_(port), options_(std::move(options)) {
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
  auto connection = std::make_unique<Connection>(host_, port_, options_.spin);
  connection->set_keep_alive(true);
  connection->set_url_encode(false);  // targets arrive encoded (EncodeQueryValue)
  SetTimeout(options_.connect_timeout,
             [&](time_t s, time_t us) { connection->set_connection_timeout(s, us); });
  return connection;
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
  absl::Status last_error;
  for (int attempt = 1; attempt <= std::max(1, options_.max_attempts); ++attempt) {
    if (attempt > 1) options_.sleep(Backoff(attempt - 1));

    std::unique_ptr<Connection> connection = Acquire();
    SetTimeout(timeout, [&](time_t s, time_t us) {
      connection->set_read_timeout(s, us);
      connection->set_write_timeout(s, us);
    });

    httplib::Request req;
    req.method = std::string(method);
    req.path = std::string(target);
    if (options_.auth.enabled()) req.set_header("Authorization", options_.auth.BearerHeader());
    if (!body.empty() || method == "PUT" || method == "POST") {
      req.body = std::string(body);
      req.set_header("Content-Type", std::string(content_type));
    }
    HttpResult result;
    bool too_large = false;
    req.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
      if (result.body.size() + length > options_.max_response_bytes) {
        too_large = true;
        return false;
      }
      result.body.append(data, length);
      return true;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    const auto started = std::chrono::steady_clock::now();
    const bool sent = connection->send(req, res, error);
    if (too_large) {
      return MakeError(ErrorCode::RPC_FAIL,
                       fmt::format("{} http://{}:{}{}: response larger than {} bytes", method,
                                   host_, port_, target, options_.max_response_bytes));
    }
    if (sent) {
      result.status = res.status;
      result.content_type = res.get_header_value("Content-Type");
      if (call.capture_header != nullptr && call.captured != nullptr) {
        *call.captured = res.get_header_value(call.capture_header);
      }
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
