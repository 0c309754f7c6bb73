// Where an HTTP server's connections wait, holding no thread, until a whole request has arrived.
//
// A thread per connection lets a few hundred clients that send slowly (or connect and say nothing)
// take every worker, so that even /health times out. Instead a connection is handed to a worker
// only once its next request is complete in the kernel's receive buffer (head and, when it has a
// Content-Length of at most `max_buffered_body`, body); until then it is parked here, in one epoll
// set watched by one thread. A parked connection has a deadline: a request must arrive whole
// within `read_timeout` of its first byte, and an idle keep-alive connection closes after
// `keep_alive_timeout`.
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace mooncake::http {

// What the receive buffer of a connection holds, as far as a server can tell without reading.
enum class Pending {
  kNothing,   // no byte of a next request
  kPartial,   // some of it
  kComplete,  // all of it (or as much as a worker should read itself: a large or chunked body)
  kClosed,    // the peer closed (or the socket failed) with nothing left to read
};

// Peeks at `fd` (no byte is consumed). A head longer than `max_head_bytes` counts as complete so
// that the server can refuse it. `peeked`, if given: the bytes seen, valid until this thread's next
// call.
Pending PeekRequest(int fd, size_t max_head_bytes, size_t max_buffered_body,
                    std::string_view* peeked = nullptr);

// Takes the first `n` bytes of what this thread's last PeekRequest saw on `fd` out of the socket,
// without copying them. False if the socket failed (or holds fewer bytes).
bool ConsumePeeked(int fd, size_t n);

class ConnectionPark {
 public:
  // `ready(fd, cookie)`: a parked connection has a complete request (or was closed by its peer);
  // it is no longer parked. `expired(fd, cookie, partial)`: its deadline passed, with part of a
  // request received or none; it is no longer parked. Both run on the park's thread.
  using Ready = std::function<void(int fd, uint64_t cookie)>;
  using Expired = std::function<void(int fd, uint64_t cookie, bool partial)>;

  ConnectionPark(size_t max_head_bytes, size_t max_buffered_body, absl::Duration read_timeout,
                 absl::Duration keep_alive_timeout, Ready ready, Expired expired);
  ~ConnectionPark();  // Stop()

  // False when the park cannot start (no epoll).
  bool Start();
  // Stops watching; every connection still parked is handed to `expired` (as not partial).
  void Stop();

  // Watches `fd` until its request is complete or its deadline passes. `partial_since`: when the
  // first byte of the pending request arrived (InfinitePast if none has). False when stopped:
  // the caller keeps the connection.
  bool Park(int fd, uint64_t cookie, absl::Time partial_since = absl::InfinitePast());

  size_t parked() const;

 private:
  struct Parked {
    uint64_t cookie = 0;
    absl::Time deadline;
    bool partial = false;
  };
  void Watch();

  const size_t max_head_bytes_;
  const size_t max_buffered_body_;
  const absl::Duration read_timeout_;
  const absl::Duration keep_alive_timeout_;
  const Ready ready_;
  const Expired expired_;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = true;
  absl::flat_hash_map<int, Parked> parked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::http
