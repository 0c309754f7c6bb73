// `mooncake bench`: benchmarks. `bench master` is built; `bench transfer` and `bench store` come
// with the transfer engine and the client.
#include <cstdio>
#include <memory>
#include <string>

#include "bench/master_bench.h"
#include "bench/transfer_bench.h"
#include "cmd/command.h"
#include "cmd/signals.h"
#include "common/logging.h"
#include "common/units.h"

namespace mooncake::cmd {
namespace {

struct MasterBenchFlags {
  bench::MasterBenchOptions options;
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
  return bench::RunMasterBench(flags.options);
}

struct TransferBenchFlags {
  bench::TransferBenchOptions options;
  std::string duration = "5s";
  std::string buffer_size = "1GiB";
  std::string block_size = "1MiB";
  std::string slice_size = "1MiB";
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
  if (flags.options.mode == "target") BlockTerminationSignals();
  return bench::RunTransferBench(flags.options, [] { WaitForTerminationSignal(); });
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
  master_app->add_option("--value-size,--value_size", master->options.value_size, "Object size")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
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
      ->add_option("--metadata", t.metadata_server, "P2PHANDSHAKE or http://host:port/metadata")
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

  std::vector<Command> pending = {
      AddPendingCommand(*app, "store", "Store put/get throughput and latency"),
  };
  return {app, [app, master_app, master, transfer_app, transfer, pending] {
            if (master_app->parsed()) return RunMasterBenchCommand(*master);
            if (transfer_app->parsed()) return RunTransferBenchCommand(*transfer);
            for (const Command& command : pending) {
              if (command.app->parsed()) return command.run();
            }
            std::fprintf(stderr, "%s", app->help().c_str());
            return kExitUsage;
          }};
}

}  // namespace mooncake::cmd
