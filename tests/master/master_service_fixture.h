// The fixture of the MasterService tests: the service in-process with a fake clock and its own
// metrics, one client, helpers for a put, a read, a removal.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "common/error_code.h"
#include "master/master_service.h"

// Not in an anonymous namespace: gtest needs the one fixture class in every file of its suite.
namespace mooncake::master {

inline constexpr char kClient[] = "client-1";
inline constexpr uint64_t kMiB = 1 << 20;

class MasterServiceTest : public ::testing::Test {
 protected:
  explicit MasterServiceTest(MasterConfig config = {})
      : service_(WithSeed(config), &clock_, &metrics_) {}

  static MasterConfig WithSeed(MasterConfig config) {
    config.seed = 42;
    return config;
  }

  void Mount(const std::string& name, uint64_t size, const std::string& client = kClient) {
    ASSERT_TRUE(service_.MountSegment(client, name, 0x10000000, size).ok());
  }

  absl::StatusOr<ReplicaLocations> Start(const std::string& key, uint64_t size,
                                         ReplicateConfig config = {}) {
    PutItem item{key, size};
    return service_.PutStart(kClient, {&item, 1}, config)[0];
  }

  absl::Status Put(const std::string& key, uint64_t size, ReplicateConfig config = {}) {
    absl::StatusOr<ReplicaLocations> started = Start(key, size, config);
    if (!started.ok()) return started.status();
    return service_.PutEnd(kClient, {&key, 1})[0];
  }

  ErrorCode GetCode(const std::string& key) {
    return ErrorCodeOf(service_.GetReplicaList({&key, 1})[0].status());
  }
  ErrorCode RemoveCode(const std::string& key) {
    return ErrorCodeOf(service_.Remove({&key, 1})[0]);
  }
  bool Exists(const std::string& key) { return *service_.ExistKey({&key, 1})[0]; }

  FakeClock clock_;
  MetricsRegistry metrics_;
  MasterService service_;
};

}  // namespace mooncake::master
