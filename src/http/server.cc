#include "http/server.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "common/logging.h"
#include "common/process_metrics.h"
#include "common/strings.h"
#include "http/connection_park.h"
#include "http/held_writes.h"
#include "http/httplib_config.h"
#include "http/json_body.h"
#include "http/simple_request.h"
#include "http/socket_io.h"
#include "http/spin_wait.h"
#include "http/worker_pool.h"

namespace mooncake::http {
namespace {

constexpr char kIncompleteMessage[] =
    "request incomplete: the client stopped sending before the read timeout";
// A body up to this size must have arrived whole before a worker takes the request; larger ones
// (and chunked ones) are read by the worker.
constexpr size_t kMaxParkedBody = 64u << 10;
// After a response, how long a worker waits for the connection's next request before parking it.
constexpr absl::Duration kLinger = absl::Milliseconds(20);

// What happened to the request this thread is reading, for the error handler (which cpp-httplib
// calls on the same thread) and the keep-alive loop.
struct RequestState {
  bool budget_exhausted = false;  // cut off by the byte budget: answer 413 and close
  bool read_failed = false;       // the read timed out or the peer went away: 408 and close
  bool must_close = false;        // framing cannot be trusted after this request: close
  size_t bytes_read = 0;          // of the request, so far
  size_t bytes_written = 0;       // of the response, so far
};
thread_local RequestState request_state;

// A connection's two ends, asked of the socket once: cpp-httplib asks for both on every request
// (two system calls and two address conversions each time).
struct Endpoints {
  bool known = false;
  std::string remote_ip, local_ip;
  int remote_port = 0, local_port = 0;

  void Learn(const httplib::Stream& strm) {
    if (known) return;
    strm.get_remote_ip_and_port(remote_ip, remote_port);
    strm.get_local_ip_and_port(local_ip, local_port);
    known = true;
  }
};

// A stream that lets one request read at most `budget` bytes. cpp-httplib bounds each header line
// but neither the number of lines nor a line before its newline, nor chunked bodies; this bounds
// all. With `endpoints`, the connection's addresses come from there (filled on first use).
class BoundedStream : public ForwardingStream {
 public:
  BoundedStream(httplib::Stream& inner, size_t budget, Endpoints* endpoints = nullptr)
      : ForwardingStream(inner), remaining_(budget), endpoints_(endpoints) {}

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    if (endpoints_ == nullptr) return inner_.get_remote_ip_and_port(ip, port);
    endpoints_->Learn(inner_);
    ip = endpoints_->remote_ip;
    port = endpoints_->remote_port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    if (endpoints_ == nullptr) return inner_.get_local_ip_and_port(ip, port);
    endpoints_->Learn(inner_);
    ip = endpoints_->local_ip;
    port = endpoints_->local_port;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (!held_.Flush(inner_)) {  // e.g. "100 Continue" before the body
      request_state.read_failed = true;
      return -1;
    }
    if (remaining_ == 0) {
      request_state.budget_exhausted = true;
      return -1;
    }
    ssize_t n = inner_.read(ptr, std::min(size, remaining_));
    if (n > 0) {
      remaining_ -= static_cast<size_t>(n);
      request_state.bytes_read += static_cast<size_t>(n);
    } else if (n < 0) {
      request_state.read_failed = true;
    }
    return n;
  }
  // Held until Flush() (held_writes.h), so that an answer's head and body leave together.
  ssize_t write(const char* ptr, size_t size) override {
    ssize_t n = held_.Write(inner_, ptr, size);
    if (n > 0) request_state.bytes_written += static_cast<size_t>(n);
    return n;
  }
  // Sends what is held; false if the connection failed. Call when the request is answered.
  bool Flush() { return held_.Flush(inner_); }

