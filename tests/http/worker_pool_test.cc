#include "http/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"

namespace mooncake::http {
namespace {

TEST(WorkerPoolTest, GrowsToServeBlockingTasksConcurrently) {
  WorkerPool pool(0, 64, absl::Seconds(30));
  absl::BlockingCounter all_started(64);
  absl::Notification release;
  for (int i = 0; i < 64; ++i) {
    pool.Enqueue([&] {
      all_started.DecrementCount();
      release.WaitForNotification();
    });
  }
  // Every task runs at once: none waits behind another blocked one.
  all_started.Wait();
  EXPECT_EQ(pool.busy(), 64u);
  release.Notify();
  pool.Shutdown();
}

TEST(WorkerPoolTest, QueuesBeyondTheCapInOrder) {
  WorkerPool pool(0, 2, absl::Seconds(30));
  absl::Notification release;
  absl::BlockingCounter started(2);
  for (int i = 0; i < 2; ++i) {
    pool.Enqueue([&] {
      started.DecrementCount();
      release.WaitForNotification();
    });
  }
  started.Wait();
  std::atomic<int> ran{0};
  pool.Enqueue([&] { ran.fetch_add(1); });
  EXPECT_EQ(pool.queued(), 1u);
  EXPECT_EQ(pool.threads(), 2u);
  release.Notify();
  pool.Shutdown();  // drains the queue first
  EXPECT_EQ(ran.load(), 1);
}

TEST(WorkerPoolTest, IdleThreadsAboveTheMinimumExit) {
  WorkerPool pool(1, 8, absl::Milliseconds(20));
  absl::BlockingCounter done(8);
  absl::Notification release;
  for (int i = 0; i < 8; ++i) {
    pool.Enqueue([&] {
      done.DecrementCount();
      release.WaitForNotification();
    });
  }
  done.Wait();
  release.Notify();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (pool.threads() > 1 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(pool.threads(), 1u);
  // The survivor (and new threads) still take work.
  absl::Notification ran;
  pool.Enqueue([&] { ran.Notify(); });
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(WorkerPoolTest, RefusesWorkAfterShutdown) {
  WorkerPool pool(0, 1, absl::Seconds(1));
  pool.Shutdown();
  EXPECT_FALSE(pool.Enqueue([] {}));
  pool.Shutdown();  // idempotent
}

}  // namespace
}  // namespace mooncake::http
