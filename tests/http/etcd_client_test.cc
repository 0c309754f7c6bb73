// EtcdClient against a real etcd (Debian's etcd-server) started by the test on loopback ports,
// and against a stand-in HTTP server that answers what no etcd would.
#include "http/etcd_client.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/error_code.h"
#include "http/server.h"
#include "support/etcd.h"

namespace mooncake::http {
namespace {

using test::EtcdCluster;

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = std::make_unique<EtcdCluster>(1);
    ASSERT_TRUE(etcd_->ok()) << "etcd did not start";
    client_ = etcd_->NewClient();
    ASSERT_TRUE(client_);
  }

  std::unique_ptr<EtcdCluster> etcd_;
  std::unique_ptr<EtcdClient> client_;
};

TEST_F(EtcdClientTest, BytesOfAnyValueRoundTrip) {
  const std::string key("k\0\xff/\n", 5);
  const std::string value("v\0\x80\"{}", 6);
  EXPECT_FALSE(client_->Get(key)->has_value());
  absl::StatusOr<int64_t> revision = client_->Put(key, value);
  ASSERT_TRUE(revision.ok()) << revision.status();
  int64_t read_at = 0;
  absl::StatusOr<std::optional<EtcdKeyValue>> got = client_->Get(key, &read_at);
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ((*got)->key, key);
  EXPECT_EQ((*got)->value, value);
  EXPECT_EQ((*got)->create_revision, *revision);
  EXPECT_EQ(read_at, *revision);
  ASSERT_TRUE(client_->Put("prefix/a", "1").ok());
  ASSERT_TRUE(client_->Put("prefix/b", "2").ok());
  ASSERT_TRUE(client_->Put("prefiy", "3").ok());
  absl::StatusOr<std::vector<EtcdKeyValue>> listed = client_->GetPrefix("prefix/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].key, "prefix/a");
  EXPECT_EQ((*listed)[1].value, "2");
  EXPECT_TRUE(*client_->Delete(key));
  EXPECT_FALSE(*client_->Delete(key));
  EXPECT_FALSE(client_->Get(key)->has_value());
}

TEST_F(EtcdClientTest, OnlyTheFirstCreateWinsAndOnlyItsRevisionDeletes) {
  absl::StatusOr<int64_t> lease = client_->LeaseGrant(absl::Seconds(10));
  ASSERT_TRUE(lease.ok()) << lease.status();
  absl::StatusOr<EtcdClient::CreateResult> first = client_->CreateIfAbsent("leader", "a", *lease);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->kv.value, "a");
  EXPECT_EQ(first->kv.lease, *lease);
  absl::StatusOr<EtcdClient::CreateResult> second = client_->CreateIfAbsent("leader", "b", 0);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->kv.value, "a");  // the holder
  EXPECT_EQ(second->kv.create_revision, first->kv.create_revision);
  // The same create again (a retried request) is recognised as ours.
  absl::StatusOr<EtcdClient::CreateResult> again = client_->CreateIfAbsent("leader", "a", *lease);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->created);
  EXPECT_FALSE(*client_->DeleteIfCreatedAt("leader", first->kv.create_revision + 1));
  EXPECT_TRUE(*client_->DeleteIfCreatedAt("leader", first->kv.create_revision));
  EXPECT_FALSE(client_->Get("leader")->has_value());
}

TEST_F(EtcdClientTest, AKeyUnderALeaseGoesWithIt) {
  absl::StatusOr<int64_t> lease = client_->LeaseGrant(absl::Seconds(5));
  ASSERT_TRUE(lease.ok()) << lease.status();
  absl::StatusOr<absl::Duration> ttl = client_->LeaseKeepAlive(*lease);
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  EXPECT_GE(*ttl, absl::Seconds(4));
  ASSERT_TRUE(client_->Put("held", "x", *lease).ok());
  absl::Status revoked = client_->LeaseRevoke(*lease);
  ASSERT_TRUE(revoked.ok()) << revoked;
  EXPECT_FALSE(client_->Get("held")->has_value());
  absl::StatusOr<absl::Duration> gone = client_->LeaseKeepAlive(*lease);
  EXPECT_EQ(ErrorCodeOf(gone.status()), ErrorCode::LEASE_EXPIRED) << gone.status();
  revoked = client_->LeaseRevoke(*lease);
  EXPECT_TRUE(revoked.ok()) << revoked;  // revoking twice is not an error
  // A key under a lease that does not exist is refused.
  EXPECT_FALSE(client_->Put("held", "x", *lease).ok());
}