 private:
  size_t remaining_;
  HeldWrites held_;
  Endpoints* endpoints_;
};

// A connection made of memory: reads come from a string, writes go to another (ServeBytes).
class MemoryStream : public httplib::Stream {
 public:
  explicit MemoryStream(std::string_view in) : in_(in) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size());
    std::memcpy(ptr, in_.data(), n);
    in_.remove_prefix(n);
    return n == 0 ? -1 : static_cast<ssize_t>(n);  // the end reads like a closed connection
  }
  ssize_t write(const char* ptr, size_t size) override {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 0;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 0;
  }
  socket_t socket() const override { return INVALID_SOCKET; }
  bool exhausted() const { return in_.empty(); }
  std::string_view pending() const { return in_; }
  void Skip(size_t n) { in_.remove_prefix(std::min(n, in_.size())); }
  std::string& out() { return out_; }

 private:
  std::string_view in_;
  std::string out_;
};

// Adapts WorkerPool to cpp-httplib's task queue interface.
class PoolTaskQueue : public httplib::TaskQueue {
 public:
  PoolTaskQueue(size_t min_threads, size_t max_threads)
      : pool_(min_threads, max_threads, absl::Seconds(30)) {}
  void enqueue(std::function<void()> fn) override { pool_.Enqueue(std::move(fn)); }
  bool TryEnqueue(std::function<void()> fn) { return pool_.Enqueue(std::move(fn)); }
  void shutdown() override { pool_.Shutdown(); }

 private:
  WorkerPool pool_;
};

time_t Seconds(absl::Duration d) { return static_cast<time_t>(absl::ToInt64Seconds(d)); }
time_t Micros(absl::Duration d) {
  return static_cast<time_t>(absl::ToInt64Microseconds(d % absl::Seconds(1)));
}

}  // namespace

absl::StatusOr<std::string_view> HttpRequest::QueryParam(std::string_view name) const {
  std::string key(name);
  size_t count = query ? query->count(key) : 0;
  if (count == 0) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("missing query parameter '{}'", name));
  }
  if (count > 1) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("query parameter '{}' given {} times", name, count));
  }
  return std::string_view(query->find(key)->second);
}

HttpResponse HttpResponse::Json(const nlohmann::json& value, int status) {
  return HttpResponse{status, "application/json", DumpJson(value)};
}

HttpResponse HttpResponse::Text(std::string body, int status) {
  return HttpResponse{status, "text/plain; charset=utf-8", std::move(body)};
}

HttpResponse HttpResponse::Bytes(std::string body) {
  return HttpResponse{200, "application/octet-stream", std::move(body)};
}

HttpResponse HttpResponse::Error(ErrorCode code, std::string_view message, int status) {
  return HttpResponse{status ? status : HttpStatusFor(code), "application/json",
                      ErrorBody(code, message)};
}

HttpResponse HttpResponse::FromStatus(const absl::Status& status) {
  return Error(ErrorCodeOf(status), AsStd(status.message()));
}

class HttpServer::Impl : public httplib::Server {
 public:
  struct Route {
    HttpServer::Handler handler;
    Counter* served_ok = nullptr;  // mooncake_http_requests_total{code="200"}
    Histogram* duration = nullptr;
  };

