// HttpClient against an in-process HttpServer: reuse, retries and backoff, timeouts, limits.
#include "http/client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "http/server.h"
#include "support/raw_socket.h"

namespace mooncake::http {
namespace {

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<HttpServer>(
        HttpServerOptions{.name = "client-test", .host = "127.0.0.1", .metrics = &metrics_});
    server_->Route("GET", "/port", [](const HttpRequest& request) {
      return HttpResponse::Text(std::to_string(request.remote_port));
    });
    auto flaky = [this](const HttpRequest&) {
      if (flaky_calls_.fetch_add(1) < 2) {
        return HttpResponse::Error(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "not yet", 503);
      }
      return HttpResponse::Text("finally");
    };
    server_->Route("GET", "/flaky", flaky);
    server_->Route("POST", "/flaky", flaky);
    server_->Route("GET", "/slow", [this](const HttpRequest&) {
      release_slow_.WaitForNotificationWithTimeout(absl::Seconds(10));
      return HttpResponse::Text("late");
    });
    server_->Route("GET", "/big", [](const HttpRequest&) {
      return HttpResponse::Bytes(std::string(1 << 20, 'b'));
    });
    ASSERT_TRUE(server_->Start().ok());
  }

  void TearDown() override {
    if (!release_slow_.HasBeenNotified()) release_slow_.Notify();
    server_->Stop();  // joins a /slow handler that may still be leaving its wait
  }

  HttpClientOptions RecordingOptions() {
    HttpClientOptions options;
    options.jitter_seed = 42;
    options.sleep = [this](absl::Duration d) { sleeps_.push_back(d); };
    return options;
  }

  // What the handlers use is declared before the server, so it outlives the server's threads.
  MetricsRegistry metrics_;
  std::atomic<int> flaky_calls_{0};
  absl::Notification release_slow_;
  std::vector<absl::Duration> sleeps_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(ClientTest, ReusesItsConnection) {
  HttpClient client("127.0.0.1", server_->port());
  std::set<std::string> ports;
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<HttpResult> result = client.Get("/port");
    ASSERT_TRUE(result.ok()) << result.status();
    ports.insert(result->body);
  }
  EXPECT_EQ(ports.size(), 1u);
}

TEST_F(ClientTest, RetriesIdempotentCallsWithGrowingBackoff) {
  HttpClient client("127.0.0.1", server_->port(), RecordingOptions());
  absl::StatusOr<HttpResult> result = client.Get("/flaky");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "finally");
  EXPECT_EQ(flaky_calls_.load(), 3);
  ASSERT_EQ(sleeps_.size(), 2u);
  // Jittered within [b/2, b] for b = 20 ms, then 40 ms.
  EXPECT_GE(sleeps_[0], absl::Milliseconds(10));
  EXPECT_LE(sleeps_[0], absl::Milliseconds(20));
  EXPECT_GE(sleeps_[1], absl::Milliseconds(20));
  EXPECT_LE(sleeps_[1], absl::Milliseconds(40));
}

TEST_F(ClientTest, DoesNotRepeatANonIdempotentCallTheServerSaw) {
  HttpClient client("127.0.0.1", server_->port(), RecordingOptions());
  absl::StatusOr<HttpResult> result = client.Send("POST", "/flaky", "{}", "application/json");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->status, 503);
  EXPECT_EQ(flaky_calls_.load(), 1);
  EXPECT_TRUE(sleeps_.empty());

  absl::StatusOr<nlohmann::json> marked =
      client.CallJson("POST", "/flaky", nlohmann::json::object(), CallOptions{.idempotent = true});
  EXPECT_EQ(flaky_calls_.load(), 3);
  EXPECT_EQ(ErrorCodeOf(marked.status()), ErrorCode::RPC_FAIL);  // "finally" is not JSON
}

TEST_F(ClientTest, UnreachableServerIsRpcFailAfterEveryAttempt) {
  const int port = server_->port();
  server_->Stop();
  HttpClientOptions options = RecordingOptions();
  options.max_attempts = 3;
  HttpClient client("127.0.0.1", port, options);
  absl::StatusOr<HttpResult> get = client.Get("/port");
  EXPECT_EQ(ErrorCodeOf(get.status()), ErrorCode::RPC_FAIL);
  EXPECT_NE(std::string(get.status().message()).find("attempt 3"), std::string::npos)
      << get.status();
  // A POST that never reached the server is safe to repeat, so it is retried too.
  absl::StatusOr<HttpResult> post = client.Send("POST", "/flaky", "{}");
  EXPECT_EQ(ErrorCodeOf(post.status()), ErrorCode::RPC_FAIL);
  EXPECT_EQ(sleeps_.size(), 4u);
}

