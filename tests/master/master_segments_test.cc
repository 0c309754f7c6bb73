// MasterService: segments and clients coming and going (unmounts, silent clients, a new process
// at a segment's endpoint, remounts, client ids).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "master/master_service_fixture.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace mooncake::master {
namespace {

TEST_F(MasterServiceTest, UnmountDropsReplicasAndOrphans) {
  Mount("a:1", 16 * kMiB);
  Mount("b:1", 16 * kMiB);
  ASSERT_TRUE(Put("both", kMiB, {.replica_num = 2}).ok());
  ASSERT_TRUE(Put("only-a", kMiB, {.preferred_segments = {"a:1"}}).ok());
  EXPECT_EQ(ErrorCodeOf(service_.UnmountSegment("someone-else", "a:1")), ErrorCode::ILLEGAL_CLIENT);
  EXPECT_EQ(ErrorCodeOf(service_.UnmountSegment(kClient, "nope:1")), ErrorCode::SEGMENT_NOT_FOUND);
  ASSERT_TRUE(service_.UnmountSegment(kClient, "a:1").ok());
  EXPECT_EQ(GetCode("only-a"), ErrorCode::OBJECT_NOT_FOUND);
  std::string key = "both";
  auto left = service_.GetReplicaList({&key, 1})[0];
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->replicas.size(), 1u);
  EXPECT_EQ(left->replicas[0].segment, "b:1");
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment(kClient, "b:1", 0, kMiB)),
            ErrorCode::SEGMENT_ALREADY_EXISTS);
}

TEST_F(MasterServiceTest, BadSegments) {
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment(kClient, "", 0, kMiB)), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment(kClient, "z:1", 0, 0)), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment(kClient, "o:1", UINT64_MAX - 10, kMiB)),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment("", "c:1", 0, kMiB)), ErrorCode::INVALID_PARAMS);
  // Names that could break a metrics line, a log line or an admin page.
  for (const std::string& name :
       std::vector<std::string>{"a\"b:1", "a\nb:1", "a b:1", "a\\b:1", std::string("a\0b", 3),
                                std::string("\xc3\xa9:1"), std::string("x\x7f:1")}) {
    EXPECT_EQ(ErrorCodeOf(service_.MountSegment(kClient, name, 0, kMiB)), ErrorCode::INVALID_PARAMS)
        << name;
  }
  EXPECT_TRUE(service_.MountSegment(kClient, "[fe80::1]:12345", 0, kMiB).ok());
}

TEST_F(MasterServiceTest, SilentClientsLoseTheirSegments) {
  Mount("a:1", 16 * kMiB, "alive");
  Mount("b:1", 16 * kMiB, "silent");
  ASSERT_TRUE(Put("on-b", kMiB, {.preferred_segments = {"b:1"}}).ok());
  EXPECT_FALSE(service_.Heartbeat("alive").remount);
  clock_.Advance(absl::Seconds(6));
  service_.Heartbeat("alive");
  clock_.Advance(absl::Seconds(6));  // "silent" was last heard 12 s ago; the TTL is 10 s
  service_.RunMaintenance();
  auto segments = service_.ListSegments();
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments[0].name, "a:1");
  EXPECT_EQ(GetCode("on-b"), ErrorCode::OBJECT_NOT_FOUND);
  // When it comes back it is told to remount.
  HeartbeatResult back = service_.Heartbeat("silent");
  EXPECT_TRUE(back.remount);
  EXPECT_EQ(back.epoch, service_.epoch());
  EXPECT_FALSE(service_.Heartbeat("silent").remount);
}

