// The HTTP/JSON server every mooncake service is built on.
//
// One HttpServer listens on one address. Routes are exact paths with one handler per method; the
// server answers unknown paths with 404, known paths with a method they lack with 405 (and an Allow
// header), and every error with the uniform JSON error body of json_body.h. It bounds what a client
// can make it hold: request headers (`max_header_bytes`), bodies (`max_body_bytes`, 413 beyond),
// JSON nesting, and time (per-read timeouts). Each request is counted and timed in the metrics
// registry (`mooncake_http_requests_total`, `mooncake_http_request_duration_seconds`) and written
// to the access log at debug level.
//
// Thread safety: register routes before Start(); after that, handlers run concurrently on the
// worker pool and must be thread-safe. Start/Stop may be called from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "common/error_code.h"
#include "common/metrics.h"
#include "nlohmann/json.hpp"

namespace mooncake::http {

struct HttpServerOptions {
  std::string name = "http";  // the `server` label of this server's metrics and log lines
  std::string host = "0.0.0.0";
  int port = 0;  // 0 = an ephemeral port; port() tells which after Start()
  size_t max_body_bytes = 16u << 20;
  size_t max_header_bytes = 64u << 10;  // request line plus all header lines
  size_t min_workers = 4;
  size_t max_workers = 1024;  // threads, each serving one connection at a time
  absl::Duration read_timeout = absl::Seconds(5);
  absl::Duration write_timeout = absl::Seconds(5);
  absl::Duration keep_alive_timeout = absl::Seconds(5);
  bool tcp_nodelay = false;  // TCP_NODELAY on accepted connections (answers leave whole anyway)
  size_t keep_alive_max_requests = 100000;
  // After answering, how long a worker polls the connection for its next request before it sleeps
  // (spin_wait.h): a busy client's next request then costs no thread wakeup. 0 never spins.
  absl::Duration spin = absl::Microseconds(50);
  MetricsRegistry* metrics = &MetricsRegistry::Default();
  // Enabled: every request but `GET /health` must carry `Authorization: Bearer <token>`; others
  // are answered 401 with the uniform error body (ILLEGAL_CLIENT).
  AuthToken auth;
  // Asked before an authorized request (other than `GET /health`) reaches its route: an error is
  // the answer instead (e.g. a master that does not lead answers UNAVAILABLE_IN_CURRENT_STATUS).
  std::function<absl::Status(std::string_view path)> admit;
  // Answer simple requests (simple_request.h: every call of our own clients) without cpp-httplib's
  // request handling, with the bytes it would write. False hands every request to cpp-httplib
  // (tests compare the two).
  bool simple_requests = true;
  // Headers added to every answer, computed per answer (e.g. the master's epoch).
  std::function<std::vector<std::pair<std::string, std::string>>()> response_headers;
};

// A request as handlers see it. Views into the server's own request object, valid during the call.
struct HttpRequest {
  std::string_view method;
  std::string_view path;
  std::string_view target;  // path and raw query, as sent
  std::string_view body;
  std::string_view remote_addr;
  int remote_port = 0;
  const std::multimap<std::string, std::string>* query = nullptr;  // decoded query parameters

  // The value of query parameter `name`. INVALID_PARAMS if it is absent or given more than once.
  absl::StatusOr<std::string_view> QueryParam(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;

  static HttpResponse Json(const nlohmann::json& value, int status = 200);
  static HttpResponse Text(std::string body, int status = 200);
  static HttpResponse Bytes(std::string body);  // application/octet-stream, 200
  // The uniform error body; the HTTP status defaults to the one for `code`.
  static HttpResponse Error(ErrorCode code, std::string_view message, int status = 0);
  // Error(ErrorCodeOf(status), status.message()). REQUIRES: !status.ok().
  static HttpResponse FromStatus(const absl::Status& status);
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Receives the parsed JSON body (null for an empty body); its value is answered with 200, its
  // error with the uniform error body.
  using JsonHandler = std::function<absl::StatusOr<nlohmann::json>(const nlohmann::json&)>;

  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // Stop()

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // REQUIRES: called before Start(); `method` is GET, PUT, POST, DELETE or PATCH; `path` is exact.
  void Route(std::string_view method, std::string path, Handler handler);
  void RouteJson(std::string_view method, std::string path, JsonHandler handler);

  // Binds and starts serving on a background thread. Fails with a message naming the address if
  // the address cannot be bound.
  absl::Status Start();

  // Stops accepting, closes idle keep-alive connections, lets running handlers finish, and joins
  // every thread. Idempotent.
  void Stop();

  int port() const { return port_; }
  const HttpServerOptions& options() const { return options_; }

  // Serves the requests in `bytes` as if they had arrived on one connection, and returns every
  // byte the server wrote back: the same parsing, limits, authentication and routes, without a
  // socket (for tests and fuzzing). Works whether or not the server was started.
  std::string ServeBytes(std::string_view bytes);

 private:
  class Impl;
  HttpServerOptions options_;
  std::unique_ptr<Impl> impl_;
  std::thread listener_;
  int port_ = 0;
};

// Adds `GET /health` (200 "OK") and `GET /metrics` (the server's registry in Prometheus text
// format).
void AddHealthAndMetricsRoutes(HttpServer& server);

// OK if every '%' in the query part of `target` starts a two-hex-digit escape; INVALID_PARAMS
// naming the offending position otherwise.
absl::Status ValidateQueryEncoding(std::string_view target);

}  // namespace mooncake::http
