// HTTP/JSON client for the control plane: connection reuse, per-call timeouts, and retries with
// exponential backoff for idempotent calls.
//
// A call that cannot reach the server, or gets 503, is retried when it is idempotent (GET, PUT,
// DELETE, or a POST the caller marks so). A non-idempotent call is retried only when the connection
// could not be established, since then the server never saw it. Transport failures come back as
// RPC_FAIL, timeouts as RPC_TIMEOUT; an HTTP error response carries its own code (json_body.h).
//
// Thread safety: HttpClient is thread-safe; concurrent calls use separate pooled connections.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "nlohmann/json.hpp"

namespace mooncake::http {

struct HttpClientOptions {
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration timeout = absl::Seconds(10);  // per attempt, for reading and for writing
  int max_attempts = 4;                        // first try included
  absl::Duration initial_backoff = absl::Milliseconds(20);
  absl::Duration max_backoff = absl::Seconds(1);
  size_t max_idle_connections = 16;
  size_t max_response_bytes = 64u << 20;  // RPC_FAIL beyond
  uint64_t jitter_seed = 0;               // 0: seeded from the system
  // How to wait between attempts; tests inject one that records instead of sleeping.
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };
  AuthToken auth;  // enabled: every request carries `Authorization: Bearer <token>`
  // How long a call polls for its answer before it sleeps (spin_wait.h): most answers of the
  // control plane come sooner than a sleeping thread is woken. A batch of 128 keys takes the
  // master 50-150 us (GetReplicaList, PutStart): with 50 us here those waits ended in a sleep and a
  // wakeup, now they do not (the spin yields the CPU between polls). 0 never spins.
  absl::Duration spin = absl::Microseconds(300);
};

struct CallOptions {
  absl::Duration timeout = absl::ZeroDuration();  // zero: HttpClientOptions::timeout
  // Whether the call may be repeated safely. Unset: GET, PUT and DELETE are, POST is not.
  std::optional<bool> idempotent;
  // If both are set: the answer's header of that name is stored there ("" if absent).
  const char* capture_header = nullptr;
  std::string* captured = nullptr;
};

struct HttpResult {
  int status = 0;
  std::string body;
  std::string content_type;
};

// Percent-encodes `value` for use as a query parameter value.
std::string EncodeQueryValue(std::string_view value);

class HttpClient {
 public:
  HttpClient(std::string host, int port, HttpClientOptions options = {});
  ~HttpClient();

  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // "http://host:port[/path]" or "host:port" -> client for host:port, and the path ("" if none).
  static absl::StatusOr<std::pair<std::unique_ptr<HttpClient>, std::string>> ForUrl(
      std::string_view url, HttpClientOptions options = {});

  // Sends one request and returns whatever status the server answered; only transport failures
  // (after retries) are errors.
  absl::StatusOr<HttpResult> Send(std::string_view method, std::string_view target,
                                  std::string_view body = {},
                                  std::string_view content_type = "application/octet-stream",
                                  const CallOptions& call = {});

  absl::StatusOr<HttpResult> Get(std::string_view target, const CallOptions& call = {}) {
    return Send("GET", target, {}, {}, call);
  }

  // Sends `body` as a JSON body (none when it is empty) and returns the body of a 2xx response.
  // An error response becomes the status it carries.
  absl::StatusOr<std::string> CallText(std::string_view method, std::string_view target,
                                       std::string_view body, const CallOptions& call = {});

  // Sends `request` as a JSON body (none when it is null) and returns the parsed 2xx response.
  // An error response becomes the status it carries.
  absl::StatusOr<nlohmann::json> CallJson(std::string_view method, std::string_view target,
                                          const nlohmann::json& request,
                                          const CallOptions& call = {});

  const std::string& host() const { return host_; }
  int port() const { return port_; }

 private:
  class Connection;  // one keep-alive connection

  std::unique_ptr<Connection> Acquire();
  void Release(std::unique_ptr<Connection> connection);
  absl::Duration Backoff(int attempt);

  const std::string host_;
  const int port_;
  const HttpClientOptions options_;
  const std::string host_header_;  // "host:port", the Host header's value

  absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
  absl::BitGen jitter_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::http
