// `mooncake master` (and `mooncake_master`): the object index, with the flags of SPEC.md §1 and
// those the original's users bring (SPEC.md §12, docs/migration.md).
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "cmd/auth_flag.h"
#include "cmd/command.h"
#include "cmd/signals.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/units.h"
#include "common/version.h"
#include "master/master_server.h"
#include "nlohmann/json.hpp"

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
  // The original's flags (SPEC.md §12).
  std::string metrics_host;
  std::string max_kv_soft_pin_ttl;
  std::string rpc_interface;
  int rpc_conn_timeout_seconds = 0;
  bool rpc_enable_tcp_no_delay = true;
  std::string memory_allocator = "offset";
  bool enable_offload = false;
  bool offload_on_evict = false;
  bool promotion_on_hit = false;
  int verbosity = 0;  // glog's -v
  std::string log_dir;
  bool version = false;
  std::string config_path;
  bool enable_multi_tenants = false;
  std::string tenant_quota_connector_type = "file";
  std::string tenant_quota_connector_uri;
};

// Flags of the original master that this build does not implement: refused by name, so that a
// deployment script that sets one is told exactly what is missing (SPEC.md §12).
const std::set<std::string>& OriginalFlagsNotSupported() {
  static const std::set<std::string> names = {"root_fs_dir",
                                              "global_file_segment_size",
                                              "enable_disk_eviction",
                                              "quota_bytes",
                                              "snapshot_backup_dir",
                                              "enable_snapshot_restore",
                                              "enable_snapshot",
                                              "snapshot_interval_seconds",
                                              "snapshot_child_timeout_seconds",
                                              "snapshot_retention_count",
                                              "snapshot_object_store_type",
                                              "snapshot_payload_store_type",
                                              "snapshot_payload_backend_type",
                                              "snapshot_catalog_store_type",
                                              "snapshot_catalog_backend_type",
                                              "snapshot_catalog_store_connstring",
                                              "snapshot_catalog_backend_connstring",
                                              "max_total_finished_tasks",
                                              "max_total_pending_tasks",
                                              "max_total_processing_tasks",
                                              "pending_task_timeout_sec",
                                              "processing_task_timeout_sec",
                                              "max_retry_attempts",
                                              "cxl_path",
                                              "cxl_size",
                                              "enable_cxl",
                                              "logtostderr",
                                              "alsologtostderr",
                                              "stderrthreshold",
                                              "minloglevel",
                                              "logbuflevel",
                                              "log_link",
                                              "max_log_size",
                                              "vmodule"};
  return names;
}

// --config_path: a JSON object whose keys are flag names (either spelling), as the original's
// master reads it. A flag given on the command line wins over the file's.
absl::Status ApplyConfigFile(CLI::App* app, const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("--config_path: cannot read '{}'", path));
  }
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("--config_path: '{}' is not a JSON object of flags (e.g. "
                                 "{{\"rpc_port\": 50051}})",
                                 path));
  }
  for (const auto& [key, value] : j.items()) {
    std::string name = key;
    for (char& c : name) c = c == '-' ? '_' : c;
    if (OriginalFlagsNotSupported().count(name) != 0) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("--config_path: '{}' is a flag of the original Mooncake master "
                                   "that this build does not support (docs/migration.md)",
                                   key));
    }
    CLI::Option* option = app->get_option_no_throw("--" + name);
    if (option == nullptr || name == "config_path" || name == "flagfile") {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("--config_path: unknown flag '{}' in '{}'", key, path));
    }
    if (option->count() > 0) continue;  // the command line's value wins
    std::string text;
    if (value.is_string()) {
      text = value.get<std::string>();
    } else if (value.is_boolean()) {
      text = value.get<bool>() ? "true" : "false";
    } else if (value.is_number()) {
      text = value.dump();
    } else {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("--config_path: '{}' must be a string, number or boolean", key));
    }
    try {
      option->add_result(text);
      option->run_callback();
    } catch (const CLI::Error& e) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("--config_path: '{}': {}", key, e.what()));
    }
  }
  return absl::OkStatus();
}

