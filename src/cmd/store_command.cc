// `mooncake store --config FILE`: the store service (SPEC.md §2). Flags override config keys.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "client/client_config.h"
#include "cmd/auth_flag.h"
#include "cmd/command.h"
#include "cmd/signals.h"
#include "common/error_code.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/units.h"
#include "store/store_service.h"

namespace mooncake::cmd {
namespace {

struct StoreFlags {
  std::string config;
  std::optional<std::string> local_hostname;
  std::optional<std::string> metadata_server;
  std::optional<std::string> master_server_address;
  std::optional<std::string> protocol;
  std::optional<std::string> device_name;
  std::optional<std::string> global_segment_size;
  std::optional<std::string> local_buffer_size;
  std::string listen_address = "0.0.0.0";
  std::string http_host = "0.0.0.0";
  int http_port = 9300;
  std::string log_level = "info";
  std::string auth_token_file;
  std::string wait_for_cluster = "forever";
};

// What a store meets when it starts before its master, metadata service or etcd: worth another try.
bool ClusterNotThereYet(const absl::Status& status) {
  switch (ErrorCodeOf(status)) {
    case ErrorCode::RPC_FAIL:
    case ErrorCode::RPC_TIMEOUT:
    case ErrorCode::ETCD_OPERATION_ERROR:
    case ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS:  // masters elected in etcd: no leader yet
      return true;
    default:
      return false;
  }
}

// Starts the store, trying again while the cluster is not there yet (the services of a machine
// start in any order), with a backoff from 0.2 s doubling up to 5 s, for at most `wait`. Logs what
// it waits for at the first failure, when the reason changes, and once a minute. nullptr (and
// `*signal` set) when SIGTERM or SIGINT came meanwhile.
absl::StatusOr<std::unique_ptr<store::StoreService>> StartWhenTheClusterIsThere(
    const store::StoreOptions& options, absl::Duration wait, int* signal) {
  constexpr absl::Duration kFirstBackoff = absl::Milliseconds(200);
  constexpr absl::Duration kMaxBackoff = absl::Seconds(5);
  const absl::Time start = absl::Now();
  absl::Duration backoff = kFirstBackoff;
  std::string last_reason;
  absl::Time last_log = absl::InfinitePast();
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<std::unique_ptr<store::StoreService>> service =
        store::StoreService::Start(options);
    if (service.ok() || !ClusterNotThereYet(service.status())) {
      if (service.ok() && attempt > 1) {
        spdlog::info(
            "the cluster answered after {} (attempt {})",
            absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(100))),
            attempt);
      }
      return service;
    }
    const absl::Duration left = start + wait - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return MakeError(ErrorCodeOf(service.status()),
                       fmt::format("{} (gave up after {}: --wait-for-cluster)",
                                   service.status().message(), absl::FormatDuration(wait)));
    }
    const std::string reason(service.status().message());
    if (reason != last_reason || absl::Now() - last_log >= absl::Minutes(1)) {
      spdlog::warn(
          "waiting for the cluster (master {}, metadata {}): {}; trying again every {} "
          "(--wait-for-cluster {})",
          options.client.master_server_address, options.client.metadata_server, reason,
          absl::FormatDuration(std::min(backoff, kMaxBackoff)),
          wait == absl::InfiniteDuration() ? "forever" : absl::FormatDuration(wait));
      last_reason = reason;
      last_log = absl::Now();
    }
    *signal = WaitForTerminationSignalFor(std::min(backoff, left));
    if (*signal != 0) return std::unique_ptr<store::StoreService>();
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

int Fail(int code, absl::string_view message) {
  std::fprintf(stderr, "mooncake store: %.*s\n", static_cast<int>(message.size()), message.data());
  return code;
}

absl::StatusOr<store::StoreOptions> BuildOptions(const StoreFlags& flags) {
  client::ClientConfig base;
  base.global_segment_size = 0;  // required: from the file or --global-segment-size
  base.local_buffer_size = 0;    // a store issues no requests of its own
  base.prefault_segment = true;  // its memory is the pool's: first writes as fast as later ones
  std::vector<std::string> ignored;
  absl::StatusOr<client::ClientConfig> config =
      client::ConfigFromFile(flags.config, base, &ignored);
  if (!config.ok()) return config.status();
  for (const std::string& key : ignored) {
    spdlog::warn("config file '{}': ignoring unknown key '{}'", flags.config, key);
  }
  if (flags.local_hostname) config->local_hostname = *flags.local_hostname;
  if (flags.metadata_server) config->metadata_server = *flags.metadata_server;
  if (flags.master_server_address) config->master_server_address = *flags.master_server_address;
  if (flags.protocol) config->protocol = *flags.protocol;
  if (flags.device_name) config->device_name = *flags.device_name;
  for (auto [name, text, out] :
       {std::tuple{"--global-segment-size", &flags.global_segment_size,
                   &config->global_segment_size},
        std::tuple{"--local-buffer-size", &flags.local_buffer_size, &config->local_buffer_size}}) {
    if (!*text) continue;
    absl::StatusOr<uint64_t> parsed = ParseByteSize(**text);
    if (!parsed.ok()) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("{}: {}", name, parsed.status().message()));
    }
    *out = *parsed;
  }
  config->listen_address = flags.listen_address;
  absl::StatusOr<AuthToken> token = ResolveAuthToken(flags.auth_token_file, config->auth);
  if (!token.ok()) return token.status();
  config->auth = *std::move(token);
  if (absl::Status valid = client::ValidateConfig(*config); !valid.ok()) return valid;
  store::StoreOptions options;
  options.client = *std::move(config);
  options.http_host = flags.http_host;
  options.http_port = flags.http_port;
  return options;
}

