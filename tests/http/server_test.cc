// HttpServer in-process: routing, the uniform error body, limits, timeouts, metrics, shutdown.
#include "http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/auth.h"
#include "fmt/format.h"
#include "http/client.h"
#include "http/json_body.h"
#include "support/raw_socket.h"

namespace mooncake::http {
namespace {

using test::RawSocket;
using test::StatusOf;

void AddTestRoutes(HttpServer& server) {
  server.Route("GET", "/echo", [](const HttpRequest& request) {
    absl::StatusOr<std::string_view> word = request.QueryParam("word");
    if (!word.ok()) return HttpResponse::FromStatus(word.status());
    return HttpResponse::Text(std::string(*word));
  });
  server.Route("PUT", "/echo", [](const HttpRequest& request) {
    return HttpResponse::Bytes(std::string(request.body));
  });
  server.RouteJson(
      "POST", "/v1/increment", [](const nlohmann::json& body) -> absl::StatusOr<nlohmann::json> {
        if (!body.is_object() || !body.contains("n") || !body["n"].is_number_integer()) {
          return MakeError(ErrorCode::INVALID_PARAMS, "'n' must be an integer");
        }
        return nlohmann::json{{"n", body["n"].get<int64_t>() + 1}};
      });
  server.Route("GET", "/throw",
               [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
  server.Route("GET", "/peer", [](const HttpRequest& request) {
    return HttpResponse::Text(fmt::format("{}:{}", request.remote_addr, request.remote_port));
  });
  server.Route("GET", "/missing", [](const HttpRequest&) {
    return HttpResponse::FromStatus(MakeError(ErrorCode::OBJECT_NOT_FOUND, "no such thing"));
  });
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions options;
    options.name = "test";
    options.host = "127.0.0.1";
    options.max_body_bytes = 1024;
    options.max_header_bytes = 16384;
    options.read_timeout = absl::Milliseconds(300);
    options.keep_alive_timeout = absl::Hours(1);
    options.metrics = &metrics_;
    server_ = std::make_unique<HttpServer>(options);
    AddTestRoutes(*server_);
    AddHealthAndMetricsRoutes(*server_);
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<HttpClient>("127.0.0.1", server_->port());
  }

  // The server still answers a well-formed request correctly.
  void ExpectHealthy() {
    absl::StatusOr<HttpResult> result = client_->Get("/echo?word=still-here");
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->body, "still-here");
  }

  static ErrorCode CodeOfBody(const std::string& body) {
    return ErrorCodeOf(StatusFromErrorResponse(400, body));
  }

  MetricsRegistry metrics_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(ServerTest, RoutesByPathAndMethod) {
  ExpectHealthy();
  absl::StatusOr<HttpResult> put = client_->Send("PUT", "/echo", "payload");
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->body, "payload");
  EXPECT_EQ(put->content_type, "application/octet-stream");

  absl::StatusOr<HttpResult> unknown = client_->Get("/nowhere");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(CodeOfBody(unknown->body), ErrorCode::INVALID_PARAMS);

  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.Send("DELETE /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  std::string response = raw.ReadResponse(absl::Seconds(5));
  EXPECT_EQ(StatusOf(response), 405);
  EXPECT_NE(response.find("Allow: GET, PUT"), std::string::npos) << response;
}

TEST_F(ServerTest, HandlerErrorsUseTheUniformBody) {
  absl::StatusOr<HttpResult> missing = client_->Get("/missing");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  nlohmann::json body = nlohmann::json::parse(missing->body);
  EXPECT_EQ(body["error"]["code"], -704);
  EXPECT_EQ(body["error"]["message"], "no such thing");

  absl::StatusOr<HttpResult> thrown = client_->Get("/throw");
  ASSERT_TRUE(thrown.ok());
  EXPECT_EQ(thrown->status, 500);
  EXPECT_EQ(CodeOfBody(thrown->body), ErrorCode::INTERNAL_ERROR);
  ExpectHealthy();
}

// A handler that throws is answered 500 and counted as such under its route, whether the
// request was one the server answers itself or one cpp-httplib parsed (a Range header).
TEST_F(ServerTest, AHandlerThatThrowsIsCountedUnderItsRoute) {
  absl::StatusOr<HttpResult> simple = client_->Get("/throw");
  ASSERT_TRUE(simple.ok());
  EXPECT_EQ(simple->status, 500);
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.Send("GET /throw HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n"));
  const std::string other = raw.ReadResponse(absl::Seconds(5));
  EXPECT_EQ(StatusOf(other), 500) << other;
  const std::string text = metrics_.RenderPrometheus();
  EXPECT_NE(text.find("mooncake_http_requests_total{server=\"test\",route=\"/throw\","
                      "method=\"GET\",code=\"500\"} 2"),
            std::string::npos)
      << text;
  ExpectHealthy();
}

TEST_F(ServerTest, QueryParametersMustBePresentOnceAndWellEncoded) {
  for (const char* target :
       {"/echo", "/echo?word=a&word=b", "/echo?word=%zz", "/echo?word=%4", "/echo?&&=&"}) {
    absl::StatusOr<HttpResult> result = client_->Get(target);
    ASSERT_TRUE(result.ok()) << target;
    EXPECT_EQ(result->status, 400) << target;
    EXPECT_EQ(CodeOfBody(result->body), ErrorCode::INVALID_PARAMS) << target;
  }
  absl::StatusOr<HttpResult> encoded = client_->Get("/echo?word=" + EncodeQueryValue("a b&c=d%"));
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(encoded->body, "a b&c=d%");
}

TEST_F(ServerTest, JsonRoutes) {
  absl::StatusOr<nlohmann::json> ok = client_->CallJson("POST", "/v1/increment", {{"n", 41}});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)["n"], 42);

