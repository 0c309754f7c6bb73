#include "cmd/signals.h"

#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>

#include "common/logging.h"

namespace mooncake::cmd {
namespace {

sigset_t TerminationSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTerminationSignal() {
  sigset_t set = TerminationSet();
  int signal = 0;
  while (sigwait(&set, &signal) != 0) {
  }
  return signal;
}

int WaitForTerminationSignalFor(absl::Duration timeout) {
  sigset_t set = TerminationSet();
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const timespec left = absl::ToTimespec(std::max(deadline - absl::Now(), absl::ZeroDuration()));
    const int signal = sigtimedwait(&set, nullptr, &left);
    if (signal > 0) return signal;
    if (errno != EINTR || absl::Now() >= deadline) return 0;  // EAGAIN: the time is up
  }
}

int ServeUntilSignal(const char* name, const std::function<absl::StatusOr<std::string>()>& start,
                     const std::function<void()>& stop) {
  absl::StatusOr<std::string> ready = start();
  if (!ready.ok()) {
    std::fprintf(stderr, "mooncake %s: %s\n", name, std::string(ready.status().message()).c_str());
    return 1;
  }
  // Once, on stdout (which scripts and tests read); under systemd it reaches the journal from
  // there.
  std::printf("%s\n", ready->c_str());
  std::fflush(stdout);
  const int signal = WaitForTerminationSignal();
  spdlog::info("signal {} received, shutting down", signal);
  stop();
  spdlog::info("mooncake {} stopped", name);
  return 0;
}

}  // namespace mooncake::cmd
