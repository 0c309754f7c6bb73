// The real `mooncake metadata` process on 127.0.0.1, driven over HTTP: SPEC.md §4, bad input, many
// clients, clean shutdown.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <latch>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/json_body.h"
#include "support/raw_socket.h"
#include "support/subprocess.h"

namespace mooncake {
namespace {

using http::HttpClient;
using http::HttpResult;
using test::RawSocket;
using test::StatusOf;
using test::Subprocess;

class MetadataBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }

  void StartServer(std::vector<std::string> extra) {
    std::vector<std::string> argv = {MOONCAKE_BINARY, "metadata", "--host",
                                     "127.0.0.1",     "--port",   "0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<Subprocess>(argv);
    std::optional<std::string> line = process_->WaitForLine("listening on", absl::Seconds(20));
    ASSERT_TRUE(line.has_value()) << "mooncake metadata did not start";
    std::smatch match;
    ASSERT_TRUE(std::regex_search(*line, match, std::regex(":([0-9]+)/metadata")));
    port_ = std::stoi(match[1]);
    client_ = std::make_unique<HttpClient>("127.0.0.1", port_);
  }

  void TearDown() override {
    if (!process_) return;
    // Every test ends with a clean shutdown on SIGTERM.
    process_->Signal(SIGTERM);
    EXPECT_EQ(process_->Wait(absl::Seconds(20)), 0);
  }

  static std::string Target(const std::string& key) {
    return "/metadata?key=" + http::EncodeQueryValue(key);
  }

  HttpResult Call(const std::string& method, const std::string& target,
                  const std::string& body = "") {
    absl::StatusOr<HttpResult> result = client_->Send(method, target, body);
    EXPECT_TRUE(result.ok()) << method << " " << target << ": " << result.status();
    return result.ok() ? *result : HttpResult{};
  }

  ErrorCode CodeOf(const HttpResult& result) {
    return ErrorCodeOf(http::StatusFromErrorResponse(result.status, result.body));
  }

  // The service still stores and returns values correctly.
  void ExpectServing() {
    const std::string key = "probe/" + std::to_string(probe_++);
    ASSERT_EQ(Call("PUT", Target(key), "probe-value").status, 200);
    HttpResult got = Call("GET", Target(key));
    EXPECT_EQ(got.status, 200);
    EXPECT_EQ(got.body, "probe-value");
    EXPECT_EQ(Call("DELETE", Target(key)).status, 200);
  }

  std::unique_ptr<Subprocess> process_;
  std::unique_ptr<HttpClient> client_;
  int port_ = 0;
  int probe_ = 0;
};

TEST_F(MetadataBinaryTest, PutGetDeleteAsSpecified) {
  const std::string key = "mooncake/ram/10.0.0.1:12345";
  const std::string descriptor = R"({"name":"10.0.0.1:12345","buffers":[]})";
  EXPECT_EQ(Call("GET", Target(key)).status, 404);
  HttpResult put = Call("PUT", Target(key), descriptor);
  EXPECT_EQ(put.status, 200);
  HttpResult got = Call("GET", Target(key));
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, descriptor);
  EXPECT_EQ(Call("PUT", Target(key), "v2").status, 200);
  EXPECT_EQ(Call("GET", Target(key)).body, "v2");
  EXPECT_EQ(Call("DELETE", Target(key)).status, 200);
  HttpResult gone = Call("GET", Target(key));
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(CodeOf(gone), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(Call("DELETE", Target(key)).status, 404);
}

TEST_F(MetadataBinaryTest, ValuesAreOpaqueBytes) {
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  const std::string key = "k\xe4y with spaces & symbols=?";
  ASSERT_EQ(Call("PUT", Target(key), binary).status, 200);
  EXPECT_EQ(Call("GET", Target(key)).body, binary);
  ASSERT_EQ(Call("PUT", Target("empty"), "").status, 200);
  HttpResult empty = Call("GET", Target("empty"));
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, "");
}

