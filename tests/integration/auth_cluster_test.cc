// Authentication (SPEC.md §8) on a real cluster started with --auth-token-file: every surface
// refuses a caller without the token (master RPC and admin ports, metadata service, store HTTP
// port, TCP data protocol, shared-memory socket), `/health` stays open, and clients holding the
// token work over TCP and shared memory alike. Also, without a token: an anonymous unmount of a
// store's segment no longer empties it for good (the store mounts it again by itself).
#include <fstream>
#include <string>

#include "engine/tcp/tcp_protocol.h"
#include "http/client.h"
#include "integration/cluster_fixture.h"
#include "nlohmann/json.hpp"
#include "support/raw_socket.h"

namespace mooncake {
namespace {

using nlohmann::json;

constexpr char kToken[] = "s3cret-token-0123456789";

class AuthClusterTest : public StoreClusterTest {
 protected:
  void SetUp() override {
    auth_token_file_ = TempPath("token");
    std::ofstream(auth_token_file_) << kToken << "\n";
    StoreClusterTest::SetUp();
  }
  void TearDown() override {
    StoreClusterTest::TearDown();
    unlink(auth_token_file_.c_str());
  }

  static http::HttpClientOptions With(std::string_view token) {
    http::HttpClientOptions options;
    options.max_attempts = 1;
    if (!token.empty()) options.auth = *AuthToken::FromString(token);
    return options;
  }

  // The HTTP status `method target` gets on 127.0.0.1:port with `token` ("" = none).
  static int StatusOf(int port, std::string_view token, std::string_view method,
                      std::string_view target, std::string_view body = {}) {
    http::HttpClient http("127.0.0.1", port, With(token));
    absl::StatusOr<http::HttpResult> result = http.Send(method, target, body, "application/json");
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return -1;
    if (result->status == 401) {
      // The uniform error body, naming what is missing.
      json error = json::parse(result->body, nullptr, false);
      EXPECT_TRUE(error.is_object() && error.contains("error")) << result->body;
      if (error.is_object() && error.contains("error")) {
        EXPECT_EQ(error["error"]["code"], static_cast<int>(ErrorCode::ILLEGAL_CLIENT));
      }
    }
    return result->status;
  }

