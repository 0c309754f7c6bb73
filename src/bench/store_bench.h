// `mooncake bench store`: put and get throughput and latency through the client library, against
// a running cluster or an embedded one (metadata, master and one store in this process, reached
// through TCP or shared memory like a store in another process); and `--validate`, which writes a
// pattern through every mounted segment, reads it back, and reports per-segment bandwidth and
// any mismatch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/auth.h"

namespace mooncake::bench {

struct StoreBenchOptions {
  std::string master;                     // host:port of a running master
  std::string metadata = "P2PHANDSHAKE";  // or http://host:port/metadata
  bool embedded = false;                  // start metadata, master and a store in-process
  // "auto": the engine chooses (shared memory for stores on this host); "tcp": never shared memory.
  std::string transport = "auto";
  std::string protocol = "tcp";  // against a cluster: "tcp" or "rdma"
  std::string local_hostname = "127.0.0.1";
  uint64_t segment_size = uint64_t{1} << 30;  // embedded: the store's segment
  std::vector<uint64_t> value_sizes = {4u << 10, 64u << 10, 1u << 20, 4u << 20};
  std::vector<int> batch_sizes = {1, 32};
  std::vector<std::string> ops = {"put", "get"};
  std::vector<std::string> paths = {"zero-copy", "copy"};
  absl::Duration duration = absl::Seconds(1);  // per case
  int threads = 1;
  bool validate = false;
  uint64_t validate_bytes = 64u << 20;  // per segment, in objects of validate_object_size
  uint64_t validate_object_size = 1u << 20;
  AuthToken auth;         // the cluster's (SPEC.md §8); embedded parts use it too
  std::string json_path;  // the JSON summary goes here (--json); empty: the last line of stdout
};

// Runs it; shows progress on stderr (a line redrawn on a terminal; elsewhere, a line per case and
// every 5 s), prints a table (and with --validate a verdict line), and a JSON summary line (or
// writes it to json_path). Returns the exit code: 0, 1 if operations failed or data did not match,
// 2 for bad options.
int RunStoreBench(const StoreBenchOptions& options);

}  // namespace mooncake::bench