TEST_F(EtcdClientTest, WatchReturnsTheNextChangeOrNothingAtTheTimeout) {
  int64_t revision = 0;
  ASSERT_TRUE(client_->Get("watched", &revision).ok());
  // Nothing changes: an empty answer once the timeout passed.
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<EtcdEvent>> quiet =
      client_->Watch("watched", revision + 1, absl::Milliseconds(300));
  ASSERT_TRUE(quiet.ok()) << quiet.status();
  EXPECT_TRUE(quiet->empty());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  // A put while watching is seen; so is a delete.
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(100));
    (void)client_->Put("watched", "1");
    (void)client_->Delete("watched");
  });
  std::vector<EtcdEvent> seen;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int64_t next = revision + 1;
  while (seen.size() < 2 && absl::Now() < deadline) {
    absl::StatusOr<std::vector<EtcdEvent>> events =
        client_->Watch("watched", next, absl::Seconds(5));
    ASSERT_TRUE(events.ok()) << events.status();
    for (EtcdEvent& e : *events) {
      next = e.kv.mod_revision + 1;
      seen.push_back(std::move(e));
    }
  }
  writer.join();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_FALSE(seen[0].deleted);
  EXPECT_EQ(seen[0].kv.value, "1");
  EXPECT_TRUE(seen[1].deleted);
  EXPECT_EQ(seen[1].kv.key, "watched");
}

TEST(EtcdClientEndpointsTest, ADeadMemberCostsOneAttemptNotTheCall) {
  EtcdCluster etcd(3);
  ASSERT_TRUE(etcd.ok()) << "etcd did not start";
  absl::StatusOr<std::unique_ptr<EtcdClient>> client =
      EtcdClient::Create(etcd.endpoint(0) + ";" + etcd.endpoint(1) + " , " + etcd.endpoint(2));
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->endpoints().size(), 3u);
  ASSERT_TRUE((*client)->Put("k", "before").ok());
  etcd.Kill(0);
  // The two others are a quorum: every call still succeeds.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  absl::StatusOr<int64_t> put = (*client)->Put("k", "after");
  while (!put.ok() && absl::Now() < deadline) put = (*client)->Put("k", "after");
  ASSERT_TRUE(put.ok()) << put.status();
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<std::optional<EtcdKeyValue>> got = (*client)->Get("k");
    ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
    EXPECT_EQ((*got)->value, "after");
  }
}

TEST(EtcdClientEndpointsTest, BadEndpointsAndUnreachableEtcdAreClearErrors) {
  for (const char* bad : {"", " , ;", "no-port", "h:99999", "https://h:1", "h:1/path"}) {
    absl::StatusOr<std::unique_ptr<EtcdClient>> client = EtcdClient::Create(bad);
    EXPECT_EQ(ErrorCodeOf(client.status()), ErrorCode::INVALID_PARAMS) << bad;
  }
  const int port = test::FreeLoopbackPort();
  absl::StatusOr<std::unique_ptr<EtcdClient>> client =
      EtcdClient::Create("http://127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(client.ok());
  absl::StatusOr<std::optional<EtcdKeyValue>> got = (*client)->Get("k");
  EXPECT_EQ(ErrorCodeOf(got.status()), ErrorCode::ETCD_OPERATION_ERROR);
  EXPECT_NE(got.status().message().find(std::to_string(port)), std::string::npos) << got.status();
  absl::StatusOr<std::vector<EtcdEvent>> watched = (*client)->Watch("k", 1, absl::Seconds(1));
  EXPECT_EQ(ErrorCodeOf(watched.status()), ErrorCode::ETCD_OPERATION_ERROR);
}

// Answers no etcd gives (this stands in for a foreign or broken service at an etcd address).
TEST(EtcdClientEndpointsTest, MalformedAnswersAreErrorsNotCrashes) {
  absl::Mutex mu;  // before the server, so that they outlive its threads
  std::string answer;
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  HttpServer server(options);
  auto reply = [&](const HttpRequest&) {
    absl::MutexLock lock(&mu);
    return HttpResponse::Text(answer);
  };
  for (const char* path : {"/v3/kv/range", "/v3/lease/keepalive", "/v3/kv/txn", "/v3/watch"}) {
    server.Route("POST", path, reply);
  }
  ASSERT_TRUE(server.Start().ok());
  absl::StatusOr<std::unique_ptr<EtcdClient>> client =
      EtcdClient::Create("127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(client.ok());
  for (const char* body :
       {"", "not json", "[]", "{\"kvs\": 3}", "{\"kvs\": [{\"key\": \"!!\"}]}",
        "{\"kvs\": [{\"key\": \"aw==\", \"create_revision\": \"x\"}]}",
        "{\"kvs\": [{\"key\": \"eA==\"}]}", "{\"header\": 1, \"kvs\": []}",
        "{\"result\": {\"TTL\": []}}", "{\"succeeded\": \"yes\", \"responses\": []}",
        "{\"responses\": [{}]}", "{\"result\": {\"events\": [{\"kv\": 5}]}}\n",
        "{\"result\": {\"canceled\": true, \"compact_revision\": \"9\"}}\n",
        "{\"error\": {\"message\": \"no\"}}\n"}) {
    {
      absl::MutexLock lock(&mu);
      answer = body;
    }
    int64_t revision = 0;
    EXPECT_FALSE((*client)->Get("k", &revision).ok()) << body;
    EXPECT_FALSE((*client)->LeaseKeepAlive(1).ok()) << body;
    EXPECT_FALSE((*client)->CreateIfAbsent("k", "v", 0).ok()) << body;
    absl::StatusOr<std::vector<EtcdEvent>> watched =
        (*client)->Watch("k", 1, absl::Milliseconds(300));
    EXPECT_TRUE(!watched.ok() || watched->empty()) << body;
  }
  server.Stop();
}

}  // namespace
}  // namespace mooncake::http
