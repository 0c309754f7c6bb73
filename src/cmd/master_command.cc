// `mooncake master` (and `mooncake_master`): the object index, with the flags of SPEC.md §1.
#include <cstdio>
#include <memory>
#include <string>

#include "cmd/auth_flag.h"
#include "cmd/command.h"
#include "cmd/signals.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/units.h"
#include "master/master_server.h"

namespace mooncake::cmd {
namespace {

struct MasterFlags {
  int port = 50051;
  std::string rpc_address = "0.0.0.0";
  int metrics_port = 9003;
  bool enable_metric_reporting = true;
  std::string default_kv_lease_ttl = "10000";
  std::string default_kv_soft_pin_ttl = "1800000";
  bool allow_evict_soft_pinned_objects = true;
  double eviction_ratio = 0.05;
  double eviction_high_watermark_ratio = 0.90;
  std::string client_live_ttl_sec = "10";
  std::string put_start_discard_timeout_sec = "30";
  std::string put_start_release_timeout_sec = "600";
  std::string allocation_strategy = "random";
  bool enable_http_metadata_server = false;
  int http_metadata_server_port = 8080;
  std::string http_metadata_server_host = "0.0.0.0";
  bool enable_ha = false;
  std::string etcd_endpoints;
  std::string ha_backend_type;        // the original's spelling: "etcd"
  std::string ha_backend_connstring;  // the original's spelling of the endpoints
  std::string ha_lease_ttl_sec = "2";
  std::string ha_advertise_host;
  size_t rpc_thread_num = 0;
  int64_t rpc_spin_us = 300;
  std::string cluster_id = "mooncake_cluster";
  std::string log_level = "info";
  std::string auth_token_file;
};

// "--name_with_underscores,--name-with-underscores": SPEC.md accepts both spellings.
std::string BothSpellings(const std::string& snake) {
  std::string kebab = snake;
  for (char& c : kebab) {
    if (c == '_') c = '-';
  }
  return kebab == snake ? "--" + snake : "--" + snake + ",--" + kebab;
}

absl::StatusOr<master::MasterServerOptions> BuildOptions(const MasterFlags& f) {
  master::MasterServerOptions options;
  master::MasterConfig& config = options.config;
  auto fail = [](std::string message) { return MakeError(ErrorCode::INVALID_PARAMS, message); };

  struct DurationFlag {
    const char* name;
    const std::string& text;
    absl::Duration unit;
    absl::Duration* out;
  };
  for (const DurationFlag& d : {
           DurationFlag{"default_kv_lease_ttl", f.default_kv_lease_ttl, absl::Milliseconds(1),
                        &config.default_kv_lease_ttl},
           DurationFlag{"default_kv_soft_pin_ttl", f.default_kv_soft_pin_ttl, absl::Milliseconds(1),
                        &config.default_kv_soft_pin_ttl},
           DurationFlag{"client_live_ttl_sec", f.client_live_ttl_sec, absl::Seconds(1),
                        &config.client_live_ttl},
           DurationFlag{"put_start_discard_timeout_sec", f.put_start_discard_timeout_sec,
                        absl::Seconds(1), &config.put_start_discard_timeout},
           DurationFlag{"put_start_release_timeout_sec", f.put_start_release_timeout_sec,
                        absl::Seconds(1), &config.put_start_release_timeout},
       }) {
    absl::StatusOr<absl::Duration> parsed = ParseDuration(d.text, d.unit);
    if (!parsed.ok()) return fail(fmt::format("--{}: {}", d.name, parsed.status().message()));
    *d.out = *parsed;
  }
  if (config.client_live_ttl <= absl::ZeroDuration())
    return fail("--client_live_ttl_sec must be > 0");
  for (auto [name, value] :
       {std::pair{"eviction_ratio", f.eviction_ratio},
        std::pair{"eviction_high_watermark_ratio", f.eviction_high_watermark_ratio}}) {
    if (!(value > 0 && value <= 1)) {
      return fail(fmt::format("--{} must be in (0, 1], got {}", name, value));
    }
  }
  config.eviction_ratio = f.eviction_ratio;
  config.eviction_high_watermark_ratio = f.eviction_high_watermark_ratio;
  config.allow_evict_soft_pinned_objects = f.allow_evict_soft_pinned_objects;
  if (f.allocation_strategy == "random") {
    config.allocation_strategy = master::AllocationStrategy::kRandom;
  } else if (f.allocation_strategy == "free_ratio_first") {
    config.allocation_strategy = master::AllocationStrategy::kFreeRatioFirst;
  } else {
    return fail(fmt::format("--allocation_strategy must be random or free_ratio_first, got '{}'",
                            f.allocation_strategy));
  }
  if (!f.ha_backend_type.empty() && f.ha_backend_type != "etcd") {
    return fail(
        fmt::format("--ha_backend_type: only etcd is supported, got '{}'", f.ha_backend_type));
  }
  const std::string endpoints =
      !f.etcd_endpoints.empty() ? f.etcd_endpoints : f.ha_backend_connstring;
  if (!f.etcd_endpoints.empty() && !f.ha_backend_connstring.empty() &&
      f.etcd_endpoints != f.ha_backend_connstring) {
    return fail("--etcd_endpoints and --ha_backend_connstring name different etcd clusters");
  }
  options.ha.enabled = f.enable_ha;
  if (f.enable_ha) {
    if (endpoints.empty()) {
      return fail("--enable_ha needs --etcd_endpoints=host:port[,host:port...]");
    }
    if (absl::StatusOr<std::unique_ptr<http::EtcdClient>> etcd =
            http::EtcdClient::Create(endpoints);
        !etcd.ok()) {
      return fail(fmt::format("--etcd_endpoints: {}", etcd.status().message()));
    }
    absl::StatusOr<absl::Duration> ttl = ParseDuration(f.ha_lease_ttl_sec, absl::Seconds(1));
    if (!ttl.ok() || *ttl < absl::Seconds(1) || *ttl > absl::Hours(1)) {
      return fail(fmt::format("--ha_lease_ttl_sec must be 1 to 3600 seconds, got '{}'",
                              f.ha_lease_ttl_sec));
    }
    options.ha.etcd_endpoints = endpoints;
    options.ha.cluster_id = f.cluster_id;
    options.ha.lease_ttl = *ttl;
    options.ha.advertise_host = f.ha_advertise_host;
  }
  if (f.cluster_id.empty() || f.cluster_id.size() > 128 ||
      f.cluster_id.find_first_of("/ \t\n") != std::string::npos) {
    return fail("--cluster_id must be 1 to 128 characters without '/' or spaces");
  }
  options.rpc_address = f.rpc_address;
  options.rpc_port = f.port;
  options.rpc_threads = f.rpc_thread_num;
  options.rpc_spin = absl::Microseconds(f.rpc_spin_us);
  options.metrics_address = f.rpc_address;
  options.metrics_port = f.metrics_port;
  options.enable_metric_reporting = f.enable_metric_reporting;
  options.enable_http_metadata_server = f.enable_http_metadata_server;
  options.http_metadata_server_host = f.http_metadata_server_host;
  options.http_metadata_server_port = f.http_metadata_server_port;
  absl::StatusOr<AuthToken> token = ResolveAuthToken(f.auth_token_file);
  if (!token.ok()) return token.status();
  options.auth = *std::move(token);
  return options;
}

int RunMaster(const MasterFlags& flags) {
  if (absl::Status status = InitLogging(flags.log_level); !status.ok()) {
    std::fprintf(stderr, "mooncake master: %s\n", std::string(status.message()).c_str());
    return kExitUsage;
  }
  absl::StatusOr<master::MasterServerOptions> options = BuildOptions(flags);
  if (!options.ok()) {
    std::fprintf(stderr, "mooncake master: %s\n", std::string(options.status().message()).c_str());
    return kExitUsage;
  }
  BlockTerminationSignals();
  master::MasterServer server(*options);
  return ServeUntilSignal(
      "master",
      [&]() -> absl::StatusOr<std::string> {
        if (absl::Status status = server.Start(); !status.ok()) return status;
        std::string surfaces = fmt::format("RPC port {}", server.rpc_port());
        if (server.metrics_port())
          surfaces += fmt::format(", admin port {}", server.metrics_port());
        if (server.metadata_port()) {
          surfaces += fmt::format(", metadata port {}", server.metadata_port());
        }
        WarnIfOpen(options->auth, "mooncake master", surfaces);
        // Tests read the ports from this line when they asked for 0.
        std::string line = fmt::format("mooncake master listening: rpc={}:{}", flags.rpc_address,
                                       server.rpc_port());
        if (server.metrics_port()) {
          line += fmt::format(" metrics={}:{}", flags.rpc_address, server.metrics_port());
        }
        if (server.metadata_port()) {
          line += fmt::format(" metadata=http://{}:{}/metadata", flags.http_metadata_server_host,
                              server.metadata_port());
        }
        return line + fmt::format(" (cluster {})", flags.cluster_id);
      },
      [&] { server.Stop(); });
}

}  // namespace

Command AddMasterCommand(CLI::App& parent) {
  auto f = std::make_shared<MasterFlags>();
  CLI::App* app = parent.add_subcommand("master", "Master service: object index, space, leases");
  auto port = [&](const char* name, int& value, const char* help) {
    app->add_option(BothSpellings(name), value, help)
        ->capture_default_str()
        ->check(CLI::Range(0, 65535));
  };
  auto text = [&](const char* name, std::string& value, const char* help) {
    app->add_option(BothSpellings(name), value, help)->capture_default_str();
  };
  auto flag = [&](const char* name, bool& value, const char* help) {
    app->add_flag(BothSpellings(name), value, help)->capture_default_str();
  };
  port("port", f->port, "RPC port (0: any free port)");
  text("rpc_address", f->rpc_address, "Address the RPC and metrics ports listen on");
  port("metrics_port", f->metrics_port, "Admin/metrics port (0: any free port)");
  flag("enable_metric_reporting", f->enable_metric_reporting, "Serve the admin/metrics port");
  text("default_kv_lease_ttl", f->default_kv_lease_ttl, "Read lease (ms, or with a unit: 10s)");
  text("default_kv_soft_pin_ttl", f->default_kv_soft_pin_ttl,
       "Soft pin length (ms, or with a unit)");
  flag("allow_evict_soft_pinned_objects", f->allow_evict_soft_pinned_objects,
       "Evict soft-pinned objects (last) when needed");
  app->add_option(BothSpellings("eviction_ratio"), f->eviction_ratio,
                  "Share of the capacity one eviction frees, in (0, 1]")
      ->capture_default_str();
  app->add_option(BothSpellings("eviction_high_watermark_ratio"), f->eviction_high_watermark_ratio,
                  "Used share that starts eviction, in (0, 1]")
      ->capture_default_str();
  text("client_live_ttl_sec", f->client_live_ttl_sec,
       "Heartbeat silence after which a client is dead (s)");
  text("put_start_discard_timeout_sec", f->put_start_discard_timeout_sec,
       "Age after which an unfinished put may be replaced (s)");
  text("put_start_release_timeout_sec", f->put_start_release_timeout_sec,
       "Age after which an unfinished put's space is reclaimed (s)");
  text("allocation_strategy", f->allocation_strategy, "random or free_ratio_first");
  flag("enable_http_metadata_server", f->enable_http_metadata_server,
       "Run the metadata service inside the master");
  port("http_metadata_server_port", f->http_metadata_server_port,
       "Port of the embedded metadata service");
  text("http_metadata_server_host", f->http_metadata_server_host,
       "Address of the embedded metadata service");
  flag("enable_ha", f->enable_ha, "Masters elected in etcd; this one serves while it leads");
  text("etcd_endpoints", f->etcd_endpoints, "etcd endpoints for HA, host:port[,host:port...]");
  text("ha_backend_type", f->ha_backend_type, "The original's spelling: etcd");
  text("ha_backend_connstring", f->ha_backend_connstring,
       "The original's spelling of --etcd_endpoints (';' or ',' separated)");
  text("ha_lease_ttl_sec", f->ha_lease_ttl_sec,
       "The leader's etcd lease (s): failover takes about this long after a leader dies");
  text("ha_advertise_host", f->ha_advertise_host,
       "Host clients reach this master at (default: --rpc_address, or the host name)");
  app->add_option(BothSpellings("rpc_thread_num"), f->rpc_thread_num,
                  "Most RPC connections served at once (0: automatic)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65536));
  app->add_option(BothSpellings("rpc_spin_us"), f->rpc_spin_us,
                  "After answering, how long an RPC worker polls its connection for the next "
                  "request before it sleeps (us; at most CPUs-1 workers at once; 0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  text("cluster_id", f->cluster_id, "Name of this cluster");
  text("log_level", f->log_level, "trace, debug (adds an access log), info, warn, error or off");
  AddAuthTokenOption(app, &f->auth_token_file);
  return {app, [f] { return RunMaster(*f); }};
}

}  // namespace mooncake::cmd
