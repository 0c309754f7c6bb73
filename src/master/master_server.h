// Everything `mooncake master` runs: the object index, its RPC server, its admin server, the
// maintenance thread and, when asked, an embedded metadata service.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "http/metadata_service.h"
#include "http/server.h"
#include "master/master_service.h"

namespace mooncake::master {

struct MasterServerOptions {
  MasterConfig config;
  std::string rpc_address = "0.0.0.0";
  int rpc_port = 50051;
  size_t rpc_threads = 0;  // 0: automatic (threads start on demand, up to 1024)
  std::string metrics_address = "0.0.0.0";
  int metrics_port = 9003;
  bool enable_metric_reporting = true;  // serve the admin/metrics port
  bool enable_http_metadata_server = false;
  std::string http_metadata_server_host = "0.0.0.0";
  int http_metadata_server_port = 8080;
  AuthToken auth;  // every server's: callers must send it (only /health is open)
};

class MasterServer {
 public:
  explicit MasterServer(MasterServerOptions options, Clock* clock = Clock::Real());
  ~MasterServer();  // Stop()

  // Starts every server and the maintenance thread; on failure, stops what was started.
  absl::Status Start();
  void Stop();

  int rpc_port() const { return rpc_->port(); }
  int metrics_port() const { return admin_ ? admin_->port() : 0; }
  int metadata_port() const { return metadata_ ? metadata_->port() : 0; }
  MasterService& service() { return *service_; }

 private:
  MasterServerOptions options_;
  std::unique_ptr<MasterService> service_;
  std::unique_ptr<http::HttpServer> rpc_;
  std::unique_ptr<http::HttpServer> admin_;
  std::unique_ptr<http::MetadataServer> metadata_;
};

}  // namespace mooncake::master
