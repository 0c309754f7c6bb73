#include "http/spin_wait.h"

#include <poll.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/time/clock.h"

namespace mooncake::http {
namespace {

std::atomic<int> spinning[4] = {0, 0, 0, 0};  // by SpinRole

std::atomic<int>& SpinnersOf(SpinRole role) { return spinning[static_cast<int>(role)]; }

int CountSlots() {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpus = sched_getaffinity(0, sizeof(set), &set) == 0
                       ? CPU_COUNT(&set)
                       : static_cast<int>(std::thread::hardware_concurrency());
  return std::max(0, cpus - 1);
}

}  // namespace

int SpinSlots() {
  static const int slots = CountSlots();
  return slots;
}

int SpinningNow(SpinRole role) { return SpinnersOf(role).load(std::memory_order_acquire); }

bool SpinUntil(absl::FunctionRef<bool()> done, absl::Duration budget, SpinRole role) {
  std::atomic<int>& spinners = SpinnersOf(role);
  if (budget <= absl::ZeroDuration() || SpinSlots() == 0) return false;
  if (spinners.fetch_add(1, std::memory_order_acq_rel) >= SpinSlots()) {
    spinners.fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  const absl::Time until = absl::Now() + budget;
  bool ready = false;
  for (;;) {
    if (done()) {
      ready = true;
      break;
    }
    if (absl::Now() >= until) break;
    sched_yield();
  }
  spinners.fetch_sub(1, std::memory_order_acq_rel);
  return ready;
}

bool SpinUntilReadable(int fd, absl::Duration budget, SpinRole role) {
  pollfd pfd{fd, POLLIN, 0};
  return SpinUntil([&pfd] { return ::poll(&pfd, 1, 0) > 0; }, budget, role);
}

}  // namespace mooncake::http
