#include "common/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

#include "absl/time/clock.h"
#include "common/version.h"

namespace mooncake {
namespace {

// Pages of /proc/self/statm's field `index` (0: total size, 1: resident), in bytes; 0 if unread.
double StatmBytes(int index) {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long pages[2] = {0, 0};
  const int read = std::fscanf(f, "%lu %lu", &pages[0], &pages[1]);
  std::fclose(f);
  if (read != 2) return 0;
  return static_cast<double>(pages[index]) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double OpenDescriptors() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the directory's own descriptor
}

}  // namespace

void RegisterProcessMetrics(MetricsRegistry& registry) {
  // When the process first registered them: its start, give or take its set-up.
  static const double start = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  registry.SetCounterCallback(
      "process_cpu_seconds_total", "User and system CPU time spent, s", {}, [] {
        rusage usage{};
        getrusage(RUSAGE_SELF, &usage);
        return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
               (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
      });
  registry.SetGaugeCallback("process_resident_memory_bytes", "Resident memory size, bytes", {},
                            [] { return StatmBytes(1); });
  registry.SetGaugeCallback("process_virtual_memory_bytes", "Virtual memory size, bytes", {},
                            [] { return StatmBytes(0); });
  registry.SetGaugeCallback("process_open_fds", "Open file descriptors", {}, OpenDescriptors);
  registry.SetGaugeCallback("process_max_fds", "Most file descriptors the process may open", {},
                            [] {
                              rlimit limit{};
                              getrlimit(RLIMIT_NOFILE, &limit);
                              return static_cast<double>(limit.rlim_cur);
                            });
  registry.SetGaugeCallback("process_start_time_seconds",
                            "Start time of the process since the Unix epoch, s", {},
                            [] { return start; });
  registry.SetGaugeCallback("mooncake_build_info", "The running build: always 1",
                            {{"version", kVersion}}, [] { return 1.0; });
}

}  // namespace mooncake
