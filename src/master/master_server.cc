#include "master/master_server.h"

#include <unistd.h>

#include "common/logging.h"
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
  rpc.spin = options_.rpc_spin;
  rpc.keep_alive_timeout = options_.rpc_idle_timeout;
  rpc.tcp_nodelay = options_.rpc_tcp_nodelay;
  // Every answer names the term it was given in, so that clients can refuse an old leader's.
  rpc.response_headers = [this] {
    return std::vector<std::pair<std::string, std::string>>{
        {"X-Mooncake-Epoch", std::to_string(service_->epoch())}};
  };
  if (options_.ha.enabled) rpc.admit = [this](std::string_view) { return Admit(); };
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
    RegisterAdminRoutes(
        *admin_, *service_,
        options_.ha.enabled ? std::function<absl::Status()>([this] { return Admit(); }) : nullptr);
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

absl::Status MasterServer::Admit() const {
  if (election_ != nullptr && election_->epoch() != 0) return absl::OkStatus();
  std::optional<LeaderInfo> leader = election_ ? election_->leader() : std::nullopt;
  return MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                   leader.has_value() && leader->epoch != service_->epoch()
                       ? fmt::format("this master does not lead; the leader is {} (epoch {})",
                                     leader->address, leader->epoch)
                       : std::string("this master does not lead now"));
}

absl::Status MasterServer::Start() {
  // The tenants' policy before the first request.
  if (options_.tenants.quotas) {
    if (absl::Status loaded = service_->EnableTenantQuotas(options_.tenants); !loaded.ok()) {
      return loaded;
    }
  }
  absl::Status status = rpc_->Start();
  if (status.ok() && admin_) status = admin_->Start();
  if (status.ok() && metadata_) status = metadata_->Start();
  if (status.ok() && options_.ha.enabled) {
    absl::StatusOr<std::unique_ptr<http::EtcdClient>> etcd =
        http::EtcdClient::Create(options_.ha.etcd_endpoints);
    if (etcd.ok()) {
      etcd_ = *std::move(etcd);
    } else {
      status = etcd.status();
    }
  }
  if (!status.ok()) {
    Stop();
    return status;
  }
  service_->StartMaintenance();
  if (options_.ha.enabled) {
    std::string host = options_.ha.advertise_host;
    if (host.empty()) host = options_.rpc_address;
    if (host.empty() || host == "0.0.0.0" || host == "::") {
      char name[256] = {};
      host = gethostname(name, sizeof(name) - 1) == 0 ? name : "localhost";
    }
    ElectionOptions election;
    election.key = LeaderKey(options_.ha.cluster_id);
    election.value = fmt::format("{}:{}", host, rpc_->port());
    election.lease_ttl = options_.ha.lease_ttl;
    // A new term starts from an empty index before the first request of it is admitted.
    election.on_elected = [this](uint64_t epoch) { service_->BeginTerm(epoch); };
    election_ = std::make_unique<LeaderElection>(etcd_.get(), election);
    election_->Start();
  }
  return absl::OkStatus();
}

void MasterServer::Stop() {
  if (election_) election_->Stop();  // resigns: another master takes over at once
  if (metadata_) metadata_->Stop();
  if (admin_) admin_->Stop();
  rpc_->Stop();
  service_->StopMaintenance();
}

}  // namespace mooncake::master