  explicit Impl(const HttpServerOptions& options)
      : options_(options),
        park_(
            options.max_header_bytes, kMaxParkedBody, options.read_timeout,
            options.keep_alive_timeout,
            [this](int fd, uint64_t left) {
              PoolTaskQueue* pool = pool_.load();
              if (pool == nullptr || !pool->TryEnqueue([this, fd, left] { Serve(fd, left); })) {
                CloseTracked(fd);
              }
            },
            [this](int fd, uint64_t, bool partial) {
              if (partial) {
                httplib::detail::SocketStream strm(fd, 0, 0, 0, 0);
                WriteCannedError(strm, 408, ErrorCode::RPC_TIMEOUT, kIncompleteMessage);
              }
              CloseTracked(fd);
            }) {
    const size_t min_workers = options.min_workers;
    const size_t max_workers = std::max<size_t>(options.max_workers, 1);
    new_task_queue = [this, min_workers, max_workers] {
      auto* pool = new PoolTaskQueue(min_workers, max_workers);
      pool_.store(pool);
      return pool;
    };
    set_payload_max_length(options.max_body_bytes);
    // cpp-httplib's default also sets SO_REUSEPORT, which lets a second server bind the same port
    // and silently take half its connections. Only allow quick restarts (SO_REUSEADDR).
    set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    set_read_timeout(Seconds(options.read_timeout), Micros(options.read_timeout));
    set_write_timeout(Seconds(options.write_timeout), Micros(options.write_timeout));
    keep_alive_max_requests_ = std::max<size_t>(1, options.keep_alive_max_requests);
    // Only for the Keep-Alive response header; the keep-alive loop is ours.
    set_keep_alive_max_count(keep_alive_max_requests_);
    set_keep_alive_timeout(std::max<time_t>(1, Seconds(options.keep_alive_timeout)));
    keep_alive_header_ =
        fmt::format("timeout={}, max={}", keep_alive_timeout_sec_, keep_alive_max_count_);
    simple_limits_ = {options.max_header_bytes, options.max_body_bytes,
                      CPPHTTPLIB_HEADER_MAX_LENGTH, CPPHTTPLIB_REQUEST_URI_MAX_LENGTH};
    set_tcp_nodelay(options.tcp_nodelay);

    set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
      // Refuse an oversized body before the client sends it.
      uint64_t length = 0;
      if (absl::SimpleAtoi(req.get_header_value("Content-Length"), &length) &&
          length > options_.max_body_bytes) {
        res.status = 413;
        res.set_header("Connection", "close");
        return 413;
      }
      return 100;
    });
    set_error_handler(
        HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
          return HandleLibraryError(req, res);
        }));
    set_exception_handler(
        [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
          Fill(res, Thrown(req.method, req.path, ep));
        });
    // A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 §6.3), but
    // cpp-httplib would wait for one until the client closes; dispatch such requests right away.
    set_pre_routing_handler(HandlerWithResponse([this](const httplib::Request& req,
                                                       httplib::Response& res) {
      if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
        Dispatch(req, res);
        return HandlerResponse::Handled;
      }
      // cpp-httplib reads bodies only for POST, PUT, PATCH and DELETE. A body sent with any other
      // method stays unread on the socket and would be taken for the next request: answer this
      // one, then close.
      if (!httplib::detail::expect_content(req) &&
          (req.has_header("Transfer-Encoding") || req.get_header_value("Content-Length") != "0")) {
        request_state.must_close = true;
        res.set_header("Connection", "close");
      }
      return HandlerResponse::Unhandled;
    }));
    auto dispatch = [this](const httplib::Request& req, httplib::Response& res) {
      Dispatch(req, res);
    };
    Get(".*", dispatch);
    Put(".*", dispatch);
    Post(".*", dispatch);
    Delete(".*", dispatch);
    Patch(".*", dispatch);
  }

  void AddRoute(std::string_view method, std::string path, HttpServer::Handler handler) {
    Route& route = routes_[path][std::string(method)];
    route.handler = std::move(handler);
    // The series of the answers almost every call gets, looked up once (and so present at 0 from
    // the start); other statuses are looked up when they happen.
    route.served_ok = &RequestCounter(path, method, 200);
    route.duration = &DurationHistogram(path, method);
  }

  // Stops the accept loop and wakes idle keep-alive connections so they close; a request being
  // handled finishes and its response is still written (only the read side is shut).
  void StopServing() {
    {
      absl::MutexLock lock(&sockets_mu_);
      stopping_.store(true);
      for (socket_t sock : open_sockets_) ::shutdown(sock, SHUT_RD);
    }
    park_.Stop();  // closes what is parked; from now on workers close instead of parking
    stop();
    pool_.store(nullptr);
  }

  bool StartPark() { return park_.Start(); }

  // Serves the requests of one in-memory connection (HttpServer::ServeBytes).
  std::string ServeBytes(std::string_view bytes) {
    MemoryStream strm(bytes);
    for (size_t left = keep_alive_max_requests_; left > 0 && !strm.exhausted(); --left) {
      if (std::optional<SimpleRequest> simple = ParseSimple(strm.pending())) {
        strm.out() += AnswerSimple(*simple, "127.0.0.1", 0, /*close_connection=*/left == 1);
        strm.Skip(simple->size);
        if (left == 1 || simple->close) break;
        continue;
      }
      request_state = RequestState{};
      BoundedStream bounded(strm, options_.max_header_bytes + options_.max_body_bytes);
      bool connection_closed = false;
      const bool ok =
          process_request(bounded, /*close_connection=*/left == 1, connection_closed, nullptr) &&
          bounded.Flush();
      if (request_state.bytes_written == 0 && request_state.budget_exhausted) {
        WriteCannedError(strm, 413, ErrorCode::BUFFER_OVERFLOW, LimitMessage());
      }
      if (!ok || connection_closed || request_state.must_close || request_state.budget_exhausted) {
        break;
      }
    }
    return std::move(strm.out());
  }

 private:
  // A new connection, from cpp-httplib's accept loop (on a pool thread).
  bool process_and_close_socket(socket_t sock) override {
    if (!Track(sock)) {
      httplib::detail::shutdown_socket(sock);
      httplib::detail::close_socket(sock);
      return false;
    }
    Serve(sock, keep_alive_max_requests_);
    return true;
  }

  // Serves the requests of one connection, `left` more at most, while each arrives whole; then
  // parks it (the worker is free again) or closes it. Each request is read through a
  // BoundedStream. This replaces cpp-httplib's keep-alive loop, which holds a thread per
  // connection, polls idle ones every 10 ms and cannot be woken at shutdown.
  void Serve(socket_t sock, size_t left) {
    bool lingered = false;
    absl::Time partial_since = absl::InfinitePast();
    Endpoints endpoints;
    while (left > 0 && !stopping_.load()) {
      if (!lingered) {
        // The next request of a busy client is usually on its way: wait a moment for it here
        // (polling without sleeping first) rather than hand the connection to the park and back.
        lingered = true;
        if (!SpinUntilReadable(sock, options_.spin, SpinRole::kServer)) {
          WaitFor(sock, POLLIN, absl::Now() + kLinger);
        }
      }
      std::string_view peeked;
      const Pending pending = PeekRequest(sock, options_.max_header_bytes, kMaxParkedBody, &peeked);
      if (pending == Pending::kClosed) break;
      if (pending != Pending::kComplete) {
        if (pending == Pending::kPartial && partial_since == absl::InfinitePast()) {
          partial_since = absl::Now();
        }
        if (park_.Park(sock, left, partial_since)) return;  // the park has it now
        break;                                              // stopping
      }
      if (std::optional<SimpleRequest> simple = ParseSimple(peeked)) {
        endpoints.Learn(httplib::detail::SocketStream(sock, 0, 0, 0, 0));
        const std::string answer = AnswerSimple(*simple, endpoints.remote_ip, endpoints.remote_port,
                                                /*close_connection=*/left == 1);
        if (!ConsumePeeked(sock, simple->size) ||
            !SendWhole(sock, answer, absl::InfiniteFuture(), options_.write_timeout) || left == 1 ||
            simple->close) {
          break;
        }
        --left;
        lingered = false;
        partial_since = absl::InfinitePast();
        continue;
      }
      httplib::detail::SocketStream strm(
          sock, Seconds(options_.read_timeout), Micros(options_.read_timeout),
          Seconds(options_.write_timeout), Micros(options_.write_timeout));
      request_state = RequestState{};
      BoundedStream bounded(strm, options_.max_header_bytes + options_.max_body_bytes, &endpoints);
      bool connection_closed = false;
      const bool ok =
          process_request(bounded, /*close_connection=*/left == 1, connection_closed, nullptr) &&
          bounded.Flush();
      if (request_state.bytes_written == 0) {
        // cpp-httplib gives up silently inside the request line; answer what went wrong.
        if (request_state.budget_exhausted) {
          WriteCannedError(strm, 413, ErrorCode::BUFFER_OVERFLOW, LimitMessage());
        } else if (request_state.read_failed && request_state.bytes_read > 0) {
          WriteCannedError(strm, 408, ErrorCode::RPC_TIMEOUT, kIncompleteMessage);
        }
      }
      if (!ok || connection_closed || request_state.must_close || request_state.budget_exhausted) {
        break;
      }
      --left;
      lingered = false;
      partial_since = absl::InfinitePast();
    }
    CloseTracked(sock);
  }

  // The request at the start of `bytes`, if it is one AnswerSimple answers.
  std::optional<SimpleRequest> ParseSimple(std::string_view bytes) const {
    if (!options_.simple_requests) return std::nullopt;
    return ParseSimpleRequest(bytes, simple_limits_);
  }

  void CloseTracked(socket_t sock) {
    Untrack(sock);
    httplib::detail::shutdown_socket(sock);
    httplib::detail::close_socket(sock);
  }

  static void WriteCannedError(httplib::Stream& strm, int status, ErrorCode code,
                               std::string_view message) {
    const std::string body = ErrorBody(code, message);
    const std::string response = fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        status, httplib::detail::status_message(status), body.size(), body);
    strm.write(response.data(), response.size());
  }

  std::string LimitMessage() const {
    return fmt::format("request larger than the limit ({} body bytes, {} header bytes)",
                       options_.max_body_bytes, options_.max_header_bytes);
  }

  // Registers an open connection so StopServing() can wake it; false once stopping.
  bool Track(socket_t sock) {
    absl::MutexLock lock(&sockets_mu_);
    if (stopping_.load()) return false;
    open_sockets_.insert(sock);
    return true;
  }

  void Untrack(socket_t sock) {
    absl::MutexLock lock(&sockets_mu_);
    open_sockets_.erase(sock);
  }

  // What routing needs of a request, from cpp-httplib's parse or from ParseSimpleRequest.
  struct Incoming {
    HttpRequest request;
    std::optional<std::string_view> authorization;  // the first Authorization header
  };
  // The answer to a request, but for the headers that frame it (Content-Type and -Length,
  // Connection or Keep-Alive).
  struct Answer {
    HttpResponse response;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string_view route = "other";  // the metrics' label
    const Route* served = nullptr;     // the route and method that answered, if one did
  };

  Answer Respond(const Incoming& in) {
    const HttpRequest& req = in.request;
    Answer answer;
    HttpResponse& response = answer.response;
    auto path_it = routes_.find(req.path);
    const bool open = req.method == "GET" && req.path == "/health";
    if (!open && !options_.auth.AcceptsBearer(in.authorization.value_or(""))) {
      response = HttpResponse::Error(
          ErrorCode::ILLEGAL_CLIENT,
          in.authorization
              ? "wrong auth token"
              : "this service requires an auth token: send Authorization: Bearer <token>",
          401);
      answer.headers.emplace_back("WWW-Authenticate", "Bearer");
    } else if (path_it == routes_.end()) {
      response = HttpResponse::Error(ErrorCode::INVALID_PARAMS,
                                     fmt::format("no such path: {}", req.path), 404);
    } else if (absl::Status admitted =
                   !open && options_.admit ? options_.admit(req.path) : absl::OkStatus();
               !admitted.ok()) {
      answer.route = path_it->first;
      response = HttpResponse::FromStatus(admitted);
    } else {
      answer.route = path_it->first;
      auto method_it = path_it->second.find(req.method);
      if (method_it == path_it->second.end()) {
        std::vector<std::string> allowed;
        for (const auto& [method, handler] : path_it->second) allowed.push_back(method);
        response = HttpResponse::Error(
            ErrorCode::INVALID_PARAMS,
            fmt::format("method {} not allowed on {}", req.method, req.path), 405);
        answer.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
      } else {
        answer.served = &method_it->second;
        if (absl::Status encoding = ValidateQueryEncoding(req.target); !encoding.ok()) {
          response = HttpResponse::FromStatus(encoding);
        } else {
          // Caught here, on either path, so that its route counts it as the 500 it answers.
          try {
            response = method_it->second.handler(req);
          } catch (...) {
            response = Thrown(req.method, req.path, std::current_exception());
          }
        }
      }
    }
    if (options_.response_headers) {
      for (auto& header : options_.response_headers()) answer.headers.push_back(std::move(header));
    }
    return answer;
  }

  // A request cpp-httplib parsed.
  void Dispatch(const httplib::Request& req, httplib::Response& res) {
    const auto start = std::chrono::steady_clock::now();
    Incoming in{
        {req.method, req.path, req.target, req.body, req.remote_addr, req.remote_port, &req.params},
        std::nullopt};
    std::string authorization;
    if (req.has_header("Authorization")) {
      authorization = req.get_header_value("Authorization");
      in.authorization = authorization;
    }
    Answer answer = Respond(in);
    for (auto& [name, value] : answer.headers) res.set_header(name, value);
    Fill(res, std::move(answer.response));
    Record(answer.route, req.method, req.target, req.remote_addr, res.status, res.body.size(),
           start, answer.served);
  }

  // A simple request (simple_request.h): routed as Dispatch routes, answered with what cpp-httplib
  // would write (the same status line and headers, sorted by name as its header map sorts them).
  // Returns the answer's bytes. `close_connection`: this is the connection's last request.
  std::string AnswerSimple(const SimpleRequest& simple, std::string_view remote_addr,
                           int remote_port, bool close_connection) {
    const auto start = std::chrono::steady_clock::now();
    std::string decoded;
    std::string_view path = simple.path;
    if (path.find('%') != std::string_view::npos) {
      decoded = httplib::detail::decode_url(std::string(path), false);
      path = decoded;
    }
    httplib::Params params;
    if (!simple.query.empty()) httplib::detail::parse_query_text(std::string(simple.query), params);
    const Incoming in{
        {simple.method, path, simple.target, simple.body, remote_addr, remote_port, &params},
        simple.authorization};
    Answer answer;
    try {
      answer = Respond(in);
    } catch (...) {  // outside the handler (its own exceptions are answered in Respond)
      answer = Answer{Thrown(simple.method, path, std::current_exception())};
    }
    const HttpResponse& response = answer.response;

    std::vector<std::pair<std::string_view, std::string_view>> headers;
    headers.reserve(answer.headers.size() + 3);
    for (const auto& [name, value] : answer.headers) {
      // cpp-httplib's set_header drops these.
      if (name.find_first_of("\r\n") == std::string::npos &&
          value.find_first_of("\r\n") == std::string::npos) {
        headers.emplace_back(name, value);
      }
    }
    const std::string length = absl::StrCat(response.body.size());
    headers.emplace_back("Content-Type", response.content_type);
    headers.emplace_back("Content-Length", length);
    if (close_connection || simple.asks_close) {
      headers.emplace_back("Connection", "close");
    } else {
      headers.emplace_back("Keep-Alive", keep_alive_header_);
    }
    std::stable_sort(headers.begin(), headers.end(), [](const auto& a, const auto& b) {
      return std::lexicographical_compare(
          a.first.begin(), a.first.end(), b.first.begin(), b.first.end(),
          [](char x, char y) { return absl::ascii_tolower(x) < absl::ascii_tolower(y); });
    });
    std::string out = fmt::format("HTTP/1.1 {} {}\r\n", response.status,
                                  httplib::detail::status_message(response.status));
    for (const auto& [name, value] : headers) {
      out.append(name).append(": ").append(value).append("\r\n");
    }
    out.append("\r\n").append(response.body);
    Record(answer.route, simple.method, simple.target, remote_addr, response.status,
           response.body.size(), start, answer.served);
    return out;
  }

  // The answer to a request whose handler threw `thrown`.
  HttpResponse Thrown(std::string_view method, std::string_view path, std::exception_ptr thrown) {
    std::string what = "unknown exception";
    try {
      if (thrown) std::rethrow_exception(thrown);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("{}: handler for {} {} threw: {}", options_.name, method, path, what);
    return HttpResponse::Error(ErrorCode::INTERNAL_ERROR, fmt::format("internal error: {}", what));
  }

  // Errors cpp-httplib produces itself (400 unparsable request, 413, 414, ...) have no body yet;
  // give them ours. Our own error responses already carry one and pass through untouched.
  httplib::Server::HandlerResponse HandleLibraryError(const httplib::Request& req,
                                                      httplib::Response& res) {
    if (!res.body.empty()) return HandlerResponse::Unhandled;
    // After a request cpp-httplib could not parse, the stream's framing is unknown: close.
    request_state.must_close = true;
    res.set_header("Connection", "close");
    if (request_state.budget_exhausted) {
      res.status = 413;
    } else if (request_state.read_failed && res.status == 400) {
      res.status = 408;
    }
    ErrorCode code = ErrorCode::INVALID_PARAMS;
    std::string message;
    switch (res.status) {
      case 413:
        code = ErrorCode::BUFFER_OVERFLOW;
        message = LimitMessage();
        break;
      case 408:
        code = ErrorCode::RPC_TIMEOUT;
        message = kIncompleteMessage;
        break;
      case 414:
        message = "request URI too long";
        break;
      case 400:
        message = "malformed HTTP request";
        break;
      default:
        message = fmt::format("HTTP {}", res.status);
        break;
    }
    Fill(res, HttpResponse::Error(code, message, res.status));
    Record("other", req.method, req.target, req.remote_addr, res.status, res.body.size(),
           std::chrono::steady_clock::now());
    return HandlerResponse::Handled;
  }

  static void Fill(httplib::Response& res, HttpResponse response) {
    res.status = response.status;
    res.set_content(std::move(response.body), response.content_type.c_str());
  }

  Counter& RequestCounter(std::string_view route, std::string_view method, int status) {
    return options_.metrics->GetCounter("mooncake_http_requests_total",
                                        "HTTP requests served, by route and status",
                                        {{"server", options_.name},
                                         {"route", std::string(route)},
                                         {"method", std::string(method)},
                                         {"code", std::to_string(status)}});
  }

  Histogram& DurationHistogram(std::string_view route, std::string_view method) {
    return options_.metrics->GetHistogram(
        "mooncake_http_request_duration_seconds",
        "Time from routing a request to having its response",
        {{"server", options_.name}, {"route", std::string(route)}, {"method", std::string(method)}},
        MetricsRegistry::LatencyBuckets());
  }

  // `served`: the route that answered (its series are at hand), or null.
  void Record(std::string_view route, std::string_view method,
              [[maybe_unused]] std::string_view target,
              [[maybe_unused]] std::string_view remote_addr, int status,
              [[maybe_unused]] size_t body_bytes, std::chrono::steady_clock::time_point start,
              const Route* served = nullptr) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::string_view method_label =
        absl::c_linear_search(kRoutedMethods, method) ? method : "other";
    if (served != nullptr && status == 200) {
      served->served_ok->Increment();
    } else {
      RequestCounter(route, method_label, status).Increment();
    }
    (served != nullptr ? *served->duration : DurationHistogram(route, method_label))
        .Observe(seconds);
    SPDLOG_DEBUG("{} {} {} {} -> {} {}B {:.0f}us", options_.name, remote_addr, method, target,
                 status, body_bytes, seconds * 1e6);
  }

  const HttpServerOptions& options_;
  std::atomic<PoolTaskQueue*> pool_{nullptr};  // cpp-httplib's task queue while it listens
  ConnectionPark park_;
  std::map<std::string, std::map<std::string, Route, std::less<>>, std::less<>> routes_;
  std::string keep_alive_header_;  // the Keep-Alive header's value cpp-httplib writes
  SimpleRequestLimits simple_limits_;
  size_t keep_alive_max_requests_ = 1;
  std::atomic<bool> stopping_{false};
  absl::Mutex sockets_mu_;
  absl::flat_hash_set<socket_t> open_sockets_ ABSL_GUARDED_BY(sockets_mu_);
};

