// Time as the code sees it. Lease, eviction, liveness and retry logic take a Clock so that tests
// drive time by hand instead of sleeping.
#pragma once

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mooncake {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  int64_t NowMicros() const { return absl::ToUnixMicros(Now()); }

  // The process's real clock.
  static Clock* Real();
};

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

inline Clock* Clock::Real() {
  static RealClock* clock = new RealClock();
  return clock;
}

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000))
      : micros_(absl::ToUnixMicros(start)) {}
  absl::Time Now() const override { return absl::FromUnixMicros(micros_.load()); }
  void Advance(absl::Duration d) { micros_.fetch_add(absl::ToInt64Microseconds(d)); }

 private:
  std::atomic<int64_t> micros_;
};

}  // namespace mooncake
