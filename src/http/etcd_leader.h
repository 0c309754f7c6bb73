// Where the leader of highly available masters is written in etcd, and how it is read back: the
// key `mooncake/<cluster_id>/master/leader` holds the leader's RPC address ("host:port"), and its
// create_revision is the leader's epoch (docs/ha.md). Masters write it (src/master/ha); clients
// read it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "http/etcd_client.h"

namespace mooncake::http {

struct LeaderInfo {
  std::string address;
  uint64_t epoch = 0;
};

// The leader key's name for a cluster.
std::string LeaderKey(std::string_view cluster_id);

// Reads the leader key: the leader's address and epoch, nullopt if none leads. A value that is not
// "host:port" is an ETCD_OPERATION_ERROR naming the key, never a crash.
absl::StatusOr<std::optional<LeaderInfo>> ReadLeader(EtcdClient& etcd, std::string_view key);

}  // namespace mooncake::http