HttpServer::HttpServer(HttpServerOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(options_)) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(std::string_view method, std::string path, Handler handler) {
  impl_->AddRoute(method, std::move(path), std::move(handler));
}

void HttpServer::RouteJson(std::string_view method, std::string path, JsonHandler handler) {
  Route(method, std::move(path), [handler = std::move(handler)](const HttpRequest& request) {
    absl::StatusOr<nlohmann::json> body = ParseJsonRequestBody(request.body);
    if (!body.ok()) return HttpResponse::FromStatus(body.status());
    absl::StatusOr<nlohmann::json> result = handler(*body);
    if (!result.ok()) return HttpResponse::FromStatus(result.status());
    return HttpResponse::Json(*result);
  });
}

absl::Status HttpServer::Start() {
  if (listener_.joinable()) {
    return MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "server already started");
  }
  int port = options_.port;
  if (port == 0) {
    port = impl_->bind_to_any_port(options_.host);
  } else if (!impl_->bind_to_port(options_.host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return MakeError(ErrorCode::INTERNAL_ERROR,
                     fmt::format("{}: cannot listen on {}:{} (address in use or not available)",
                                 options_.name, options_.host, options_.port));
  }
  port_ = port;
  if (!impl_->StartPark()) {
    return MakeError(ErrorCode::INTERNAL_ERROR, fmt::format("{}: cannot start", options_.name));
  }
  listener_ = std::thread([this] { impl_->listen_after_bind(); });
  // The socket already listens (connections queue in the kernel); wait until the accept loop runs
  // so that an immediate Stop() reaches it.
  while (!impl_->is_running()) std::this_thread::sleep_for(std::chrono::microseconds(50));
  return absl::OkStatus();
}

std::string HttpServer::ServeBytes(std::string_view bytes) { return impl_->ServeBytes(bytes); }

void HttpServer::Stop() {
  if (!listener_.joinable()) return;
  impl_->StopServing();
  listener_.join();
}

void AddHealthAndMetricsRoutes(HttpServer& server) {
  server.Route("GET", "/health", [](const HttpRequest&) { return HttpResponse::Text("OK"); });
  MetricsRegistry* metrics = server.options().metrics;
  RegisterProcessMetrics(*metrics);
  server.Route("GET", "/metrics", [metrics](const HttpRequest&) {
    HttpResponse response = HttpResponse::Text(metrics->RenderPrometheus());
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return response;
  });
}

absl::Status ValidateQueryEncoding(std::string_view target) {
  size_t question = target.find('?');
  if (question == std::string_view::npos) return absl::OkStatus();
  for (size_t i = question + 1; i < target.size(); ++i) {
    if (target[i] != '%') continue;
    if (i + 2 >= target.size() || !absl::ascii_isxdigit(target[i + 1]) ||
        !absl::ascii_isxdigit(target[i + 2])) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("malformed query string: bad percent-escape at offset {}", i));
    }
    i += 2;
  }
  return absl::OkStatus();
}

}  // namespace mooncake::http
