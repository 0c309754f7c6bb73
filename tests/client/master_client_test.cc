// The client's reading of the master's answers, against a server of ours that answers what each
// case gives: a master that misbehaves (malformed, short or mistyped answers) fails the keys it
// answered badly, with a status saying so, and the others keep their answers.
#include "client/master_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/error_code.h"
#include "common/metrics.h"
#include "http/server.h"
#include "nlohmann/json.hpp"

namespace mooncake::client {
namespace {

using nlohmann::json;

class MasterClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<http::HttpServer>(
        http::HttpServerOptions{.name = "fake-master", .host = "127.0.0.1", .metrics = &metrics_});
    for (const char* method : {"BatchExistKey", "BatchGetReplicaList", "BatchPutEnd"}) {
      server_->Route("POST", std::string("/v1/") + method, [this](const http::HttpRequest& r) {
        absl::MutexLock lock(&mu_);
        bodies_.push_back(json::parse(r.body));
        return http::HttpResponse{200, "application/json", answer_};
      });
    }
    // A heartbeat answers once the test lets it (hold_heartbeat_), and says when it has.
    server_->Route("POST", "/v1/Heartbeat", [this](const http::HttpRequest& r) {
      {
        absl::MutexLock lock(&mu_);
        heartbeats_.push_back(json::parse(r.body));
      }
      heartbeat_arrived_.Notify();
      if (hold_heartbeat_) release_heartbeat_.WaitForNotificationWithTimeout(absl::Seconds(30));
      heartbeat_answered_ = true;
      return http::HttpResponse{200, "application/json", R"({"remount": false, "epoch": 1})"};
    });
    ASSERT_TRUE(server_->Start().ok());
    http::HttpClientOptions options;
    options.max_attempts = 1;
    absl::StatusOr<std::unique_ptr<MasterClient>> client =
        MasterClient::Create("127.0.0.1:" + std::to_string(server_->port()), "client-1", options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  void Answer(std::string body) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(body);
  }
  std::vector<json> Bodies() {
    absl::MutexLock lock(&mu_);
    return bodies_;
  }

  // What the handlers use is declared before the server, so it outlives the server's threads.
  MetricsRegistry metrics_;
  absl::Mutex mu_;
  std::string answer_ ABSL_GUARDED_BY(mu_);
  std::vector<json> bodies_ ABSL_GUARDED_BY(mu_);
  std::vector<json> heartbeats_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> hold_heartbeat_{false};
  absl::Notification heartbeat_arrived_, release_heartbeat_;
  std::atomic<bool> heartbeat_answered_{false};
  std::unique_ptr<http::HttpServer> server_;
  std::unique_ptr<MasterClient> client_;
};

TEST_F(MasterClientTest, MalformedAnswersFailTheKeysTheyAnswer) {
  const std::vector<std::string> keys = {"a", "b"};
  for (const char* whole : {"not json", "[]", R"({"results": [{"code": 0, "exists": true}]})",
                            R"({"results": {"code": 0}})", R"({"results": [1, 2] x)"}) {
    Answer(whole);
    for (const absl::StatusOr<bool>& r : client_->ExistKey(keys)) {
      ASSERT_FALSE(r.ok()) << whole;
      EXPECT_EQ(ErrorCodeOf(r.status()), ErrorCode::RPC_FAIL) << whole;
    }
  }
  Answer(R"({"results": [{"code": 0, "exists": true}, 5]})");
  std::vector<absl::StatusOr<bool>> mixed = client_->ExistKey(keys);
  ASSERT_TRUE(mixed[0].ok());
  EXPECT_TRUE(*mixed[0]);
  EXPECT_EQ(ErrorCodeOf(mixed[1].status()), ErrorCode::RPC_FAIL);
  Answer(R"({"results": [{"code": 0, "exists": "yes"}, {"code": -704, "message": "gone"}]})");
  std::vector<absl::StatusOr<bool>> typed = client_->ExistKey(keys);
  EXPECT_EQ(ErrorCodeOf(typed[0].status()), ErrorCode::RPC_FAIL);
  EXPECT_EQ(ErrorCodeOf(typed[1].status()), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(typed[1].status().message(), "gone");
  Answer(R"({"results": [{"code": 12345}, {"exists": true}]})");
  std::vector<absl::StatusOr<bool>> codes = client_->ExistKey(keys);
  EXPECT_EQ(ErrorCodeOf(codes[0].status()), ErrorCode::INTERNAL_ERROR);
  EXPECT_EQ(ErrorCodeOf(codes[1].status()), ErrorCode::RPC_FAIL);
}

TEST_F(MasterClientTest, ReplicaListsAreReadWholeOrNotAtAll) {
  const std::string good =
      R"({"code": 0, "size": 4096, "lease_ms": 5000, "lease_id": 7, "replicas": [{"segment":
      "h:1", "address": 140000000000000, "size": 4096, "incarnation": 18446744073709551615}]})";
  Answer(R"({"results": [)" + good +
         R"(, {"code": 0, "size": 1, "lease_ms": 5, "replicas": [{"segment": 1, "address": 0,
         "size": 1}]}, {"code": 0, "size": 1, "lease_ms": 5, "lease_id": 4294967296,
         "replicas": []}, {"code": 0, "size": 1, "replicas": []}]})");
  std::vector<absl::StatusOr<ReplicaList>> lists =
      client_->GetReplicaList({"good", "segment", "lease", "no-lease"});
  ASSERT_TRUE(lists[0].ok()) << lists[0].status();
  EXPECT_EQ(lists[0]->size, 4096u);
  EXPECT_EQ(lists[0]->lease, absl::Milliseconds(5000));
  EXPECT_EQ(lists[0]->lease_id, 7u);
  ASSERT_EQ(lists[0]->replicas.size(), 1u);
  EXPECT_EQ(lists[0]->replicas[0].segment, "h:1");
  EXPECT_EQ(lists[0]->replicas[0].address, 140000000000000u);
  EXPECT_EQ(lists[0]->replicas[0].incarnation, UINT64_MAX);
  for (size_t i = 1; i < lists.size(); ++i) {
    EXPECT_EQ(ErrorCodeOf(lists[i].status()), ErrorCode::RPC_FAIL) << i;
  }
}

