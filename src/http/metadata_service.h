// The metadata service of SPEC.md §4: transfer engines publish segment descriptors under keys.
//
//   GET    /metadata?key=K   200 with the stored bytes; 404 if absent
//   PUT    /metadata?key=K   body = value; 200 (replaces any previous value)
//   DELETE /metadata?key=K   200; 404 if absent
//
// Missing, repeated or empty `key` -> 400; a value over the limit -> 413. It runs standalone
// (`mooncake metadata`) or inside another process (the master's --enable-http-metadata-server),
// in both cases on an HttpServer of its own.
#pragma once

#include <memory>

#include "common/metrics.h"
#include "http/metadata_store.h"
#include "http/server.h"

namespace mooncake::http {

class MetadataService {
 public:
  // Publishes the table's size as gauges in `metrics` for as long as the service lives.
  explicit MetadataService(MetadataStoreOptions options = {},
                           MetricsRegistry* metrics = &MetricsRegistry::Default());
  ~MetadataService();

  MetadataService(const MetadataService&) = delete;
  MetadataService& operator=(const MetadataService&) = delete;

  // Adds the /metadata routes to `server`. REQUIRES: `server` not started, and outlived by this.
  void RegisterRoutes(HttpServer& server);

  MetadataStore& store() { return store_; }

 private:
  MetadataStore store_;
  MetricsRegistry* metrics_;
};

// Everything `mooncake metadata` runs: an HttpServer with the metadata routes, /health and
// /metrics.
class MetadataServer {
 public:
  // `server_options.max_body_bytes` is raised to fit the largest value if it is smaller.
  MetadataServer(HttpServerOptions server_options, MetadataStoreOptions store_options);

  absl::Status Start() { return server_.Start(); }
  void Stop() { server_.Stop(); }
  int port() const { return server_.port(); }
  MetadataStore& store() { return service_.store(); }

 private:
  MetadataService service_;
  HttpServer server_;
};

}  // namespace mooncake::http