int RunStore(const StoreFlags& flags) {
  if (absl::Status status = InitLogging(flags.log_level); !status.ok()) {
    return Fail(kExitUsage, status.message());
  }
  absl::StatusOr<store::StoreOptions> options = BuildOptions(flags);
  if (!options.ok()) return Fail(kExitUsage, options.status().message());

  absl::Duration wait = absl::InfiniteDuration();
  if (flags.wait_for_cluster != "forever") {
    absl::StatusOr<absl::Duration> parsed = ParseDuration(flags.wait_for_cluster, absl::Seconds(1));
    if (!parsed.ok()) {
      return Fail(kExitUsage, fmt::format("--wait-for-cluster: {}", parsed.status().message()));
    }
    wait = *parsed;
  }

  BlockTerminationSignals();
  int signal = 0;
  absl::StatusOr<std::unique_ptr<store::StoreService>> service =
      StartWhenTheClusterIsThere(*options, wait, &signal);
  if (service.ok() && *service == nullptr) {
    spdlog::info("signal {} received while waiting for the cluster; stopped", signal);
    return 0;
  }
  if (!service.ok()) {
    // A bad config and a master that cannot be reached are both the operator's to fix.
    const ErrorCode code = ErrorCodeOf(service.status());
    const bool usage = code == ErrorCode::INVALID_PARAMS || code == ErrorCode::NOT_SUPPORTED ||
                       code == ErrorCode::RPC_FAIL || code == ErrorCode::RPC_TIMEOUT;
    return Fail(usage ? kExitUsage : kExitFailure, service.status().message());
  }
  return ServeUntilSignal(
      "store",
      [&]() -> absl::StatusOr<std::string> {
        WarnIfOpen(options->client.auth, "mooncake store",
                   fmt::format("its data port ({}), shared memory and http port {}",
                               (*service)->segment_name(), (*service)->http_port()));
        return fmt::format(
            "mooncake store serving segment {} ({}, {}) master={} metadata={} http={}:{}",
            (*service)->segment_name(), FormatByteSize(options->client.global_segment_size),
            options->client.protocol, options->client.master_server_address,
            options->client.metadata_server, flags.http_host, (*service)->http_port());
      },
      [&] { (*service)->Stop(); });
}

}  // namespace

Command AddStoreCommand(CLI::App& parent) {
  auto flags = std::make_shared<StoreFlags>();
  CLI::App* app = parent.add_subcommand(
      "store", "Store service: contributes a memory segment to the pool and serves transfers");
  app->add_option("--config", flags->config,
                  "JSON config file (local_hostname, metadata_server, master_server_address, "
                  "protocol, device_name, global_segment_size, local_buffer_size)")
      ->required();
  app->add_option("--local-hostname,--local_hostname", flags->local_hostname,
                  "Host (or host:port) peers reach this store at");
  app->add_option("--metadata-server,--metadata_server", flags->metadata_server,
                  "http://host:port/metadata, etcd://host:port[,...] or P2PHANDSHAKE");
  app->add_option("--master-server-address,--master_server_address", flags->master_server_address,
                  "Master RPC address host:port");
  app->add_option("--protocol", flags->protocol, "tcp or rdma");
  app->add_option("--device-name,--device_name", flags->device_name, "RDMA devices (rdma only)");
  app->add_option("--global-segment-size,--global_segment_size", flags->global_segment_size,
                  "Bytes to contribute (units: KB, MB, GB)");
  app->add_option("--local-buffer-size,--local_buffer_size", flags->local_buffer_size,
                  "Staging buffer for copying calls (a store needs none)");
  app->add_option("--listen-address,--listen_address", flags->listen_address,
                  "Address the data endpoint listens on")
      ->capture_default_str();
  app->add_option("--http-host,--http_host", flags->http_host, "Address of /health and /metrics")
      ->capture_default_str();
  app->add_option("--http-port,--http_port", flags->http_port,
                  "Port of /health and /metrics (0: any free port, printed at start)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app->add_option("--log-level,--log_level", flags->log_level,
                  "trace, debug, info, warn, error or off")
      ->capture_default_str();
  app->add_option("--wait-for-cluster,--wait_for_cluster", flags->wait_for_cluster,
                  "How long to keep trying while the master, metadata service or etcd does not "
                  "answer yet (e.g. 30s, 10m; 0: try once; forever)")
      ->capture_default_str();
  AddAuthTokenOption(app, &flags->auth_token_file);
  return {app, [flags] { return RunStore(*flags); }};
}

}  // namespace mooncake::cmd