  for (const std::string& bad :
       {std::string("{\"n\": "), std::string("[1,2"), std::string("{\"n\": \"x\"}"),
        std::string("\xff\xfe"), std::string(100, '[')}) {
    absl::StatusOr<HttpResult> result =
        client_->Send("POST", "/v1/increment", bad, "application/json");
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result->status, 400) << bad;
    EXPECT_EQ(CodeOfBody(result->body), ErrorCode::INVALID_PARAMS) << bad;
  }
  absl::StatusOr<nlohmann::json> wrong_type =
      client_->CallJson("POST", "/v1/increment", {{"n", "1"}});
  EXPECT_EQ(ErrorCodeOf(wrong_type.status()), ErrorCode::INVALID_PARAMS);
  ExpectHealthy();
}

TEST_F(ServerTest, OversizedBodyGets413) {
  absl::StatusOr<HttpResult> result = client_->Send("PUT", "/echo", std::string(1025, 'x'));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, 413);
  EXPECT_EQ(CodeOfBody(result->body), ErrorCode::BUFFER_OVERFLOW);

  absl::StatusOr<HttpResult> at_limit = client_->Send("PUT", "/echo", std::string(1024, 'y'));
  ASSERT_TRUE(at_limit.ok());
  EXPECT_EQ(at_limit->status, 200);
  EXPECT_EQ(at_limit->body.size(), 1024u);
  ExpectHealthy();
}

