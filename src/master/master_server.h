// Everything `mooncake master` runs: the object index, its RPC server, its admin server, the
// maintenance thread and, when asked, an embedded metadata service.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "http/etcd_client.h"
#include "http/metadata_service.h"
#include "http/server.h"
#include "master/ha/leader_election.h"
#include "master/master_service.h"

namespace mooncake::master {

// High availability: masters elected in etcd (docs/ha.md).
struct HaOptions {
  bool enabled = false;
  std::string etcd_endpoints;  // "h1:2379,h2:2379" (',' or ';')
  std::string cluster_id = "mooncake_cluster";
  absl::Duration lease_ttl = absl::Seconds(2);
  // The host clients reach this master's RPC port at, published in etcd while it leads. Empty:
  // the RPC address, or this machine's host name when that is a wildcard.
  std::string advertise_host;
};

struct MasterServerOptions {
  MasterConfig config;
  std::string rpc_address = "0.0.0.0";
  int rpc_port = 50051;
  size_t rpc_threads = 0;  // 0: automatic (threads start on demand, up to 1024)
  // After answering, how long an RPC worker polls its connection for that client's next call
  // before it sleeps (http::HttpServerOptions::spin). A client's calls often follow one another
  // with its transfer in between (SGLang's batch_is_exist, then batch_get_into): waking a sleeping
  // worker costs more than the master's whole work on a batch. (`mooncake master` gives the same
  // value to config.index_wait_spin.)
  absl::Duration rpc_spin = absl::Microseconds(300);
  // How long an idle RPC connection is kept open, and TCP_NODELAY on its socket.
  absl::Duration rpc_idle_timeout = absl::Seconds(5);
  bool rpc_tcp_nodelay = true;
  std::string metrics_address = "0.0.0.0";
  int metrics_port = 9003;
  bool enable_metric_reporting = true;  // serve the admin/metrics port
  bool enable_http_metadata_server = false;
  std::string http_metadata_server_host = "0.0.0.0";
  int http_metadata_server_port = 8080;
  AuthToken auth;  // every server's: callers must send it (only /health is open)
  HaOptions ha;
  TenantOptions tenants;  // quotas per tenant (--enable_multi_tenants)
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
  // With HA: the election (nullptr without).
  const LeaderElection* election() const { return election_.get(); }

 private:
  // With HA, whether a request may be served now: only while this master leads.
  absl::Status Admit() const;

  MasterServerOptions options_;
  std::unique_ptr<http::EtcdClient> etcd_;
  std::unique_ptr<LeaderElection> election_;
  std::unique_ptr<MasterService> service_;
  std::unique_ptr<http::HttpServer> rpc_;
  std::unique_ptr<http::HttpServer> admin_;
  std::unique_ptr<http::MetadataServer> metadata_;
};

}  // namespace mooncake::master