TEST_F(ClientTest, PerCallTimeout) {
  HttpClientOptions options = RecordingOptions();
  options.max_attempts = 1;
  HttpClient client("127.0.0.1", server_->port(), options);
  absl::StatusOr<HttpResult> result =
      client.Get("/slow", CallOptions{.timeout = absl::Milliseconds(200)});
  EXPECT_EQ(ErrorCodeOf(result.status()), ErrorCode::RPC_TIMEOUT) << result.status();
  if (!release_slow_.HasBeenNotified()) release_slow_.Notify();
  // The client is still usable afterwards.
  absl::StatusOr<HttpResult> next = client.Get("/port");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->status, 200);
}

TEST_F(ClientTest, ResponseLargerThanTheLimitIsRefused) {
  HttpClientOptions options;
  options.max_response_bytes = 1000;
  HttpClient client("127.0.0.1", server_->port(), options);
  EXPECT_EQ(ErrorCodeOf(client.Get("/big").status()), ErrorCode::RPC_FAIL);
  HttpClient roomy("127.0.0.1", server_->port());
  absl::StatusOr<HttpResult> big = roomy.Get("/big");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->body.size(), 1u << 20);
}

// A request's head and body are sent at once, so that the server wakes once for it.
TEST(ClientWireTest, ARequestLeavesInOnePiece) {
  int port = 0;
  const int listener = test::ListenOnLoopback(&port);
  ASSERT_GE(listener, 0);

  const std::string body(3000, 'k');
  HttpClient client("127.0.0.1", port);
  std::thread caller([&] {
    absl::StatusOr<HttpResult> result =
        client.Send("POST", "/v1/Anything", body, "application/octet-stream");
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->body, "ok");
  });
  const int connection = accept(listener, nullptr, nullptr);
  ASSERT_GE(connection, 0);
  const std::string head = "POST /v1/Anything HTTP/1.1\r\n";
  std::string request;
  while (!request.ends_with("\r\n\r\n" + body)) {
    char buffer[4096];
    const ssize_t n = recv(connection, buffer, sizeof(buffer), 0);
    ASSERT_GT(n, 0) << request;
    request.append(buffer, static_cast<size_t>(n));
  }
  EXPECT_TRUE(request.starts_with(head)) << request;
  EXPECT_EQ(test::DataSegmentsIn(connection), 1);
  const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  ASSERT_EQ(send(connection, answer.data(), answer.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(answer.size()));
  caller.join();
  close(connection);
  close(listener);
}

// A server on 127.0.0.1 that answers each request it reads with the next of its scripted replies,
// on the connection the request came on, and closes that connection after a reply marked so.
class ScriptedServer {
 public:
  struct Reply {
    std::string bytes;
    bool close_after = false;
  };