// What the default logger writes while it lives.
class CapturedLog {
 public:
  CapturedLog() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~CapturedLog() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() const { return stream_.str(); }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

TEST_F(MasterServiceTest, ClientsAndSegmentsComingAndGoingAreCountedAndLogged) {
  CapturedLog log;
  EXPECT_EQ(service_.client_count(), 0u);
  Mount("a:1", 16 * kMiB, "mounter");
  service_.Heartbeat("reader");
  EXPECT_EQ(service_.client_count(), 2u);
  EXPECT_NE(log.text().find("client mounter joined"), std::string::npos) << log.text();
  EXPECT_NE(log.text().find("segment a:1 of client mounter mounted: 16 MiB"), std::string::npos)
      << log.text();
  EXPECT_NE(log.text().find("client reader joined"), std::string::npos);
  service_.Heartbeat("reader");  // known: no second line
  const std::string once = "client reader joined";
  EXPECT_EQ(log.text().find(once), log.text().rfind(once));

  ASSERT_TRUE(service_.UnmountSegment("mounter", "a:1").ok());
  EXPECT_NE(log.text().find("segment a:1 of client mounter unmounted"), std::string::npos);
  clock_.Advance(absl::Seconds(6));
  service_.Heartbeat("reader");
  clock_.Advance(absl::Seconds(6));  // "mounter" was last heard 12 s ago; the TTL is 10 s
  service_.RunMaintenance();
  EXPECT_EQ(service_.client_count(), 1u);
  EXPECT_NE(log.text().find("client mounter left: no heartbeat for 10s"), std::string::npos)
      << log.text();
  EXPECT_EQ(log.text().find("client reader left"), std::string::npos);
}

// A new process at a segment's endpoint (a store restarted under the same name, before the master
// noticed the old one was dead) takes the name over; the old incarnation's objects are dropped and
// replicas name the new incarnation.
TEST_F(MasterServiceTest, ANewProcessAtASegmentsEndpointTakesItOver) {
  ASSERT_TRUE(service_.MountSegment("old", "s:1", 0x10000000, 16 * kMiB, 111).ok());
  ASSERT_TRUE(Put("on-old", kMiB).ok());
  std::string key = "on-old";
  auto located = service_.GetReplicaList({&key, 1})[0];
  ASSERT_TRUE(located.ok());
  EXPECT_EQ(located->replicas[0].incarnation, 111u);
  ASSERT_TRUE(service_.MountSegment("new", "s:1", 0x10000000, 16 * kMiB, 222).ok());
  EXPECT_EQ(GetCode("on-old"), ErrorCode::OBJECT_NOT_FOUND);
  auto segments = service_.ListSegments();
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments[0].client_id, "new");
  EXPECT_EQ(segments[0].incarnation, 222u);
  EXPECT_EQ(segments[0].used, 0u);
  ASSERT_TRUE(Put("on-new", kMiB).ok());
  key = "on-new";
  located = service_.GetReplicaList({&key, 1})[0];
  ASSERT_TRUE(located.ok());
  EXPECT_EQ(located->replicas[0].incarnation, 222u);
  // The same client mounting again is a retry, not a takeover.
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment("new", "s:1", 0x10000000, 16 * kMiB, 222)),
            ErrorCode::SEGMENT_ALREADY_EXISTS);
  EXPECT_EQ(GetCode("on-new"), ErrorCode::OK);
}

// A client whose segment is no longer mounted under it (unmounted by someone else, or taken over)
// is asked to remount by its next heartbeat, which names the segments it serves.
TEST_F(MasterServiceTest, HeartbeatAsksForARemountOfALostSegment) {
  Mount("a:1", 16 * kMiB, "owner");
  const std::vector<std::string> mine = {"a:1"};
  EXPECT_FALSE(service_.Heartbeat("owner", mine).remount);
  ASSERT_TRUE(service_.UnmountSegment("owner", "a:1").ok());
  EXPECT_TRUE(service_.Heartbeat("owner", mine).remount);
  EXPECT_FALSE(service_.Heartbeat("owner").remount);  // names nothing: nothing to remount
  Mount("a:1", 16 * kMiB, "owner");
  EXPECT_FALSE(service_.Heartbeat("owner", mine).remount);
}

// Finding: every client id that ever started a put stayed in the master. Ids are released once no
// object record holds them; a client with a put in flight keeps its id (and only it may end it).
TEST_F(MasterServiceTest, ClientIdsAreForgottenWhenNoRecordHoldsThem) {
  Mount("seg:1", 64 * kMiB);
  for (int i = 0; i < 20000; ++i) {
    const std::string client = "client-" + std::to_string(i);
    const std::string key = "k" + std::to_string(i % 100);
    PutItem item{key, 64};
    ASSERT_TRUE(service_.PutStart(client, {&item, 1}, {})[0].ok());
    ASSERT_TRUE(service_.PutEnd(client, {&key, 1})[0].ok());
    ASSERT_TRUE(service_.Remove({&key, 1}, /*force=*/true)[0].ok());
  }
  EXPECT_EQ(service_.interned_clients(), 20000u);
  PutItem pending{"pending", 64};
  ASSERT_TRUE(service_.PutStart("keeper", {&pending, 1}, {})[0].ok());
  service_.RunMaintenance();
  EXPECT_EQ(service_.interned_clients(), 1u);  // only "keeper", whose put is in flight
  const std::string key = "pending";
  EXPECT_EQ(ErrorCodeOf(service_.PutEnd("client-7", {&key, 1})[0]), ErrorCode::ILLEGAL_CLIENT);
  EXPECT_TRUE(service_.PutEnd("keeper", {&key, 1})[0].ok());
  // Released ids are reused: new owners do not grow the table past what they hold.
  for (int i = 0; i < 100; ++i) {
    PutItem item{"again" + std::to_string(i), 64};
    ASSERT_TRUE(service_.PutStart("new-" + std::to_string(i), {&item, 1}, {})[0].ok());
  }
  EXPECT_EQ(service_.interned_clients(), 101u);
  auto described = service_.Describe("again5");
  ASSERT_TRUE(described.ok());
  EXPECT_EQ((*described)["client_id"], "new-5");
}

}  // namespace
}  // namespace mooncake::master
