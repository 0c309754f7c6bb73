// `mooncake bench master`: request rates and latencies of the master's RPCs, and its memory per
// object.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/auth.h"

namespace mooncake::bench {

struct MasterBenchOptions {
  std::string master;  // host:port of a running master; empty: start one in this process
  int threads = 4;
  absl::Duration duration = absl::Seconds(3);  // per phase
  std::vector<int> batch_sizes = {1, 128};
  // Keys the put phase of each batch size writes at most (rounded down to whole batches), so that
  // the reads look among as many objects in every run; 0: as many as it writes in `duration`.
  uint64_t keys = 0;
  uint64_t value_size = 4096;
  // Segments the bench mounts (the puts spread over them, as over a cluster's stores).
  int segments = 1;
  uint64_t memory_objects = 1000000;  // objects for the memory figure (embedded only); 0: skip
  AuthToken auth;                     // the cluster's (SPEC.md §8); embedded parts use it too
  std::string json_path;  // the JSON summary goes here (--json); empty: the last line of stdout
};

// Runs the phases, prints a table and a final JSON summary line to stdout. Returns an exit code.
int RunMasterBench(const MasterBenchOptions& options);

}  // namespace mooncake::bench