TEST_F(MasterClientTest, RequestsCarryTheirKeysAndReleasesAsJson) {
  Answer(R"({"results": [{"code": 0}, {"code": 0}]})");
  const std::vector<std::string> keys = {"quote\"d\\", "\xc3\xa9\x01"};
  client_->ReleaseLease("leased\"key", 7);
  std::vector<absl::Status> ended = client_->PutEnd(keys);
  EXPECT_TRUE(ended[0].ok() && ended[1].ok());
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(bodies[0]["client_id"], "client-1");
  EXPECT_EQ(bodies[0]["keys"], json(keys));
  EXPECT_EQ(bodies[0]["release_leases"],
            json::parse(R"({"keys": ["leased\"key"], "lease_ids": [7]})"));
  // Released once: the next call carries none.
  (void)client_->PutEnd(keys);
  EXPECT_FALSE(Bodies()[1].contains("release_leases"));
  // A key that is not UTF-8 cannot be sent in JSON: its call fails, nothing is sent.
  for (const absl::Status& s : client_->PutEnd({"fine", "bad\xff"})) {
    EXPECT_EQ(ErrorCodeOf(s), ErrorCode::INVALID_KEY);
  }
  EXPECT_EQ(Bodies().size(), 2u);
}

// A read's lease release goes with whichever call of the client comes next, the heartbeat's
// thread's included. A call that began after the release was queued returns only once the
// release has reached the master, even when another thread's call carries it (here a heartbeat
// the fake master holds): another client may then rely on the object being unleased.
TEST_F(MasterClientTest, ACallReturnsOnlyOnceTheReleasesQueuedBeforeItHaveReachedTheMaster) {
  Answer(R"({"results": [{"code": 0, "exists": true}]})");
  hold_heartbeat_ = true;
  client_->ReleaseLease("read-before", 3);
  std::thread heartbeat([&] { EXPECT_TRUE(client_->Heartbeat({}).ok()); });
  std::thread probe;
  absl::Cleanup join = [&] {  // on every way out
    if (!release_heartbeat_.HasBeenNotified()) release_heartbeat_.Notify();
    heartbeat.join();
    if (probe.joinable()) probe.join();
  };
  ASSERT_TRUE(heartbeat_arrived_.WaitForNotificationWithTimeout(absl::Seconds(30)));
  {
    absl::MutexLock lock(&mu_);
    ASSERT_EQ(heartbeats_.size(), 1u);
    EXPECT_EQ(heartbeats_[0]["release_leases"],
              json::parse(R"({"keys": ["read-before"], "lease_ids": [3]})"));
  }
  absl::Notification exists_returned;
  probe = std::thread([&] {
    std::vector<absl::StatusOr<bool>> exists = client_->ExistKey({"k"});
    EXPECT_TRUE(heartbeat_answered_.load());  // the release had reached the master
    ASSERT_EQ(exists.size(), 1u);
    EXPECT_TRUE(exists[0].ok() && *exists[0]) << exists[0].status();
    exists_returned.Notify();
  });
  // The probe's own call is answered at once (and carries no release: the heartbeat took it), but
  // the probe waits for the heartbeat.
  const absl::Time asked_by = absl::Now() + absl::Seconds(30);
  while (Bodies().empty() && absl::Now() < asked_by) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(Bodies().size(), 1u);
  EXPECT_FALSE(Bodies()[0].contains("release_leases"));
  EXPECT_FALSE(exists_returned.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
  release_heartbeat_.Notify();
  EXPECT_TRUE(exists_returned.WaitForNotificationWithTimeout(absl::Seconds(30)));
  std::move(join).Invoke();
  // Calls after that wait for nothing and carry nothing.
  EXPECT_TRUE(client_->ExistKey({"k"})[0].ok());
  EXPECT_FALSE(Bodies()[1].contains("release_leases"));
}

}  // namespace
}  // namespace mooncake::client