  int MasterPort() const {
    return std::stoi(master_address_.substr(master_address_.rfind(':') + 1));
  }
  int MetadataPort() const {
    const size_t colon = metadata_url_.rfind(':');
    return std::stoi(metadata_url_.substr(colon + 1));
  }
};

TEST_F(AuthClusterTest, EveryHttpSurfaceRefusesCallersWithoutTheToken) {
  auto client = MakeClient(/*shm=*/true);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  absl::StatusOr<std::vector<client::SegmentInfo>> segments = client->ListSegments();
  ASSERT_TRUE(segments.ok());
  const client::SegmentInfo victim = (*segments)[0];
  const std::string unmount = json{{"client_id", victim.client_id}, {"name", victim.name}}.dump();
  const std::string mount =
      json{{"client_id", "intruder"},
           {"segment", {{"name", "10.9.9.9:1"}, {"base", 4096}, {"size", 1 << 20}}}}
          .dump();
  for (std::string_view token : {"", "wrong-token"}) {
    // Master RPC: the anonymous unmount and the mount of a segment nobody serves are refused.
    EXPECT_EQ(StatusOf(MasterPort(), token, "POST", "/v1/UnmountSegment", unmount), 401);
    EXPECT_EQ(StatusOf(MasterPort(), token, "POST", "/v1/MountSegment", mount), 401);
    EXPECT_EQ(StatusOf(MasterPort(), token, "POST", "/v1/ListSegments", "{}"), 401);
    // Admin port.
    EXPECT_EQ(StatusOf(master_admin_port_, token, "GET", "/metrics"), 401);
    EXPECT_EQ(StatusOf(master_admin_port_, token, "GET", "/get_all_segments"), 401);
    EXPECT_EQ(StatusOf(master_admin_port_, token, "GET", "/health"), 200);
    // Metadata service: no reading or overwriting a store's descriptor.
    const std::string key =
        "/metadata?key=" + http::EncodeQueryValue("mooncake/segment/" + victim.name);
    EXPECT_EQ(StatusOf(MetadataPort(), token, "GET", key), 401);
    EXPECT_EQ(StatusOf(MetadataPort(), token, "PUT", key, "{}"), 401);
    EXPECT_EQ(StatusOf(MetadataPort(), token, "GET", "/health"), 200);
    // Store HTTP port.
    EXPECT_EQ(StatusOf(store_http_[0], token, "GET", "/metrics"), 401);
    EXPECT_EQ(StatusOf(store_http_[0], token, "GET", "/health"), 200);
  }
  // Nothing changed: both segments are still mounted, by their owners.
  segments = client->ListSegments();
  ASSERT_TRUE(segments.ok());
  EXPECT_EQ(segments->size(), 2u);
  // With the token, the same calls are answered.
  EXPECT_EQ(StatusOf(MasterPort(), kToken, "POST", "/v1/ListSegments", "{}"), 200);
  EXPECT_EQ(StatusOf(master_admin_port_, kToken, "GET", "/metrics"), 200);
  EXPECT_EQ(StatusOf(store_http_[0], kToken, "GET", "/metrics"), 200);
}

TEST_F(AuthClusterTest, TheDataPortAnswersNothingBeforeAuth) {
  auto client = MakeClient(/*shm=*/false);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  absl::StatusOr<std::vector<client::SegmentInfo>> segments = client->ListSegments();
  ASSERT_TRUE(segments.ok() && !segments->empty());
  const client::SegmentInfo& segment = (*segments)[0];
  const int port = std::stoi(segment.name.substr(segment.name.rfind(':') + 1));
  auto frame = [](engine::tcp::RequestHeader h) {
    auto bytes = engine::tcp::EncodeRequest(h);
    return std::string(bytes.begin(), bytes.end());
  };
  const std::string hello = frame({engine::tcp::Opcode::kHello, 1, 0, 0});
  const size_t hello_reply = engine::tcp::kResponseHeaderSize + engine::tcp::kHelloReplySize;
  auto status_at = [](std::string_view reply, size_t offset) -> int {
    if (reply.size() < offset + engine::tcp::kResponseHeaderSize) return 1;  // closed, no reply
    auto header =
        engine::tcp::DecodeResponse(reinterpret_cast<const uint8_t*>(reply.data() + offset));
    return header.ok() ? header->status : 2;
  };
  auto exchange = [&](const std::string& bytes, absl::Duration wait = absl::Seconds(5)) {
    test::RawSocket raw(port);
    EXPECT_TRUE(raw.connected());
    raw.Send(bytes);
    return raw.ReadUntilClose(wait);
  };
  // HELLO says AUTH is required (and the server then waits for it, keeping the connection open).
  std::string greeting;
  {
    test::RawSocket raw(port);
    ASSERT_TRUE(raw.connected());
    raw.Send(hello);
    greeting = raw.ReadAtLeast(hello_reply, absl::Seconds(10));
  }
  ASSERT_GE(greeting.size(), hello_reply);
  auto reply = engine::tcp::DecodeHelloReply(
      reinterpret_cast<const uint8_t*>(greeting.data() + engine::tcp::kResponseHeaderSize));
  ASSERT_TRUE(reply.ok());
  EXPECT_TRUE(reply->auth_required);
  // A READ or a DESCRIBE right after HELLO: refused, the connection closed, no bytes.
  const std::string read =
      exchange(hello + frame({engine::tcp::Opcode::kRead, 2, segment.base, 4096}));
  EXPECT_EQ(status_at(read, hello_reply), static_cast<int>(ErrorCode::ILLEGAL_CLIENT));
  EXPECT_LT(read.size(), hello_reply + engine::tcp::kResponseHeaderSize + 4096);
  EXPECT_EQ(
      status_at(exchange(hello + frame({engine::tcp::Opcode::kDescribe, 2, 0, 0})), hello_reply),
      static_cast<int>(ErrorCode::ILLEGAL_CLIENT));
  // A wrong proof: refused.
  EXPECT_EQ(status_at(exchange(hello + frame({engine::tcp::Opcode::kAuth, 2, 0, 32}) +
                               std::string(32, 'x')),
                      hello_reply),
            static_cast<int>(ErrorCode::ILLEGAL_CLIENT));
}

TEST_F(AuthClusterTest, ClientsWithTheTokenWorkOverTcpAndSharedMemory) {
  for (bool shm : {true, false}) {
    auto client = MakeClient(shm);
    ASSERT_TRUE(client);
    ASSERT_TRUE(WaitForSegments(*client, 2));
    std::vector<std::string> keys;
    std::vector<std::string> values;
    for (int i = 0; i < 16; ++i) {
      keys.push_back(absl::StrCat(shm ? "shm_" : "tcp_", i));
      values.push_back(std::string(100000 + i, static_cast<char>('a' + i)));
    }
    std::vector<std::string_view> views(values.begin(), values.end());
    for (const absl::Status& s : client->BatchPut(keys, views)) ASSERT_TRUE(s.ok()) << s;
    std::vector<absl::StatusOr<std::string>> got = client->BatchGet(keys);
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_TRUE(got[i].ok()) << keys[i] << ": " << got[i].status();
      EXPECT_EQ(*got[i], values[i]);
    }
  }
}

TEST_F(AuthClusterTest, ClientsWithoutTheTokenOrWithAnotherAreRefusedClearly) {
  for (std::string_view token : {"", "not-the-token"}) {
    ClientConfig config = ClientConfigFor(/*shm=*/true);
    config.auth = token.empty() ? AuthToken() : *AuthToken::FromString(token);
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(config);
    ASSERT_FALSE(client.ok()) << token;
    EXPECT_EQ(ErrorCodeOf(client.status()), ErrorCode::ILLEGAL_CLIENT) << client.status();
    EXPECT_NE(client.status().message().find("token"), std::string_view::npos) << client.status();
  }
}

// Finding: anyone could read a segment's owner from ListSegments and unmount it; its objects were
// dropped and the store never mounted again. Without a token the unmount still works (nothing
// proves who asks), but the store notices (its index fetch is answered SEGMENT_NOT_FOUND) and
// mounts its segment again with the index of what it holds: its objects stay readable.
TEST_F(StoreClusterTest, AStoreWhoseSegmentWasUnmountedMountsItAgain) {
  auto client = MakeClient(/*shm=*/false);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  absl::StatusOr<std::vector<client::SegmentInfo>> segments = client->ListSegments();
  ASSERT_TRUE(segments.ok());
  const client::SegmentInfo victim = (*segments)[0];
  ReplicateConfig there;
  there.preferred_segment = victim.name;
  ASSERT_TRUE(client->Put("before_unmount", std::string(5000, 'b'), there).ok());
  http::HttpClient http("127.0.0.1",
                        std::stoi(master_address_.substr(master_address_.rfind(':') + 1)));
  absl::StatusOr<json> gone = http.CallJson(
      "POST", "/v1/UnmountSegment", json{{"client_id", victim.client_id}, {"name", victim.name}});
  ASSERT_TRUE(gone.ok()) << gone.status();
  ASSERT_TRUE(WaitForSegments(*client, 2)) << "the store never mounted its segment again";
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!*client->Exists("before_unmount") && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(*client->Get("before_unmount"), std::string(5000, 'b'));
  ASSERT_TRUE(client->Put("after_remount", std::string(5000, 'r'), there).ok());
  EXPECT_EQ(*client->Get("after_remount"), std::string(5000, 'r'));
}

}  // namespace
}  // namespace mooncake