TEST_F(ServerTest, OversizedChunkedBodyIsCutOff) {
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.Send("PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::string chunk = "400\r\n" + std::string(1024, 'z') + "\r\n";
  bool sent = true;
  for (int i = 0; i < 64 && sent; ++i) sent = raw.Send(chunk);
  std::string response = raw.ReadUntilClose(absl::Seconds(10));
  EXPECT_EQ(StatusOf(response), 413) << response.substr(0, 200);
  ExpectHealthy();
}

TEST_F(ServerTest, HeaderFloodIsCutOff) {
  RawSocket raw(server_->port());
  std::string request = "GET /echo?word=a HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 2000; ++i) request += "X-Filler-" + std::to_string(i) + ": value\r\n";
  raw.Send(request + "\r\n");
  std::string response = raw.ReadUntilClose(absl::Seconds(10));
  EXPECT_EQ(StatusOf(response), 413) << response.substr(0, 200);

  RawSocket endless(server_->port());
  endless.Send("GET /echo?word=a HTTP/1.1\r\nX-Long: ");
  bool sent = true;
  for (int i = 0; i < 64 && sent; ++i) sent = endless.Send(std::string(1024, 'a'));
  EXPECT_TRUE(endless.WaitForClose(absl::Seconds(10)));
  ExpectHealthy();
}

TEST_F(ServerTest, LongRequestLineGets414) {
  RawSocket raw(server_->port());
  raw.Send("GET /echo?word=" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(StatusOf(raw.ReadResponse(absl::Seconds(5))), 414);
  ExpectHealthy();
}

TEST_F(ServerTest, GarbageAndUnknownMethodsGet400) {
  const std::string tls_hello("\x16\x03\x01\x02\x00\x01\r\n\r\n", 10);
  for (const std::string& junk :
       {std::string("FOO /echo HTTP/1.1\r\nHost: x\r\n\r\n"), tls_hello, std::string("GET\r\n\r\n"),
        std::string("GET /echo HTTP/9.9\r\n\r\n")}) {
    RawSocket raw(server_->port());
    raw.Send(junk);
    std::string response = raw.ReadUntilClose(absl::Seconds(5));  // closed after the 400
    EXPECT_EQ(StatusOf(response), 400) << junk;
    EXPECT_NE(response.find("\"code\":-600"), std::string::npos) << response;
  }
  ExpectHealthy();
}

TEST_F(ServerTest, HalfSentRequestLineTimesOut) {
  RawSocket slow(server_->port());
  ASSERT_TRUE(slow.Send("GET /echo?wo"));
  ExpectHealthy();
  std::string response = slow.ReadUntilClose(absl::Seconds(10));
  EXPECT_EQ(StatusOf(response), 408) << response;
}

TEST_F(ServerTest, HalfSentRequestTimesOutWhileOthersAreServed) {
  RawSocket slow(server_->port());
  ASSERT_TRUE(slow.Send("GET /echo?word=a HTTP/1.1\r\nHo"));
  ExpectHealthy();
  std::string response = slow.ReadUntilClose(absl::Seconds(10));
  EXPECT_EQ(StatusOf(response), 408) << response;
  EXPECT_NE(response.find("\"code\":-901"), std::string::npos) << response;
  ExpectHealthy();
}

TEST_F(ServerTest, RequestLineBeyondTheHeaderBudgetGets413) {
  RawSocket raw(server_->port());
  raw.Send("GET /echo?word=" + std::string(20000, 'a'));
  std::string response = raw.ReadUntilClose(absl::Seconds(10));
  EXPECT_EQ(StatusOf(response), 413) << response.substr(0, 200);
  EXPECT_NE(response.find("\"code\":-10"), std::string::npos);
  ExpectHealthy();
}

TEST_F(ServerTest, BodyOnAGetIsNotTakenForTheNextRequest) {
  for (const std::string& request :
       {std::string("GET /echo?word=a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"),
        std::string(
            "GET /echo?word=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")}) {
    RawSocket raw(server_->port());
    // The body arrives after the server has answered the head; it must not become a request.
    ASSERT_TRUE(raw.Send(request));
    std::string first = raw.ReadResponse(absl::Seconds(5));
    EXPECT_EQ(StatusOf(first), 200) << first;
    raw.Send("value\r\n0\r\n\r\nGET /echo?word=b HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string rest = raw.ReadUntilClose(absl::Seconds(5));
    EXPECT_EQ(rest.find("HTTP/1.1 400"), std::string::npos) << rest;
  }
  ExpectHealthy();
}

TEST_F(ServerTest, KeepAliveConnectionServesManyRequests) {
  RawSocket raw(server_->port());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(raw.Send("GET /echo?word=w" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string response = raw.ReadResponse(absl::Seconds(5));
    ASSERT_EQ(StatusOf(response), 200);
    EXPECT_NE(response.find("\r\n\r\nw" + std::to_string(i)), std::string::npos);
  }
}

// The server asks a connection's addresses once and keeps them for its later requests: each
// request still sees its own connection's peer, with two connections taking turns.
TEST_F(ServerTest, EveryRequestSeesItsConnectionsPeer) {
  RawSocket a(server_->port());
  RawSocket b(server_->port());
  auto local_end = [](const RawSocket& raw) {
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::getsockname(raw.fd(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    return fmt::format("127.0.0.1:{}", ntohs(addr.sin_port));
  };
  const std::string a_end = local_end(a);
  const std::string b_end = local_end(b);
  ASSERT_NE(a_end, b_end);
  for (int i = 0; i < 3; ++i) {
    for (auto [raw, end] : {std::pair{&a, a_end}, std::pair{&b, b_end}}) {
      ASSERT_TRUE(raw->Send("GET /peer HTTP/1.1\r\nHost: x\r\n\r\n"));
      const std::string response = raw->ReadResponse(absl::Seconds(5));
      ASSERT_EQ(StatusOf(response), 200) << response;
      EXPECT_TRUE(response.ends_with("\r\n\r\n" + end)) << response << " expected " << end;
    }
  }
}

// Head and body are written at once: the client wakes once for an answer, not twice.
TEST_F(ServerTest, AnAnswerLeavesInOnePiece) {
  RawSocket raw(server_->port());
  const std::string body = R"({"n": 41})";
  ASSERT_TRUE(
      raw.Send("POST /v1/increment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body));
  const std::string response = raw.ReadResponse(absl::Seconds(5));
  EXPECT_EQ(StatusOf(response), 200);
  EXPECT_TRUE(response.ends_with("\r\n\r\n{\"n\":42}")) << response;
  EXPECT_EQ(test::DataSegmentsIn(raw.fd()), 1);
}

// Each route's series of successful answers is there (at 0) before its first request.
TEST_F(ServerTest, RouteSeriesExistFromTheStart) {
  const std::string text = metrics_.RenderPrometheus();
  EXPECT_NE(text.find("mooncake_http_requests_total{server=\"test\",route=\"/v1/increment\","
                      "method=\"POST\",code=\"200\"} 0"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("mooncake_http_request_duration_seconds_count{server=\"test\","
                      "route=\"/v1/increment\",method=\"POST\"} 0"),
            std::string::npos);
}

TEST_F(ServerTest, CountsRequestsInMetrics) {
  ExpectHealthy();
  client_->Get("/nowhere").IgnoreError();
  absl::StatusOr<HttpResult> metrics = client_->Get("/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("mooncake_http_requests_total{server=\"test\",route=\"/echo\","
                               "method=\"GET\",code=\"200\"} 1"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("route=\"other\",method=\"GET\",code=\"404\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("mooncake_http_request_duration_seconds_count{server=\"test\","
                               "route=\"/echo\",method=\"GET\"} 1"),
            std::string::npos);
}

TEST_F(ServerTest, StopClosesIdleKeepAliveConnections) {
  // keep_alive_timeout is an hour: Stop must not wait for idle clients to leave.
  RawSocket idle(server_->port());
  ASSERT_TRUE(idle.Send("GET /echo?word=a HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(StatusOf(idle.ReadResponse(absl::Seconds(5))), 200);
  server_->Stop();
  EXPECT_TRUE(idle.WaitForClose(absl::Seconds(5)));
  server_->Stop();  // idempotent
}

// Requests our clients send are answered without cpp-httplib's request handling
// (simple_request.h), the rest by cpp-httplib: either way the answer is, byte for byte, what
// cpp-httplib alone writes. Two servers, one answering simple requests itself and one not, get the
// same connections (ServeBytes), with and without an auth token.
TEST(SimpleRequestServerTest, AnswersAreWhatCpphttplibWrites) {
  const std::string body = R"({"n": 41})";
  const std::string increment =
      "POST /v1/increment HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  const std::vector<std::string> connections = {
      "GET /echo?word=hello HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /ech%6F?word=a+b%21 HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /echo?word=a&word=b HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /echo?word=%zz HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
      "DELETE /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
      "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\npayload",
      "PUT /echo HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /v1/increment HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{\"n\":",
      "GET /throw HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /peer HTTP/1.0\r\n\r\nGET /peer HTTP/1.1\r\n\r\n",  // HTTP/1.0 closes
      "GET /peer HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /peer HTTP/1.1\r\n\r\n",
      "GET /health HTTP/1.1\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
      "GET /health HTTP/1.1\r\nConnection: Close\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
      // Four in a row: the third is the connection's last (keep_alive_max_requests).
      increment + increment + increment + increment,
      // Simple requests and others on one connection.
      "GET /echo?word=1 HTTP/1.1\r\n\r\nPUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\nGET /echo?word=2 HTTP/1.1\r\n\r\n",
      "GET /echo?word=1 HTTP/1.1\r\nRange: bytes=0-0\r\n\r\nGET /echo?word=2 HTTP/1.1\r\n\r\n",
      "GET /echo?word=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /echo?word=2 HTTP/1.1\r\n\r\n",
      "PUT /echo HTTP/1.1\r\nContent-Length: 2048\r\n\r\n" + std::string(2048, 'x'),
      "GET /echo?word=x HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
      "GET /echo?word=x HTTP/1.1\r\nX A: 1\r\nContent Length: 5\r\n\r\n",
      "GET /echo?word=x HTTP/1.1\nHost: x\n\n",
      "BREW /echo HTTP/1.1\r\n\r\n",
      "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n",
      // Authorization: right, wrong, twice (the first counts), empty, percent-encoded.
      "GET /echo?word=a HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n",
      "GET /echo?word=a HTTP/1.1\r\nAuthorization:  Bearer s3cret \t\r\n\r\n",
      "GET /echo?word=a HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\n",
      "GET /echo?word=a HTTP/1.1\r\nAuthorization: Bearer wrong\r\n"
      "Authorization: Bearer s3cret\r\n\r\n",
      "GET /echo?word=a HTTP/1.1\r\nAuthorization:\r\nAuthorization: Bearer s3cret\r\n\r\n",
      "GET /echo?word=a HTTP/1.1\r\nAuthorization: Bearer s3cre%74\r\n\r\n",
  };
  for (const bool auth : {false, true}) {
    std::unique_ptr<HttpServer> servers[2];
    MetricsRegistry metrics[2];
    for (int i = 0; i < 2; ++i) {
      HttpServerOptions options;
      options.name = "test";
      options.max_body_bytes = 1024;
      options.max_header_bytes = 16384;
      options.keep_alive_max_requests = 3;
      options.metrics = &metrics[i];
      options.simple_requests = i == 0;
      if (auth) options.auth = *AuthToken::FromString("s3cret");
      options.response_headers = [] {
        return std::vector<std::pair<std::string, std::string>>{
            {"X-Epoch", "7"}, {"a-first", "by name"}, {"X-Bad", "a\r\nb"}};
      };
      servers[i] = std::make_unique<HttpServer>(options);
      AddTestRoutes(*servers[i]);
      AddHealthAndMetricsRoutes(*servers[i]);
    }
    for (const std::string& bytes : connections) {
      const std::string answer = servers[0]->ServeBytes(bytes);
      EXPECT_EQ(answer, servers[1]->ServeBytes(bytes))
          << "auth " << auth << ": " << bytes.substr(0, 200);
      EXPECT_FALSE(answer.empty()) << bytes.substr(0, 200);
    }
  }
}

// Requests that arrive together on a connection are each answered, in order: the server takes out
// of the socket exactly the bytes of a simple request it answers, leaving the next one whole,
// whichever way that one is answered.
TEST_F(ServerTest, PipelinedRequestsAreEachAnswered) {
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.Send(
      "GET /echo?word=one HTTP/1.1\r\n\r\nPUT /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\ntwo"
      "PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n"));
  for (const char* word : {"one", "two", "three"}) {
    const std::string response = raw.ReadResponse(absl::Seconds(5));
    EXPECT_EQ(StatusOf(response), 200) << word << ": " << response;
    EXPECT_TRUE(response.ends_with(std::string("\r\n\r\n") + word)) << response;
  }
}

TEST(ServerStartTest, BindFailureNamesTheAddress) {
  HttpServer first(HttpServerOptions{.name = "first", .host = "127.0.0.1", .port = 0});
  ASSERT_TRUE(first.Start().ok());
  HttpServer second(HttpServerOptions{.name = "second", .host = "127.0.0.1", .port = first.port()});
  absl::Status status = second.Start();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(std::string(status.message()).find("127.0.0.1:" + std::to_string(first.port())),
            std::string::npos)
      << status;
}

}  // namespace
}  // namespace mooncake::http
