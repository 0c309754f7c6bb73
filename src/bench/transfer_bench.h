// `mooncake bench transfer`: throughput and per-request latency of the transfer engine.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "common/auth.h"

namespace mooncake::bench {

struct TransferBenchOptions {
  std::string mode = "initiator";  // "target" serves a buffer; "initiator" drives transfers to it
  std::string target;              // initiator: segment name (host:port) of the target
  std::string local_hostname = "127.0.0.1";
  std::string metadata_server = "P2PHANDSHAKE";
  std::string protocol = "tcp";
  std::string device_name;  // rdma: NICs to use (comma-separated; empty: every active one)
  int port = 0;             // target: data port (0: any free)
  uint64_t buffer_size = uint64_t{1} << 30;  // target: bytes it registers
  std::string op = "read";                   // read or write
  uint64_t block_size = 1u << 20;
  int batch_size = 32;
  int threads = 1;
  absl::Duration duration = absl::Seconds(5);
  uint64_t slice_size = 1u << 20;
  int connections = 4;
  AuthToken auth;  // the cluster's (SPEC.md §8); embedded parts use it too
};

// Runs the benchmark; prints a progress line while it runs, then a summary and a JSON line.
// A target serves until `wait_for_stop` returns.
int RunTransferBench(const TransferBenchOptions& options,
                     const std::function<void()>& wait_for_stop);

}  // namespace mooncake::bench
