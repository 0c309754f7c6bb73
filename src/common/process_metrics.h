// The metrics every mooncake process exports on its /metrics, whatever it serves: the standard
// process_* series of Prometheus clients (CPU, memory, descriptors, start time) and
// mooncake_build_info{version}. Read from the kernel at each scrape.
#pragma once

#include "common/metrics.h"

namespace mooncake {

// Registers them in `registry`; safe to call more than once.
void RegisterProcessMetrics(MetricsRegistry& registry);

}  // namespace mooncake
