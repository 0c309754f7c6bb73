#include "http/worker_pool.h"

#include <algorithm>
#include <utility>

namespace mooncake::http {

WorkerPool::WorkerPool(size_t min_threads, size_t max_threads, absl::Duration idle_timeout)
    : min_threads_(std::min(min_threads, std::max<size_t>(max_threads, 1))),
      max_threads_(std::max<size_t>(max_threads, 1)),
      idle_timeout_(idle_timeout) {}

WorkerPool::~WorkerPool() { Shutdown(); }

bool WorkerPool::Enqueue(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return false;
  JoinExitedLocked();
  queue_.push_back(std::move(task));
  // Every task queued beyond the idle threads needs a thread of its own, up to the cap.
  if (queue_.size() > idle_ && threads_.size() < max_threads_) {
    StartThreadLocked();
  } else {
    work_available_.Signal();
  }
  return true;
}

void WorkerPool::Shutdown() {
  std::unordered_map<size_t, std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    work_available_.SignalAll();
    // Joining happens outside the lock; the workers need it to drain the queue and leave.
    threads.swap(threads_);
    exited_.clear();
  }
  for (auto& [id, thread] : threads) thread.join();
}

size_t WorkerPool::threads() const {
  absl::MutexLock lock(&mu_);
  return threads_.size() - exited_.size();
}

size_t WorkerPool::busy() const {
  absl::MutexLock lock(&mu_);
  return busy_;
}

size_t WorkerPool::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void WorkerPool::StartThreadLocked() {
  size_t id = next_id_++;
  threads_.emplace(id, std::thread([this, id] { WorkerLoop(id); }));
}

void WorkerPool::JoinExitedLocked() {
  for (size_t id : exited_) {
    auto it = threads_.find(id);
    if (it == threads_.end()) continue;
    // The thread has left WorkerLoop; it is at most finishing its return, so join is immediate.
    it->second.join();
    threads_.erase(it);
  }
  exited_.clear();
}

void WorkerPool::WorkerLoop(size_t id) {
  absl::MutexLock lock(&mu_);
  for (;;) {
    while (queue_.empty() && !shutdown_) {
      ++idle_;
      bool timed_out = work_available_.WaitWithTimeout(&mu_, idle_timeout_);
      --idle_;
      size_t live = threads_.size() - exited_.size();
      if (timed_out && queue_.empty() && !shutdown_ && live > min_threads_) {
        exited_.push_back(id);
        return;
      }
    }
    if (queue_.empty()) return;  // shut down and drained
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    mu_.Unlock();
    task();
    task = nullptr;  // destroy captures outside the lock
    mu_.Lock();
    --busy_;
  }
}

}  // namespace mooncake::http
