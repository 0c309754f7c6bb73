// An elastic pool of worker threads for connection handling.
//
// cpp-httplib hands each accepted connection to one task, and that task holds its thread for the
// connection's whole keep-alive life. A fixed pool of N threads therefore serves only N keep-alive
// clients at a time and starves the rest. This pool starts a thread whenever a task arrives and no
// thread is idle, up to `max_threads`; threads above `min_threads` exit after `idle_timeout`
// without work. Past `max_threads`, tasks wait in FIFO order.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace mooncake::http {

class WorkerPool {
 public:
  // REQUIRES: 1 <= max_threads, min_threads <= max_threads.
  WorkerPool(size_t min_threads, size_t max_threads, absl::Duration idle_timeout);
  ~WorkerPool();  // Shutdown()

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs `task` on a pool thread. After Shutdown() the task is dropped and false is returned.
  bool Enqueue(std::function<void()> task);

  // Runs the tasks already queued, then joins every thread. Idempotent.
  void Shutdown();

  size_t threads() const;  // live threads
  size_t busy() const;     // threads running a task
  size_t queued() const;   // tasks waiting for a thread

 private:
  void WorkerLoop(size_t id);
  void StartThreadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void JoinExitedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t min_threads_;
  const size_t max_threads_;
  const absl::Duration idle_timeout_;

  mutable absl::Mutex mu_;
  absl::CondVar work_available_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<size_t, std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> exited_ ABSL_GUARDED_BY(mu_);  // ids of threads that left WorkerLoop
  size_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  size_t busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace mooncake::http
