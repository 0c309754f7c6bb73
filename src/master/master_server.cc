#include "master/master_server.h"

#include "master/rpc_service.h"

namespace mooncake::master {

MasterServer::MasterServer(MasterServerOptions options, Clock* clock)
    : options_(std::move(options)),
      service_(std::make_unique<MasterService>(options_.config, clock)) {
  http::HttpServerOptions rpc;
  rpc.name = "master";
  rpc.host = options_.rpc_address;
  rpc.port = options_.rpc_port;
  if (options_.rpc_threads > 0) rpc.max_workers = options_.rpc_threads;
  rpc.auth = options_.auth;
  rpc_ = std::make_unique<http::HttpServer>(rpc);
  RegisterRpcRoutes(*rpc_, *service_);

  if (options_.enable_metric_reporting) {
    http::HttpServerOptions admin;
    admin.name = "master_admin";
    admin.host = options_.metrics_address;
    admin.port = options_.metrics_port;
    admin.max_workers = 64;
    admin.auth = options_.auth;
    admin_ = std::make_unique<http::HttpServer>(admin);
    RegisterAdminRoutes(*admin_, *service_);
  }
  if (options_.enable_http_metadata_server) {
    http::HttpServerOptions metadata;
    metadata.name = "metadata";
    metadata.host = options_.http_metadata_server_host;
    metadata.port = options_.http_metadata_server_port;
    metadata.auth = options_.auth;
    metadata_ = std::make_unique<http::MetadataServer>(metadata, http::MetadataStoreOptions{});
  }
}

MasterServer::~MasterServer() { Stop(); }

absl::Status MasterServer::Start() {
  absl::Status status = rpc_->Start();
  if (status.ok() && admin_) status = admin_->Start();
  if (status.ok() && metadata_) status = metadata_->Start();
  if (!status.ok()) {
    Stop();
    return status;
  }
  service_->StartMaintenance();
  return absl::OkStatus();
}

void MasterServer::Stop() {
  if (metadata_) metadata_->Stop();
  if (admin_) admin_->Stop();
  rpc_->Stop();
  service_->StopMaintenance();
}

}  // namespace mooncake::master