TEST_F(MetadataBinaryTest, HealthAndMetrics) {
  HttpResult health = Call("GET", "/health");
  EXPECT_EQ(health.status, 200);
  ExpectServing();
  HttpResult metrics = Call("GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("mooncake_metadata_keys 0"), std::string::npos) << metrics.body;
  EXPECT_NE(
      metrics.body.find("mooncake_http_requests_total{server=\"metadata\",route=\"/metadata\","
                        "method=\"PUT\",code=\"200\"} 1"),
      std::string::npos)
      << metrics.body;
}

TEST_F(MetadataBinaryTest, MissingEmptyRepeatedOrOverlongKey) {
  struct Case {
    std::string target;
    ErrorCode code;
  };
  const std::vector<Case> cases = {
      {"/metadata", ErrorCode::INVALID_PARAMS},
      {"/metadata?other=1", ErrorCode::INVALID_PARAMS},
      {"/metadata?key=", ErrorCode::INVALID_KEY},
      {"/metadata?key=a&key=b", ErrorCode::INVALID_PARAMS},
      {Target(std::string(4097, 'k')), ErrorCode::INVALID_KEY},
  };
  for (const Case& c : cases) {
    for (const std::string method : {"GET", "PUT", "DELETE"}) {
      HttpResult result = Call(method, c.target, "value");
      EXPECT_EQ(result.status, 400) << method << " " << c.target.substr(0, 40);
      EXPECT_EQ(CodeOf(result), c.code)
          << method << " " << c.target.substr(0, 40) << ": " << result.body;
    }
  }
  ExpectServing();
}

TEST_F(MetadataBinaryTest, UnknownPathOrMethod) {
  EXPECT_EQ(Call("GET", "/metadata/extra?key=a").status, 404);
  EXPECT_EQ(Call("GET", "/").status, 404);
  HttpResult post = Call("POST", Target("a"), "x");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(Call("PATCH", Target("a"), "x").status, 405);
  RawSocket raw(port_);
  raw.Send("BREW /metadata?key=a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(StatusOf(raw.ReadResponse(absl::Seconds(5))), 400);
  ExpectServing();
}

TEST_F(MetadataBinaryTest, MalformedQueryString) {
  for (const char* target : {"/metadata?key=%zz", "/metadata?key=abc%", "/metadata?key=%4g",
                             "/metadata?&&&", "/metadata?=value"}) {
    HttpResult result = Call("GET", target);
    EXPECT_EQ(result.status, 400) << target;
    EXPECT_EQ(CodeOf(result), ErrorCode::INVALID_PARAMS) << target;
  }
  RawSocket raw(port_);
  raw.Send("GET /metadata?key=a b c HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(StatusOf(raw.ReadResponse(absl::Seconds(5))), 400);
  ExpectServing();
}

TEST_F(MetadataBinaryTest, BodyOverTheLimit) {
  const size_t limit = 16u << 20;
  HttpResult too_big = Call("PUT", Target("big"), std::string(limit + 1, 'x'));
  EXPECT_EQ(too_big.status, 413);
  EXPECT_EQ(CodeOf(too_big), ErrorCode::BUFFER_OVERFLOW);
  EXPECT_EQ(Call("GET", Target("big")).status, 404);
  HttpResult at_limit = Call("PUT", Target("big"), std::string(limit, 'y'));
  EXPECT_EQ(at_limit.status, 200);
  EXPECT_EQ(Call("GET", Target("big")).body.size(), limit);
  ExpectServing();
}

TEST_F(MetadataBinaryTest, ConfigurableValueLimit) {
  process_->Signal(SIGTERM);
  ASSERT_EQ(process_->Wait(absl::Seconds(20)), 0);
  // Four keys of one byte with 1 KiB values fill 4100 bytes exactly.
  StartServer({"--max-value-size", "1KB", "--max-total-size", "4100"});
  EXPECT_EQ(Call("PUT", Target("a"), std::string(1024, 'a')).status, 200);
  EXPECT_EQ(Call("PUT", Target("b"), std::string(1025, 'b')).status, 413);
  for (const char* key : {"c", "d", "e"}) {
    EXPECT_EQ(Call("PUT", Target(key), std::string(1024, 'c')).status, 200);
  }
  HttpResult full = Call("PUT", Target("f"), std::string(1000, 'f'));
  EXPECT_EQ(full.status, 507);
  EXPECT_EQ(CodeOf(full), ErrorCode::NO_AVAILABLE_HANDLE);
  EXPECT_EQ(Call("DELETE", Target("c")).status, 200);
  EXPECT_EQ(Call("PUT", Target("f"), std::string(1000, 'f')).status, 200);
}

TEST_F(MetadataBinaryTest, HalfSentRequestDoesNotBlockOthers) {
  std::vector<std::unique_ptr<RawSocket>> hung;
  for (int i = 0; i < 20; ++i) {
    hung.push_back(std::make_unique<RawSocket>(port_));
    ASSERT_TRUE(hung.back()->Send(i % 2 ? "PUT /metadata?key=h HTTP/1.1\r\nContent-Length: 100\r\n"
                                          "\r\nonly-part-of-the-body"
                                        : "GET /metadata?key=h HTTP/1.1\r\nHost: loc"));
  }
  ExpectServing();
  // The server gives up on each of them (its read timeout) rather than holding them forever.
  for (auto& socket : hung) EXPECT_TRUE(socket->WaitForClose(absl::Seconds(30)));
  EXPECT_EQ(Call("GET", Target("h")).status, 404);  // no partial value was stored
  ExpectServing();
}

TEST_F(MetadataBinaryTest, ClientThatConnectsAndLeaves) {
  for (int i = 0; i < 50; ++i) {
    RawSocket raw(port_);
    if (i % 2) raw.Send("PUT /metadata?key=x HTTP/1.1\r\nContent-Length: 1000\r\n\r\nabc");
  }
  ExpectServing();
  EXPECT_EQ(Call("GET", Target("x")).status, 404);
}

TEST_F(MetadataBinaryTest, HundredsOfConcurrentKeepAliveClients) {
  constexpr int kClients = 300;
  constexpr int kRounds = 10;
  std::latch all_connected(kClients);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      HttpClient client("127.0.0.1", port_);
      auto check = [&](bool ok) {
        if (!ok) failures.fetch_add(1);
      };
      for (int round = 0; round < kRounds; ++round) {
        const std::string key = "client/" + std::to_string(c) + "/" + std::to_string(round);
        const std::string value = "value-" + std::to_string(c * 1000 + round);
        absl::StatusOr<HttpResult> put = client.Send("PUT", Target(key), value);
        check(put.ok() && put->status == 200);
        // Hold every connection open at once before going on.
        if (round == 0) all_connected.arrive_and_wait();
        absl::StatusOr<HttpResult> got = client.Get(Target(key));
        check(got.ok() && got->status == 200 && got->body == value);
        absl::StatusOr<HttpResult> shared = client.Send("PUT", Target("shared"), value);
        check(shared.ok() && shared->status == 200);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  HttpResult sample = Call("GET", Target("client/123/9"));
  EXPECT_EQ(sample.body, "value-123009");
  HttpResult shared = Call("GET", Target("shared"));
  EXPECT_EQ(shared.body.rfind("value-", 0), 0u);
  ExpectServing();
}

TEST_F(MetadataBinaryTest, SigintAlsoStopsCleanly) {
  ExpectServing();
  process_->Signal(SIGINT);
  EXPECT_EQ(process_->Wait(absl::Seconds(20)), 0);
  process_.reset();
}

}  // namespace
}  // namespace mooncake
