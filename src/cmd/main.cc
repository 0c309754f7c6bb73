// The `mooncake` executable: one binary, one subcommand per service.
#include <sys/resource.h>

#ifdef MOONCAKE_STATIC_BINARY
#include <nss.h>
#include <openssl/crypto.h>
#endif

#include <cstdio>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "cmd/command.h"
#include "common/version.h"
#include "engine/rdma/device_probe.h"

namespace mooncake::cmd {
namespace {

void PrintVersion() {
  std::printf("mooncake %s\n", kVersion);
  std::vector<std::string> devices = engine::ListRdmaDevices();
  std::string list;
  for (const std::string& device : devices) list += (list.empty() ? "" : ",") + device;
  std::printf("rdma devices: %s\n", list.empty() ? "none" : list.c_str());
}

// The names the packages and the wheel install as aliases of a subcommand.
const char* SubcommandForProgramName(const std::string& program) {
  std::string base = program.substr(program.find_last_of('/') + 1);
  if (base == "mooncake_master") return "master";
  if (base == "mooncake_http_metadata_server") return "metadata";
  return nullptr;
}

// Services hold a descriptor per connection: take as many as the hard limit allows (the soft
// default, 1024, is far below what thousands of clients need).
void RaiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// The binary is static (src/CMakeLists.txt): it must never load a shared object of the host,
// which would bring a second C library into the process. So host names are looked up in the
// sources glibc has built in (/etc/hosts, then DNS through /etc/resolv.conf), whatever
// /etc/nsswitch.conf lists; and OpenSSL, used for HMAC-SHA256 and random nonces only, does not
// read the host's openssl.cnf, which may name provider modules to load.
void UseOnlyWhatIsLinkedIn() {
#ifdef MOONCAKE_STATIC_BINARY
  __nss_configure_lookup("hosts", "files dns");
  __nss_configure_lookup("services", "files");
  __nss_configure_lookup("protocols", "files");
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
#endif
}

int Main(int argc, char** argv) {
  UseOnlyWhatIsLinkedIn();
  RaiseDescriptorLimit();
  // Debian builds Abseil without NDEBUG, which leaves its mutex deadlock detector on: a global
  // graph consulted on every lock, a cost (and a shared lock) on every call of the master. The
  // tests keep it on; the product does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::vector<char*> args(argv, argv + argc);
  std::string alias_storage;
  if (const char* alias = SubcommandForProgramName(argv[0])) {
    alias_storage = alias;
    args.insert(args.begin() + 1, alias_storage.data());
  }

  // The master takes the original's gflags habits (--flagfile, -v=1, -port=50051).
  std::vector<std::string> rewritten;
  if (args.size() > 1 && std::string_view(args[1]) == "master") {
    absl::StatusOr<std::vector<std::string>> master_args =
        RewriteGflagsHabits(std::vector<std::string>(args.begin() + 2, args.end()));
    if (!master_args.ok()) {
      std::fprintf(stderr, "mooncake master: %s\n",
                   std::string(master_args.status().message()).c_str());
      return kExitUsage;
    }
    rewritten = *std::move(master_args);
    args.resize(2);
    for (std::string& arg : rewritten) args.push_back(arg.data());
  }

  CLI::App app("mooncake: a distributed KV cache for LLM inference", "mooncake");
  bool show_version = false;
  app.add_flag("--version", show_version, "Print the version and the RDMA devices found");
  app.require_subcommand(0, 1);

  std::vector<Command> commands = {
      AddMetadataCommand(app),
      AddMasterCommand(app),
      AddStoreCommand(app),
      AddBenchCommand(app),
  };

  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    // --help is a ParseError too, whose exit code is 0; every real parse error exits 2.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  if (show_version) {
    PrintVersion();
    return kExitOk;
  }
  for (const Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  std::fprintf(stderr, "%s", app.help().c_str());
  return kExitUsage;
}

}  // namespace

}  // namespace mooncake::cmd

int main(int argc, char** argv) { return mooncake::cmd::Main(argc, argv); }
