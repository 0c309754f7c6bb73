// `mooncake bench`: benchmarks of the master, the transfer engine and the store, and cluster
// validation.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/master_bench.h"
#include "bench/store_bench.h"
#include "bench/transfer_bench.h"
#include "cmd/auth_flag.h"
#include "cmd/command.h"
#include "cmd/signals.h"
#include "common/logging.h"
#include "common/units.h"

namespace mooncake::cmd {
namespace {

// --auth-token-file of every bench subcommand, resolved into `*token`. False (after printing why)
// for a bad token.
bool ResolveBenchToken(const char* name, const std::string& path, AuthToken* token) {
  absl::StatusOr<AuthToken> resolved = ResolveAuthToken(path);
  if (!resolved.ok()) {
    std::fprintf(stderr, "mooncake bench %s: %s\n", name,
                 std::string(resolved.status().message()).c_str());
    return false;
  }
  *token = *std::move(resolved);
  return true;
}

struct MasterBenchFlags {
  bench::MasterBenchOptions options;
  std::string auth_token_file;
  std::string duration = "3s";
};

int RunMasterBenchCommand(MasterBenchFlags& flags) {
  InitLogging("warn").IgnoreError();
  absl::StatusOr<absl::Duration> duration = ParseDuration(flags.duration, absl::Seconds(1));
  if (!duration.ok() || *duration <= absl::ZeroDuration()) {
    std::fprintf(stderr, "mooncake bench master: --duration must be a positive duration\n");
    return kExitUsage;
  }
  flags.options.duration = *duration;
  const std::vector<int>& batches = flags.options.batch_sizes;
  if (batches.empty()) {
    std::fprintf(stderr, "mooncake bench master: --batch needs at least one size\n");
    return kExitUsage;
  }
  const int largest_batch = *std::max_element(batches.begin(), batches.end());
  if (flags.options.keys != 0 && flags.options.keys < static_cast<uint64_t>(largest_batch)) {
    std::fprintf(stderr,
                 "mooncake bench master: --keys must be 0 or at least the largest --batch (%d)\n",
                 largest_batch);
    return kExitUsage;
  }
  if (!ResolveBenchToken("master", flags.auth_token_file, &flags.options.auth)) return kExitUsage;
  return bench::RunMasterBench(flags.options);
}

struct TransferBenchFlags {
  bench::TransferBenchOptions options;
  std::string duration = "5s";
  std::string buffer_size = "1GiB";
  std::string block_size = "1MiB";
  std::string slice_size = "1MiB";
  std::string auth_token_file;
};

int RunTransferBenchCommand(TransferBenchFlags& flags) {
  InitLogging("warn").IgnoreError();
  absl::StatusOr<absl::Duration> duration = ParseDuration(flags.duration, absl::Seconds(1));
  absl::StatusOr<uint64_t> buffer = ParseByteSize(flags.buffer_size);
  absl::StatusOr<uint64_t> block = ParseByteSize(flags.block_size);
  absl::StatusOr<uint64_t> slice = ParseByteSize(flags.slice_size);
  if (!duration.ok() || *duration <= absl::ZeroDuration() || !buffer.ok() || *buffer == 0 ||
      !block.ok() || *block == 0 || !slice.ok() || *slice == 0) {
    std::fprintf(stderr,
                 "mooncake bench transfer: --duration, --buffer-size, --block-size and "
                 "--slice-size must be positive (sizes accept units: 4KiB, 1MiB)\n");
    return kExitUsage;
  }
  flags.options.duration = *duration;
  flags.options.buffer_size = *buffer;
  flags.options.block_size = *block;
  flags.options.slice_size = *slice;
  if (!ResolveBenchToken("transfer", flags.auth_token_file, &flags.options.auth)) {
    return kExitUsage;
  }
  if (flags.options.mode == "target") BlockTerminationSignals();
  return bench::RunTransferBench(flags.options, [] { WaitForTerminationSignal(); });
}

struct StoreBenchFlags {
  bench::StoreBenchOptions options;
  std::string duration = "1s";
  std::string segment_size = "1GiB";
  std::vector<std::string> sizes = {"4KiB", "64KiB", "1MiB", "4MiB"};
  std::string validate_size = "64MiB";
  std::string validate_object_size = "1MiB";
  std::string auth_token_file;
};

int RunStoreBenchCommand(StoreBenchFlags& flags) {
  InitLogging("warn").IgnoreError();
  bench::StoreBenchOptions& o = flags.options;
  absl::StatusOr<absl::Duration> duration = ParseDuration(flags.duration, absl::Seconds(1));
  if (!duration.ok() || *duration <= absl::ZeroDuration()) {
    std::fprintf(stderr, "mooncake bench store: --duration must be a positive duration\n");
    return kExitUsage;
  }
  o.duration = *duration;
  std::vector<std::pair<const std::string*, uint64_t*>> sizes = {
      {&flags.segment_size, &o.segment_size},
      {&flags.validate_size, &o.validate_bytes},
      {&flags.validate_object_size, &o.validate_object_size}};
  o.value_sizes.assign(flags.sizes.size(), 0);
  for (size_t i = 0; i < flags.sizes.size(); ++i)
    sizes.push_back({&flags.sizes[i], &o.value_sizes[i]});
  for (auto [text, out] : sizes) {
    absl::StatusOr<uint64_t> parsed = ParseByteSize(*text);
    if (!parsed.ok() || *parsed == 0) {
      std::fprintf(stderr, "mooncake bench store: '%s' is not a positive size (4KiB, 1MiB, ...)\n",
                   text->c_str());
      return kExitUsage;
    }
    *out = *parsed;
  }
  if (o.value_sizes.empty() || o.batch_sizes.empty() || o.ops.empty() || o.paths.empty()) {
    std::fprintf(stderr, "mooncake bench store: --sizes, --batch, --ops and --paths need values\n");
    return kExitUsage;
  }
  if (!ResolveBenchToken("store", flags.auth_token_file, &o.auth)) return kExitUsage;
  return bench::RunStoreBench(o);
}

}  // namespace

Command AddBenchCommand(CLI::App& parent) {
  CLI::App* app = parent.add_subcommand("bench", "Benchmarks and cluster validation");
  app->require_subcommand(1);

  auto master = std::make_shared<MasterBenchFlags>();
  CLI::App* master_app = app->add_subcommand(
      "master", "RPC rates and latencies of a master, and its memory per object");
  master_app
      ->add_option("--master", master->options.master,
                   "host:port of a running master (default: start one in this process)")
      ->capture_default_str();
  master_app->add_option("--threads", master->options.threads, "Client threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  master_app->add_option("--duration", master->duration, "Length of each phase")
      ->capture_default_str();
  master_app->add_option("--batch", master->options.batch_sizes, "Batch sizes to run")
      ->capture_default_str()
      ->check(CLI::Range(1, 16384));
  master_app
      ->add_option("--keys", master->options.keys,
                   "Keys each batch size's put phase writes at most, so that the reads look among "
                   "as many objects in every run (0: as many as it writes in --duration)")
      ->capture_default_str();
  master_app->add_option("--value-size,--value_size", master->options.value_size, "Object size")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  master_app
      ->add_option("--segments", master->options.segments,
                   "Segments to mount, as many stores would (the puts spread over them)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  master_app
      ->add_option("--memory-objects,--memory_objects", master->options.memory_objects,
                   "Objects for the memory-per-object figure (embedded master only; 0: skip)")
      ->capture_default_str();

  auto transfer = std::make_shared<TransferBenchFlags>();
  bench::TransferBenchOptions& t = transfer->options;
  CLI::App* transfer_app = app->add_subcommand(
      "transfer", "Transfer engine throughput and latency: run a target, then an initiator");
  transfer_app->add_option("--mode", t.mode, "target (serve a buffer) or initiator")
      ->capture_default_str()
      ->check(CLI::IsMember({"target", "initiator"}));
  transfer_app->add_option("--target", t.target, "initiator: the target's segment, host:port");
  transfer_app
      ->add_option("--local-hostname,--local_hostname", t.local_hostname,
                   "Host name peers reach this process by")
      ->capture_default_str();
  transfer_app
      ->add_option("--metadata", t.metadata_server,
                   "P2PHANDSHAKE, http://host:port/metadata or etcd://host:port[,...]")
      ->capture_default_str();
  transfer_app->add_option("--protocol", t.protocol, "tcp, shm or rdma")
      ->capture_default_str()
      ->check(CLI::IsMember({"tcp", "shm", "rdma"}));
  transfer_app->add_option("--device-name,--device_name", t.device_name,
                           "rdma: NICs to use, comma-separated (default: every active one)");
  transfer_app->add_option("--port", t.port, "target: data port (0: any free)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  transfer_app
      ->add_option("--buffer-size,--buffer_size", transfer->buffer_size,
                   "target: bytes to register")
      ->capture_default_str();
  transfer_app->add_option("--op", t.op, "read or write")
      ->capture_default_str()
      ->check(CLI::IsMember({"read", "write"}));
  transfer_app->add_option("--block-size,--block_size", transfer->block_size, "Bytes per request")
      ->capture_default_str();
  transfer_app->add_option("--batch-size,--batch_size", t.batch_size, "Requests per batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  transfer_app->add_option("--threads", t.threads, "Initiator threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  transfer_app->add_option("--duration", transfer->duration, "How long to run")
      ->capture_default_str();
  transfer_app
      ->add_option("--slice-size,--slice_size", transfer->slice_size,
                   "Largest piece of a request sent at once")
      ->capture_default_str();
  transfer_app->add_option("--connections", t.connections, "TCP connections per peer")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));

  auto store = std::make_shared<StoreBenchFlags>();
  bench::StoreBenchOptions& s = store->options;
  CLI::App* store_app = app->add_subcommand(
      "store",
      "Put/get throughput and latency through the client library; --validate checks "
      "every segment");
  store_app->add_option("--master", s.master, "host:port of a running master");
  store_app
      ->add_option("--metadata", s.metadata,
                   "P2PHANDSHAKE, http://host:port/metadata or etcd://host:port[,...]")
      ->capture_default_str();
  store_app->add_flag("--embedded", s.embedded,
                      "Start metadata, master and one store in this process");
  store_app
      ->add_option("--transport", s.transport,
                   "auto (shared memory to stores on this host) or tcp (never shared memory)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "tcp"}));
  store_app->add_option("--protocol", s.protocol, "tcp or rdma")
      ->capture_default_str()
      ->check(CLI::IsMember({"tcp", "rdma"}));
  store_app
      ->add_option("--local-hostname,--local_hostname", s.local_hostname,
                   "Host name peers reach this client by")
      ->capture_default_str();
  store_app
      ->add_option("--segment-size,--segment_size", store->segment_size,
                   "--embedded: bytes the store contributes")
      ->capture_default_str();
  store_app->add_option("--sizes", store->sizes, "Value sizes")
      ->capture_default_str()
      ->delimiter(',');
  store_app->add_option("--batch", s.batch_sizes, "Keys per call")
      ->capture_default_str()
      ->delimiter(',')
      ->check(CLI::Range(1, 4096));
  store_app->add_option("--ops", s.ops, "put, get")
      ->capture_default_str()
      ->delimiter(',')
      ->check(CLI::IsMember({"put", "get"}));
  store_app
      ->add_option(
          "--paths", s.paths,
          "zero-copy (registered memory), copy (the copying calls: values in memory of their own)")
      ->capture_default_str()
      ->delimiter(',')
      ->check(CLI::IsMember({"zero-copy", "copy"}));
  store_app->add_option("--duration", store->duration, "Length of each case")
      ->capture_default_str();
  store_app->add_option("--threads", s.threads, "Client threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  store_app->add_flag("--validate", s.validate,
                      "Write a pattern through every mounted segment, read it back, compare");
  store_app
      ->add_option("--validate-size,--validate_size", store->validate_size,
                   "--validate: bytes per segment")
      ->capture_default_str();
  store_app
      ->add_option("--validate-object-size,--validate_object_size", store->validate_object_size,
                   "--validate: bytes per object")
      ->capture_default_str();

  master_app->add_option("--json", master->options.json_path,
                         "Write the JSON summary to this file (stdout keeps the table)");
  store_app->add_option("--json", s.json_path,
                        "Write the JSON summary to this file (stdout keeps the table)");
  AddAuthTokenOption(master_app, &master->auth_token_file);
  AddAuthTokenOption(transfer_app, &transfer->auth_token_file);
  AddAuthTokenOption(store_app, &store->auth_token_file);
  return {app, [app, master_app, master, transfer_app, transfer, store_app, store] {
            if (master_app->parsed()) return RunMasterBenchCommand(*master);
            if (transfer_app->parsed()) return RunTransferBenchCommand(*transfer);
            if (store_app->parsed()) return RunStoreBenchCommand(*store);
            std::fprintf(stderr, "%s", app->help().c_str());
            return kExitUsage;
          }};
}

}  // namespace mooncake::cmd
