// `mooncake bench`: benchmarks. `bench master` is built; `bench transfer` and `bench store` come
// with the transfer engine and the client.
#include <cstdio>
#include <memory>
#include <string>

#include "bench/master_bench.h"
#include "cmd/command.h"
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

  std::vector<Command> pending = {
      AddPendingCommand(*app, "transfer", "Transfer engine throughput and latency"),
      AddPendingCommand(*app, "store", "Store put/get throughput and latency"),
  };
  return {app, [app, master_app, master, pending] {
            if (master_app->parsed()) return RunMasterBenchCommand(*master);
            for (const Command& command : pending) {
              if (command.app->parsed()) return command.run();
            }
            std::fprintf(stderr, "%s", app->help().c_str());
            return kExitUsage;
          }};
}

}  // namespace mooncake::cmd
