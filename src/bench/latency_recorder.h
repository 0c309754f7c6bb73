// Collects per-request latencies from several threads and summarizes them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace mooncake::bench {

struct LatencySummary {
  uint64_t count = 0;
  double p50_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  double max_us = 0;
};

// REQUIRES: each thread appends to its own vector; Summarize() after the threads are joined.
inline LatencySummary Summarize(const std::vector<std::vector<double>>& per_thread_us) {
  std::vector<double> all;
  for (const auto& v : per_thread_us) all.insert(all.end(), v.begin(), v.end());
  LatencySummary s;
  s.count = all.size();
  if (all.empty()) return s;
  std::sort(all.begin(), all.end());
  auto at = [&](double q) {
    return all[std::min(all.size() - 1, static_cast<size_t>(q * all.size()))];
  };
  s.p50_us = at(0.50);
  s.p99_us = at(0.99);
  s.p999_us = at(0.999);
  s.max_us = all.back();
  return s;
}

}  // namespace mooncake::bench
