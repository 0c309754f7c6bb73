// The store service (`mooncake store`): a client that contributes a segment to the pool and issues
// no requests of its own. It serves peers' transfers into its segment, heartbeats the master and
// mounts the segment again when the master restarts (all done by the client library), and answers
// `/health` and `/metrics` on an HTTP port of its own.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "http/server.h"

namespace mooncake::store {

struct StoreOptions {
  client::ClientConfig client;  // global_segment_size > 0
  std::string http_host = "0.0.0.0";
  int http_port = 9300;  // 0: any free port
};

class StoreService {
 public:
  // Checks the options (INVALID_PARAMS: no segment, a segment larger than this machine's memory),
  // mounts the segment and starts serving. Errors name what failed.
  static absl::StatusOr<std::unique_ptr<StoreService>> Start(StoreOptions options);
  ~StoreService();  // Stop()

  // Unmounts the segment first (the master stops placing objects in it), then stops serving.
  // Idempotent.
  void Stop();

  const std::string& segment_name() const { return client_->segment_name(); }
  int http_port() const { return http_->port(); }
  client::Client& client() { return *client_; }

 private:
  StoreService() = default;

  std::unique_ptr<client::Client> client_;
  std::unique_ptr<http::HttpServer> http_;
};

// Bytes of physical memory on this machine.
uint64_t PhysicalMemoryBytes();

}  // namespace mooncake::store
