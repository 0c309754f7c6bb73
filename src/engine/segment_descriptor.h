// What peers need to know to reach a segment, as published to the metadata service under
// "mooncake/segment/<name>" or answered to a DESCRIBE request (P2PHANDSHAKE).
//
//   {"name": "10.0.0.2:12345", "incarnation": 8312..., "host_id": "<boot id>/<netns>",
//    "shm_server": "@mooncake-shm-...",
//    "tcp": {"host": "10.0.0.2", "port": 12345},
//    "buffers": [{"addr": 140203012341760, "length": 4294967296, "location": "cpu:0",
//                 "shm_id": 1, "shm_offset": 0}]}
// shm_id/shm_offset say which shared allocation holds a buffer (absent: not shared memory).
// `incarnation` is a random nonzero number the process chose when it started: a descriptor, a
// connection or a mapping of one incarnation is never used for another.
// With RDMA: "rdma": [{"name": "mlx5_0", "lid": 3, "gid": "fe80..."}] and per buffer
// "rkeys": [one per NIC, in that order].
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/buffer_registry.h"

namespace mooncake::engine {

// An RDMA NIC of a segment: where its queue pairs live.
struct RdmaNic {
  std::string name;
  uint16_t lid = 0;
  std::string gid;  // 32 hex digits
};

struct SegmentDescriptor {
  std::string name;  // "host:port" of the data endpoint
  uint64_t incarnation = 0;
  // Boot id and network namespace: equal host ids mean one host where shared memory works.
  std::string host_id;
  std::string shm_server;  // "@name" of the abstract socket handing out shared memory; "" if none
  std::string tcp_host;
  int tcp_port = 0;
  std::vector<BufferInfo> buffers;
  std::vector<RdmaNic> rdma_nics;  // empty: the segment offers no RDMA
};

std::string SegmentKey(const std::string& name);  // the metadata key of a segment
std::string EncodeDescriptor(const SegmentDescriptor& descriptor);
// INVALID_PARAMS naming the field when `json` is not a descriptor.
absl::StatusOr<SegmentDescriptor> DecodeDescriptor(std::string_view json);

}  // namespace mooncake::engine