  explicit ScriptedServer(std::vector<Reply> replies) : replies_(std::move(replies)) {
    listener_ = test::ListenOnLoopback(&port_);
    EXPECT_GE(listener_, 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedServer() {
    shutdown(listener_, SHUT_RDWR);
    thread_.join();
    close(listener_);
  }

  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  // Waits until `n` connections were closed by the server.
  bool WaitForClosed(int n) {
    absl::MutexLock lock(&mu_);
    wanted_ = n;
    return mu_.AwaitWithTimeout(absl::Condition(this, &ScriptedServer::ClosedAsWanted),
                                absl::Seconds(10));
  }

 private:
  bool ClosedAsWanted() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ >= wanted_; }

  void Serve() {
    size_t next = 0;
    while (next < replies_.size()) {
      const int connection = accept(listener_, nullptr, nullptr);
      if (connection < 0) return;
      connections_.fetch_add(1);
      std::string pending;
      bool open = true;
      while (open && next < replies_.size()) {
        // One request: a head, and as many body bytes as its Content-Length says.
        size_t end = std::string::npos;
        while ((end = RequestEnd(pending)) == std::string::npos) {
          char buffer[4096];
          const ssize_t n = recv(connection, buffer, sizeof(buffer), 0);
          if (n <= 0) {
            open = false;
            break;
          }
          pending.append(buffer, static_cast<size_t>(n));
        }
        if (!open) break;
        pending.erase(0, end);
        const Reply& reply = replies_[next++];
        send(connection, reply.bytes.data(), reply.bytes.size(), MSG_NOSIGNAL);
        if (reply.close_after) open = false;
      }
      close(connection);
      absl::MutexLock lock(&mu_);
      ++closed_;
    }
  }

  static size_t RequestEnd(const std::string& bytes) {
    const size_t head = bytes.find("\r\n\r\n");
    if (head == std::string::npos) return std::string::npos;
    size_t length = 0;
    const size_t at = bytes.find("Content-Length: ");
    if (at != std::string::npos && at < head) length = std::stoul(bytes.substr(at + 16));
    return bytes.size() >= head + 4 + length ? head + 4 + length : std::string::npos;
  }

  std::vector<Reply> replies_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  absl::Mutex mu_;
  int closed_ ABSL_GUARDED_BY(mu_) = 0;
  int wanted_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

// Every way HTTP/1.1 frames an answer: a length, chunks, an interim answer before the final one,
// and a body that ends with the connection (which is then not reused).
TEST(ClientWireTest, ReadsEveryFramingOfAnAnswer) {
  ScriptedServer server({
      {"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nX-Epoch: 9\r\nx-epoch: 10\r\n"
       "Content-Length: 5\r\n\r\nhello"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n"},
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nz"},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", /*close_after=*/true},
      {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"},
  });
  HttpClient client("127.0.0.1", server.port());
  std::string epoch;
  absl::StatusOr<HttpResult> result =
      client.Get("/a", CallOptions{.capture_header = "x-EPOCH", .captured = &epoch});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "hello");
  EXPECT_EQ(result->content_type, "text/plain");
  EXPECT_EQ(epoch, "9");  // the first of the name, whatever its case

  result = client.Send("POST", "/b", "{}", "application/json");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->body, "ok!!!");
  EXPECT_EQ(result->content_type, "");

  result = client.Get("/c");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, 201);
  EXPECT_EQ(result->body, "z");

  result = client.Get("/d");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->body, "until the end");
  EXPECT_EQ(server.connections(), 1);

  result = client.Send("POST", "/e", "{}", "application/json");  // on a new connection
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, 404);
  EXPECT_EQ(server.connections(), 2);
}

// A kept connection the server has closed since is not used: a call that cannot be repeated
// (a POST) goes out on a new one instead of failing.
TEST(ClientWireTest, AConnectionTheServerClosedIsNotReused) {
  ScriptedServer server({
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", /*close_after=*/true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"},
  });
  HttpClientOptions options;
  options.max_attempts = 1;
  HttpClient client("127.0.0.1", server.port(), options);
  absl::StatusOr<HttpResult> result = client.Send("POST", "/a", "{}", "application/json");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->body, "one");
  ASSERT_TRUE(server.WaitForClosed(1));
  result = client.Send("POST", "/b", "{}", "application/json");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->body, "two");
  EXPECT_EQ(server.connections(), 2);
}

// An answer that is not HTTP, or ends before its body does, is a failed call.
TEST(ClientWireTest, AMalformedOrCutAnswerIsRpcFail) {
  ScriptedServer server({
      {"HTTP/1.1 two hundred\r\n\r\n", /*close_after=*/true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", /*close_after=*/true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
  });
  HttpClientOptions options;
  options.max_attempts = 1;
  HttpClient client("127.0.0.1", server.port(), options);
  for (const char* path : {"/garbage", "/cut"}) {
    absl::StatusOr<HttpResult> result = client.Send("POST", path, "{}", "application/json");
    EXPECT_EQ(ErrorCodeOf(result.status()), ErrorCode::RPC_FAIL) << path << ": " << result.status();
  }
  absl::StatusOr<HttpResult> result = client.Get("/fine");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->body, "ok");
}

TEST(ClientUrlTest, ParsesBaseUrls) {
  auto parsed = HttpClient::ForUrl("http://localhost:8080/metadata");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->first->host(), "localhost");
  EXPECT_EQ(parsed->first->port(), 8080);
  EXPECT_EQ(parsed->second, "/metadata");
  auto bare = HttpClient::ForUrl("10.0.0.1:50051");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->first->port(), 50051);
  EXPECT_EQ(bare->second, "");
  auto v6 = HttpClient::ForUrl("http://[::1]:9003");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->first->host(), "::1");
  for (const char* bad : {"http://host", "host:0", "host:99999", ":80", "https://h:1", "h:x"}) {
    EXPECT_FALSE(HttpClient::ForUrl(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace mooncake::http