// The IPv4 address of a network interface (--rpc_interface).
absl::StatusOr<std::string> InterfaceAddress(const std::string& name) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    return MakeError(ErrorCode::INVALID_PARAMS, "--rpc_interface: cannot list interfaces");
  }
  std::string found;
  for (ifaddrs* a = list; a != nullptr && found.empty(); a = a->ifa_next) {
    if (a->ifa_addr != nullptr && a->ifa_addr->sa_family == AF_INET && name == a->ifa_name) {
      char text[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text,
                sizeof(text));
      found = text;
    }
  }
  freeifaddrs(list);
  if (found.empty()) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("--rpc_interface: no interface '{}' with an IPv4 address", name));
  }
  return found;
}

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
  if (!f.rpc_interface.empty()) {
    absl::StatusOr<std::string> address = InterfaceAddress(f.rpc_interface);
    if (!address.ok()) return address.status();
    options.rpc_address = *address;
  }
  if (!f.max_kv_soft_pin_ttl.empty()) {
    absl::StatusOr<absl::Duration> max =
        ParseDuration(f.max_kv_soft_pin_ttl, absl::Milliseconds(1));
    if (!max.ok()) return fail(fmt::format("--max_kv_soft_pin_ttl: {}", max.status().message()));
    config.max_kv_soft_pin_ttl = *max;
  }
  if (f.rpc_conn_timeout_seconds < 0) return fail("--rpc_conn_timeout_seconds must be >= 0");
  if (f.rpc_conn_timeout_seconds > 0) {
    options.rpc_idle_timeout = absl::Seconds(f.rpc_conn_timeout_seconds);
  }
  options.rpc_tcp_nodelay = f.rpc_enable_tcp_no_delay;
  if (f.memory_allocator != "offset" && f.memory_allocator != "cachelib") {
    return fail(
        fmt::format("--memory_allocator must be offset or cachelib, got '{}'", f.memory_allocator));
  }
  options.rpc_port = f.port;
  options.rpc_threads = f.rpc_thread_num;
  options.rpc_spin = absl::Microseconds(f.rpc_spin_us);
  options.config.index_wait_spin = options.rpc_spin;
  options.metrics_address = f.metrics_host.empty() ? options.rpc_address : f.metrics_host;
  options.metrics_port = f.metrics_port;
  options.enable_metric_reporting = f.enable_metric_reporting;
  options.enable_http_metadata_server = f.enable_http_metadata_server;
  options.http_metadata_server_host = f.http_metadata_server_host;
  options.http_metadata_server_port = f.http_metadata_server_port;
  absl::StatusOr<AuthToken> token = ResolveAuthToken(f.auth_token_file);
  if (!token.ok()) return token.status();
  options.auth = *std::move(token);
  options.tenants.quotas = f.enable_multi_tenants;
  options.tenants.connector_type = f.tenant_quota_connector_type;
  options.tenants.connector_uri = f.tenant_quota_connector_uri;
  // The etcd connector keeps the policy beside the cluster's leader key.
  options.tenants.etcd_endpoints = f.enable_ha ? options.ha.etcd_endpoints : "";
  options.tenants.etcd_key = fmt::format("mooncake/{}/tenant_quotas", f.cluster_id);
  if (!f.enable_multi_tenants && !f.tenant_quota_connector_uri.empty()) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     "--tenant_quota_connector_uri is set but --enable_multi_tenants is not: "
                     "quotas would not be enforced");
  }
  return options;
}

int RunMaster(const MasterFlags& flags, const std::vector<std::string>& extras) {
  for (const std::string& extra : extras) {
    std::string name = extra.substr(0, extra.find('='));
    name.erase(0, name.find_first_not_of('-'));
    for (char& c : name) c = c == '-' ? '_' : c;
    if (OriginalFlagsNotSupported().count(name) != 0) {
      std::fprintf(stderr,
                   "mooncake master: --%s is a flag of the original Mooncake master that this "
                   "build does not support (docs/migration.md)\n",
                   name.c_str());
    } else {
      std::fprintf(stderr, "mooncake master: unknown argument '%s' (mooncake master --help)\n",
                   extra.c_str());
    }
  }
  if (!extras.empty()) return kExitUsage;
  if (flags.version) {
    std::printf("mooncake %s\n", kVersion);
    return kExitOk;
  }
  // glog's -v: any verbosity above 0 is our debug level.
  const std::string level =
      flags.verbosity > 0 && flags.log_level == "info" ? std::string("debug") : flags.log_level;
  if (absl::Status status = InitLogging(level); !status.ok()) {
    std::fprintf(stderr, "mooncake master: %s\n", std::string(status.message()).c_str());
    return kExitUsage;
  }
  if (!flags.log_dir.empty()) {
    if (absl::Status status = AddLogFile(flags.log_dir + "/mooncake_master.log"); !status.ok()) {
      std::fprintf(stderr, "mooncake master: --log_dir: %s\n",
                   std::string(status.message()).c_str());
      return kExitUsage;
    }
  }
  if (flags.memory_allocator == "cachelib") {
    spdlog::info("--memory_allocator=cachelib: segments are allocated by the offset allocator");
  }
  for (auto [name, on] : {std::pair{"enable_offload", flags.enable_offload},
                          std::pair{"offload_on_evict", flags.offload_on_evict},
                          std::pair{"promotion_on_hit", flags.promotion_on_hit}}) {
    if (on) spdlog::warn("--{}: this build has no SSD tier yet; objects stay in memory", name);
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
        std::string line = fmt::format("mooncake master listening: rpc={}:{}", options->rpc_address,
                                       server.rpc_port());
        if (server.metrics_port()) {
          line += fmt::format(" metrics={}:{}", options->metrics_address, server.metrics_port());
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
  // As gflags does: a flag given twice takes its last value, so that flags on the command line
  // after --flagfile win over the file's.
  app->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
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
  app->add_option(BothSpellings("port") + "," + BothSpellings("rpc_port"), f->port,
                  "RPC port (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
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
  app->add_option(BothSpellings("client_live_ttl_sec") + "," + BothSpellings("client_ttl"),
                  f->client_live_ttl_sec, "Heartbeat silence after which a client is dead (s)")
      ->capture_default_str();
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
  app->add_option(BothSpellings("rpc_thread_num") + "," + BothSpellings("max_threads"),
                  f->rpc_thread_num, "Most RPC connections served at once (0: automatic)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65536));
  app->add_option(
         BothSpellings("rpc_spin_us"), f->rpc_spin_us,
         "After answering, how long an RPC worker polls its connection for the next "
         "request before it sleeps, and how long a put (or remove) polls for its segments' "
         "owners to acknowledge it and an owner's fetch for its next index change (us; at "
         "most CPUs-1 threads of each kind at once; 0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  text("cluster_id", f->cluster_id, "Name of this cluster");
  flag("enable_multi_tenants", f->enable_multi_tenants,
       "Quotas per tenant: only tenants of the policy may write, each within its quota");
  text("tenant_quota_connector_type", f->tenant_quota_connector_type,
       "Where the tenants' policy is kept: file, or etcd (mooncake/<cluster_id>/tenant_quotas)");
  text("tenant_quota_connector_uri", f->tenant_quota_connector_uri,
       "file: the policy file (YAML; the admin API writes it back); etcd: its endpoints "
       "(default: --etcd_endpoints)");
  text("log_level", f->log_level, "trace, debug (adds an access log), info, warn, error or off");
  AddAuthTokenOption(app, &f->auth_token_file);
  // The original's flags (SPEC.md §12, docs/migration.md).
  text("config_path", f->config_path,
       "JSON file of master flags ({\"rpc_port\": 50051, ...}); flags given here win");
  text("metrics_host", f->metrics_host,
       "Address the metrics/admin port listens on (default: --rpc_address)");
  text("max_kv_soft_pin_ttl", f->max_kv_soft_pin_ttl,
       "Longest soft pin a client may ask for (ms, or with a unit; default: no limit)");
  text("rpc_interface", f->rpc_interface,
       "Network interface whose IPv4 address the RPC port listens on (overrides --rpc_address)");
  app->add_option(BothSpellings("rpc_conn_timeout_seconds"), f->rpc_conn_timeout_seconds,
                  "Close RPC connections idle this long (s; 0: the default, 5 s)")
      ->capture_default_str();
  app->add_option(BothSpellings("rpc_enable_tcp_no_delay"), f->rpc_enable_tcp_no_delay,
                  "TCP_NODELAY on RPC connections")
      ->capture_default_str();
  text("memory_allocator", f->memory_allocator,
       "offset or cachelib (both allocate with the offset allocator)");
  flag("enable_offload", f->enable_offload, "The original's SSD offload (no SSD tier here yet)");
  flag("offload_on_evict", f->offload_on_evict,
       "The original's SSD offload (no SSD tier here yet)");
  flag("promotion_on_hit", f->promotion_on_hit, "The original's SSD tier (no SSD tier here yet)");
  app->add_option("-v,--v", f->verbosity, "glog verbosity: above 0 logs at debug level");
  text("log_dir", f->log_dir, "Also write the log to DIR/mooncake_master.log");
  app->add_flag("--version", f->version, "Print the version");
  app->allow_extras();  // refused in RunMaster, by name when they are the original's
  return {app, [f, app] {
            if (!f->config_path.empty()) {
              if (absl::Status s = ApplyConfigFile(app, f->config_path); !s.ok()) {
                std::fprintf(stderr, "mooncake master: %s\n", std::string(s.message()).c_str());
                return kExitUsage;
              }
            }
            return RunMaster(*f, app->remaining());
          }};
}

absl::StatusOr<std::vector<std::string>> RewriteGflagsHabits(std::vector<std::string> args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    // gflags takes -name=value and -name: CLI11 wants --name for names longer than a letter.
    if (arg.size() > 2 && arg[0] == '-' && arg[1] != '-' && arg.find('=') != 2) arg = "-" + arg;
    if (arg == "-v" || arg.rfind("-v=", 0) == 0) arg = "-" + arg;  // -v=1 -> --v=1
    std::string file;
    if (arg.rfind("--flagfile=", 0) == 0) {
      file = arg.substr(11);
    } else if (arg == "--flagfile" && i + 1 < args.size()) {
      file = args[++i];
    } else {
      out.push_back(arg);
      continue;
    }
    std::ifstream in(file);
    if (!in)
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("--flagfile: cannot read '{}'", file));
    std::vector<std::string> from_file;
    for (std::string line; std::getline(in, line);) {
      line = std::string(absl::StripAsciiWhitespace(AsAbsl(line)));
      if (line.empty() || line[0] == '#') continue;
      if (line.rfind("--flagfile", 0) == 0 || line.rfind("-flagfile", 0) == 0) {
        return MakeError(ErrorCode::INVALID_PARAMS,
                         fmt::format("--flagfile: '{}' names another flag file", file));
      }
      from_file.push_back(line);
    }
    absl::StatusOr<std::vector<std::string>> expanded = RewriteGflagsHabits(std::move(from_file));
    if (!expanded.ok()) return expanded.status();
    // The file's flags first: flags given on the command line after it still win.
    out.insert(out.end(), expanded->begin(), expanded->end());
  }
  return out;
}

}  // namespace mooncake::cmd
