// The `mooncake` executable's command line: version, help, subcommands, aliases, bad flags.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/version.h"
#include "nlohmann/json.hpp"
#include "support/raw_socket.h"
#include "support/subprocess.h"

namespace mooncake {
namespace {

using test::RunCommand;
using test::RunResult;

TEST(CliTest, VersionNamesTheReleaseAndRdmaDevices) {
  RunResult result = RunCommand({MOONCAKE_BINARY, "--version"});
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output.rfind(std::string("mooncake ") + kVersion + "\n", 0), 0u)
      << result.output;
  EXPECT_NE(result.output.find("rdma devices: "), std::string::npos);
}

TEST(CliTest, HelpListsEverySubcommand) {
  RunResult result = RunCommand({MOONCAKE_BINARY, "--help"});
  EXPECT_EQ(result.status, 0);
  for (const char* name : {"metadata", "master", "store", "bench"}) {
    EXPECT_NE(result.output.find(name), std::string::npos) << name;
  }
  RunResult metadata_help = RunCommand({MOONCAKE_BINARY, "metadata", "--help"});
  EXPECT_EQ(metadata_help.status, 0);
  EXPECT_NE(metadata_help.output.find("--port"), std::string::npos);
}

TEST(CliTest, NoSubcommandOrUnknownOneIsAUsageError) {
  EXPECT_EQ(RunCommand({MOONCAKE_BINARY}).status, 2);
  EXPECT_EQ(RunCommand({MOONCAKE_BINARY, "frobnicate"}).status, 2);
  EXPECT_EQ(RunCommand({MOONCAKE_BINARY, "metadata", "--port", "70000"}).status, 2);
  EXPECT_EQ(RunCommand({MOONCAKE_BINARY, "metadata", "--port", "abc"}).status, 2);
  EXPECT_EQ(RunCommand({MOONCAKE_BINARY, "metadata", "--no-such-flag"}).status, 2);
  EXPECT_EQ(RunCommand({MOONCAKE_BINARY, "metadata", "--max-value-size", "50%"}).status, 2);
  EXPECT_EQ(RunCommand({MOONCAKE_BINARY, "metadata", "--log-level", "loud"}).status, 2);
}

// Runs `mooncake store` with `args` and a config file holding `config`; returns its exit status
// and what it printed on stdout and stderr.
RunResult RunStore(const std::string& config, std::vector<std::string> args = {}) {
  const std::string path =
      ::testing::TempDir() + "/store-cli-" + std::to_string(getpid()) + ".json";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(config.c_str(), f);
    std::fclose(f);
  }
  std::string command = std::string(MOONCAKE_BINARY) + " store --config " + path;
  for (const std::string& arg : args) command += " " + arg;
  RunResult result = RunCommand({"/bin/sh", "-c", command + " 2>&1"}, absl::Seconds(60));
  std::remove(path.c_str());
  return result;
}

TEST(CliTest, StoreRefusesBadConfigWithOneLineAndExitTwo) {
  const std::string good =
      R"({"local_hostname": "127.0.0.1", "master_server_address": "127.0.0.1:1",
          "protocol": "tcp", "global_segment_size": "64mb"})";
  struct Case {
    std::string config;
    std::vector<std::string> args;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {"{", {}, "is not valid JSON"},
           {"[]", {}, "must be a JSON object"},
           {R"({"global_segment_size": true})", {}, "global_segment_size"},
           {good, {"--protocol", "udp"}, "unknown protocol 'udp'"},
           {good, {"--global-segment-size", "0"}, "global_segment_size must be > 0"},
           {good, {"--global-segment-size", "64tb"}, "larger than this machine's memory"},
           {good, {"--global-segment-size", "50%"}, "--global-segment-size"},
           {good, {"--wait-for-cluster", "0"}, "master at 127.0.0.1:1 does not answer"},
           {good, {"--wait-for-cluster", "soon"}, "--wait-for-cluster: invalid duration"},
       }) {
    RunResult result = RunStore(c.config, c.args);
    EXPECT_EQ(result.status, 2) << c.config << " -> " << result.output;
    EXPECT_NE(result.output.find("mooncake store: "), std::string::npos) << result.output;
    EXPECT_NE(result.output.find(c.says), std::string::npos) << result.output;
    EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 1) << result.output;
  }
  RunResult missing =
      RunCommand({"/bin/sh", "-c",
                  std::string(MOONCAKE_BINARY) + " store --config /nonexistent/store.json 2>&1"});
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.output.find("cannot read config file '/nonexistent/store.json'"),
            std::string::npos);
  EXPECT_EQ(RunCommand({MOONCAKE_BINARY, "store"}).status, 2);  // --config is required
}

// The services of a machine start in any order: a store started before its master waits for it
// (by default for ever), then serves.
TEST(CliTest, AStoreStartedBeforeItsMasterServesOnceTheMasterIsUp) {
  test::Subprocess metadata({MOONCAKE_BINARY, "metadata", "--host", "127.0.0.1", "--port", "0"});
  std::optional<std::string> listening = metadata.WaitForLine("listening on", absl::Seconds(20));
  ASSERT_TRUE(listening.has_value());
  std::string url = listening->substr(listening->find("http://"));
  url = url.substr(0, url.find(' '));
  const int master_port = test::PortOutsideEngineRange();
  ASSERT_NE(master_port, 0);
  const std::string path = std::filesystem::temp_directory_path() /
                           ("mooncake-wait-up-" + std::to_string(getpid()) + ".json");
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fprintf(f,
                 R"({"local_hostname": "127.0.0.1", "metadata_server": "%s",
                     "master_server_address": "127.0.0.1:%d", "protocol": "tcp",
                     "global_segment_size": "16MiB"})",
                 url.c_str(), master_port);
    std::fclose(f);
  }
  test::Subprocess store({MOONCAKE_BINARY, "store", "--config", path, "--http-port", "0",
                          "--listen-address", "127.0.0.1"});
  // Nothing to serve without a master, and no exit either.
  EXPECT_FALSE(store.WaitForLine("serving segment", absl::Seconds(2)).has_value());
  EXPECT_FALSE(store.Wait(absl::ZeroDuration()).has_value()) << "the store gave up";
  test::Subprocess master({MOONCAKE_BINARY, "master", "--rpc_address", "127.0.0.1", "--port",
                           std::to_string(master_port), "--metrics_port", "0"});
  EXPECT_TRUE(store.WaitForLine("serving segment", absl::Seconds(30)).has_value())
      << store.output();
  store.Signal(SIGTERM);
  EXPECT_EQ(store.Wait(absl::Seconds(20)), 0);
  std::remove(path.c_str());
}

TEST(CliTest, AStoreWaitingForItsClusterGivesUpAfterItsBoundOrStopsOnASignal) {
  const std::string path = std::filesystem::temp_directory_path() /
                           ("mooncake-wait-" + std::to_string(getpid()) + ".json");
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(R"({"local_hostname": "127.0.0.1", "master_server_address": "127.0.0.1:1",
                   "protocol": "tcp", "global_segment_size": "16MiB"})",
               f);
    std::fclose(f);
  }
  // Bounded: a usage error once the bound has passed, saying so.
  const absl::Time start = absl::Now();
  RunResult bounded = RunCommand(
      {"/bin/sh", "-c",
       std::string(MOONCAKE_BINARY) + " store --config " + path + " --wait-for-cluster 2s 2>&1"},
      absl::Seconds(60));
  EXPECT_EQ(bounded.status, 2) << bounded.output;
  EXPECT_GE(absl::Now() - start, absl::Seconds(2));
  EXPECT_NE(bounded.output.find("waiting for the cluster"), std::string::npos) << bounded.output;
  EXPECT_NE(bounded.output.find("gave up after 2s"), std::string::npos) << bounded.output;
  // Unbounded, stopped while it waits: a clean exit.
  test::Subprocess store({MOONCAKE_BINARY, "store", "--config", path, "--http-port", "0"});
  EXPECT_FALSE(store.Wait(absl::Seconds(1)).has_value());
  store.Signal(SIGTERM);
  EXPECT_EQ(store.Wait(absl::Seconds(10)), 0);
  std::remove(path.c_str());
}

// SPEC.md §12: the flags the original master's users bring are taken; its other flags are refused
// by name, unknown ones as unknown, and both exit 2.
TEST(CliTest, TheOriginalMastersFlagsAreTakenOrRefusedByName) {
  RunResult unsupported = RunCommand(
      {"/bin/sh", "-c", std::string(MOONCAKE_BINARY) + " master --enable_snapshot=true 2>&1"});
  EXPECT_EQ(unsupported.status, 2);
  EXPECT_NE(unsupported.output.find("--enable_snapshot is a flag of the original Mooncake master "
                                    "that this build does not support"),
            std::string::npos)
      << unsupported.output;
  RunResult unknown =
      RunCommand({"/bin/sh", "-c", std::string(MOONCAKE_BINARY) + " master --no_such_flag 2>&1"});
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.output.find("unknown argument '--no_such_flag'"), std::string::npos)
      << unknown.output;
  RunResult version = RunCommand({MOONCAKE_BINARY, "master", "--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.output, std::string("mooncake ") + kVersion + "\n");

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("mooncake-flags-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::FILE* f = std::fopen((dir / name).c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
    return (dir / name).string();
  };
  // --flagfile naming --config_path, gflags' single dashes and -v=1; the command line wins over
  // the flag file and the JSON file (rpc_address: 127.0.0.2, not 127.0.0.9 or 127.0.0.1).
  const std::string json = write("master.json",
                                 R"({"rpc_port": 0, "metrics_port": 0, "rpc_address": "127.0.0.1",
                                     "client_ttl": 20, "eviction-ratio": 0.1})");
  const std::string flags =
      write("master.flags", "# the original's flag file\n--config_path=" + json +
                                "\n-v=1\n-cluster_id=migrated\n-rpc_address=127.0.0.9\n");
  {
    test::Subprocess master({MOONCAKE_BINARY, "master", "--flagfile=" + flags, "-rpc_address",
                             "127.0.0.2", "--log_dir", dir.string()});
    std::optional<std::string> line = master.WaitForLine("listening", absl::Seconds(20));
    ASSERT_TRUE(line.has_value());
    EXPECT_NE(line->find("rpc=127.0.0.2:"), std::string::npos) << *line;
    EXPECT_NE(line->find("(cluster migrated)"), std::string::npos) << *line;
    master.Signal(SIGTERM);
    EXPECT_EQ(master.Wait(absl::Seconds(20)), 0);
  }
  EXPECT_TRUE(std::filesystem::file_size(dir / "mooncake_master.log") > 0);
  // Every other flag of SPEC.md §12.
  {
    test::Subprocess master({MOONCAKE_BINARY,
                             "master",
                             "--port",
                             "0",
                             "--metrics_port",
                             "0",
                             "--rpc_interface",
                             "lo",
                             "--metrics_host",
                             "127.0.0.1",
                             "--max_kv_soft_pin_ttl",
                             "10m",
                             "--rpc_conn_timeout_seconds",
                             "30",
                             "--rpc_enable_tcp_no_delay",
                             "false",
                             "--memory_allocator",
                             "cachelib",
                             "--enable_offload",
                             "--offload_on_evict",
                             "--promotion_on_hit",
                             "--v",
                             "1"});
    std::optional<std::string> line = master.WaitForLine("listening", absl::Seconds(20));
    ASSERT_TRUE(line.has_value());
    EXPECT_NE(line->find("rpc=127.0.0.1:"), std::string::npos) << *line;  // lo's address
    master.Signal(SIGTERM);
    EXPECT_EQ(master.Wait(absl::Seconds(20)), 0);
  }
  // A config file's errors: a flag of the original we lack, an unknown key, not an object.
  for (const auto& [text, says] : std::vector<std::pair<std::string, std::string>>{
           {R"({"cxl_size": 5})", "'cxl_size' is a flag of the original Mooncake master"},
           {R"({"no_such": 1})", "unknown flag 'no_such'"},
           {R"([1])", "is not a JSON object of flags"},
           {R"({"metrics_port": "x"})", "'metrics_port'"},
       }) {
    RunResult bad = RunCommand({"/bin/sh", "-c",
                                std::string(MOONCAKE_BINARY) + " master --config_path " +
                                    write("bad.json", text) + " 2>&1"});
    EXPECT_EQ(bad.status, 2) << text;
    EXPECT_NE(bad.output.find(says), std::string::npos) << text << " -> " << bad.output;
  }
  RunResult no_file = RunCommand(
      {"/bin/sh", "-c", std::string(MOONCAKE_BINARY) + " master --flagfile=/nonexistent 2>&1"});
  EXPECT_EQ(no_file.status, 2);
  EXPECT_NE(no_file.output.find("--flagfile: cannot read '/nonexistent'"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(CliTest, PortInUseIsARuntimeFailure) {
  test::Subprocess first({MOONCAKE_BINARY, "metadata", "--host", "127.0.0.1", "--port", "0"});
  std::optional<std::string> line = first.WaitForLine("listening on", absl::Seconds(20));
  ASSERT_TRUE(line.has_value());
  std::string port = line->substr(line->rfind(':') + 1);
  port = port.substr(0, port.find('/'));
  RunResult second =
      RunCommand({MOONCAKE_BINARY, "metadata", "--host", "127.0.0.1", "--port", port});
  EXPECT_EQ(second.status, 1);
}

TEST(CliTest, MasterAliasRunsTheMasterSubcommand) {
  // Installed as a symlink named mooncake_master by the packages and the wheel.
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("mooncake-cli-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::create_symlink(MOONCAKE_BINARY, dir / "mooncake_master");
  RunResult help = RunCommand({(dir / "mooncake_master").string(), "--help"});
  // A bad flag of the master's own: it is the master that parses it, and exits 2.
  RunResult run = RunCommand({(dir / "mooncake_master").string(), "--eviction_ratio=2"});
  std::filesystem::remove_all(dir);
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.output.find("--eviction_high_watermark_ratio"), std::string::npos);
  EXPECT_EQ(run.status, 2);
}

TEST(BenchCliTest, MasterBenchRunsAndReportsJson) {
  test::RunResult result =
      test::RunCommand({MOONCAKE_BINARY, "bench", "master", "--duration", "200ms", "--threads", "2",
                        "--memory-objects", "20000", "--segments", "3"},
                       absl::Seconds(120));
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find(", 3 segments\n"), std::string::npos) << result.output;
  // The JSON summary is the last line.
  std::string output = result.output;
  while (!output.empty() && output.back() == '\n') output.pop_back();
  const std::string last = output.substr(output.rfind('\n') + 1);
  nlohmann::json summary = nlohmann::json::parse(last);
  ASSERT_EQ(summary["phases"].size(), 6u) << last;
  EXPECT_EQ(summary["segments"], 3) << last;
  for (const auto& phase : summary["phases"]) {
    EXPECT_EQ(phase["errors"], 0) << phase;
    EXPECT_GT(phase["keys_per_s"].get<double>(), 0) << phase;
  }
#ifndef MOONCAKE_SANITIZED  // the sanitizer's allocator makes the resident-memory figure
                            // meaningless
  EXPECT_GT(summary["memory_bytes_per_object"].get<double>(), 0);
#endif
}

// --keys bounds the objects each put phase writes (whole batches of them), and the reads that
// follow find every key they ask for among those.
TEST(BenchCliTest, MasterBenchWritesAtMostKeysAndReadsOnlyThose) {
  test::RunResult result =
      test::RunCommand({MOONCAKE_BINARY, "bench", "master", "--duration", "2s", "--threads", "2",
                        "--batch", "16", "--keys", "1000", "--memory-objects", "0"},
                       absl::Seconds(120));
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("objects written        992\n"), std::string::npos) << result.output;
  std::string output = result.output;
  while (!output.empty() && output.back() == '\n') output.pop_back();
  nlohmann::json summary = nlohmann::json::parse(output.substr(output.rfind('\n') + 1));
  ASSERT_EQ(summary["phases"].size(), 3u) << summary;
  for (const auto& phase : summary["phases"]) {
    EXPECT_EQ(phase["objects"], 992) << phase;  // 62 whole batches of 16
    EXPECT_EQ(phase["errors"], 0) << phase;
  }
}

TEST(BenchCliTest, BadBenchFlagsAreUsageErrors) {
  EXPECT_EQ(test::RunCommand({MOONCAKE_BINARY, "bench", "transfer"}).status, 2);  // no --target
  EXPECT_EQ(test::RunCommand({MOONCAKE_BINARY, "bench", "store"}).status, 2);     // no --master
  EXPECT_EQ(
      test::RunCommand({MOONCAKE_BINARY, "bench", "store", "--embedded", "--sizes", "0"}).status,
      2);
  EXPECT_EQ(test::RunCommand({MOONCAKE_BINARY, "bench", "store", "--master", "127.0.0.1:1"}).status,
            2);
  EXPECT_EQ(test::RunCommand({MOONCAKE_BINARY, "bench"}).status, 2);
  EXPECT_EQ(test::RunCommand({MOONCAKE_BINARY, "bench", "master", "--duration", "-1s"}).status, 2);
  EXPECT_EQ(test::RunCommand({MOONCAKE_BINARY, "bench", "master", "--segments", "0"}).status, 2);
  EXPECT_EQ(test::RunCommand({MOONCAKE_BINARY, "bench", "master", "--keys", "100"}).status, 2);
}

// The JSON summary printed as the last line of a bench run.
nlohmann::json LastJsonLine(std::string output) {
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return nlohmann::json::parse(output.substr(output.rfind('\n') + 1), nullptr, false);
}

TEST(BenchCliTest, StoreBenchOnAnEmbeddedClusterReportsEveryCase) {
  for (const char* transport : {"auto", "tcp"}) {
    test::RunResult run =
        test::RunCommand({MOONCAKE_BINARY, "bench", "store", "--embedded", "--transport", transport,
                          "--segment-size", "256MiB", "--sizes", "4KiB,1MiB", "--batch", "1,4",
                          "--duration", "150ms"},
                         absl::Seconds(120));
    ASSERT_EQ(run.status, 0) << run.output;
    nlohmann::json summary = LastJsonLine(run.output);
    EXPECT_EQ(summary["transport"], std::string(transport) == "tcp" ? "tcp" : "shm");
    // 2 paths x 2 sizes x 2 batch sizes x 2 operations.
    ASSERT_EQ(summary["cases"].size(), 16u) << run.output;
    for (const auto& c : summary["cases"]) {
      EXPECT_EQ(c["failed"], 0) << c;
      EXPECT_GT(c["gb_per_s"].get<double>(), 0) << c;
      EXPECT_GT(c["p50_us"].get<double>(), 0) << c;
      EXPECT_GE(c["p99_us"].get<double>(), c["p50_us"].get<double>()) << c;
    }
    EXPECT_NE(run.output.find("p999 us"), std::string::npos);  // the table
  }
}

TEST(BenchCliTest, StoreValidateChecksEverySegment) {
  test::RunResult run = test::RunCommand(
      {MOONCAKE_BINARY, "bench", "store", "--embedded", "--validate", "--validate-size", "8MiB"},
      absl::Seconds(120));
  ASSERT_EQ(run.status, 0) << run.output;
  nlohmann::json summary = LastJsonLine(run.output);
  EXPECT_EQ(summary["ok"], true) << run.output;
  ASSERT_EQ(summary["segments"].size(), 1u);
  EXPECT_EQ(summary["segments"][0]["objects"], 8);
  EXPECT_EQ(summary["segments"][0]["mismatched"], 0);
  EXPECT_NE(run.output.find("verdict: OK: 8 object(s) on 1 segment(s)"), std::string::npos)
      << run.output;
}

// Output a CI log can follow: progress lines on stderr when it is not a terminal, the table on
// stdout as it is made, and the JSON summary in a file of its own with --json.
TEST(BenchCliTest, OutputForLogsAndScripts) {
  const std::string json = std::filesystem::temp_directory_path() /
                           ("mooncake-bench-" + std::to_string(getpid()) + ".json");
  test::RunResult run = test::RunCommand(
      {"/bin/sh", "-c",
       std::string(MOONCAKE_BINARY) +
           " bench store --embedded --segment-size 64MiB --sizes 4KiB --batch 1,4 --ops put"
           " --paths zero-copy --duration 0.2s --json " +
           json + " 2>/dev/null"},
      absl::Seconds(120));
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_EQ(run.output.find("{\"bench\""), std::string::npos) << "JSON on stdout: " << run.output;
  EXPECT_NE(run.output.find("GB/s"), std::string::npos) << run.output;
  std::ifstream in(json);
  nlohmann::json summary = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(summary.is_discarded());
  EXPECT_EQ(summary["cases"].size(), 2u);
  std::remove(json.c_str());
  test::RunResult progress = test::RunCommand(
      {"/bin/sh", "-c",
       std::string(MOONCAKE_BINARY) +
           " bench store --embedded --segment-size 64MiB --sizes 4KiB --batch 1,4 --ops put"
           " --paths zero-copy --duration 0.2s 2>&1 >/dev/null"},
      absl::Seconds(120));
  EXPECT_NE(progress.output.find("bench store: case 1/2: put zero-copy"), std::string::npos)
      << progress.output;
  EXPECT_NE(progress.output.find("bench store: case 2/2"), std::string::npos) << progress.output;
  test::RunResult unwritable = test::RunCommand(
      {"/bin/sh", "-c",
       std::string(MOONCAKE_BINARY) +
           " bench store --embedded --segment-size 64MiB --validate --validate-size 4MiB --json "
           "/nonexistent/dir/x.json 2>&1"},
      absl::Seconds(120));
  EXPECT_EQ(unwritable.status, 1);
  EXPECT_NE(unwritable.output.find("cannot write --json /nonexistent/dir/x.json"),
            std::string::npos)
      << unwritable.output;
}

TEST(BenchCliTest, TransferBenchBetweenATargetAndAnInitiator) {
  test::Subprocess target({MOONCAKE_BINARY, "bench", "transfer", "--mode", "target",
                           "--local-hostname", "127.0.0.1", "--buffer-size", "64MiB"});
  std::optional<std::string> ready = target.WaitForLine("target ready", absl::Seconds(20));
  ASSERT_TRUE(ready.has_value());
  const std::string segment =
      ready->substr(ready->find("segment=") + 8,
                    ready->find(' ', ready->find("segment=")) - ready->find("segment=") - 8);
  for (const char* op : {"write", "read"}) {
    test::RunResult run = test::RunCommand(
        {MOONCAKE_BINARY, "bench", "transfer", "--target", segment, "--op", op, "--block-size",
         "256KiB", "--batch-size", "8", "--threads", "2", "--duration", "300ms"},
        absl::Seconds(60));
    ASSERT_EQ(run.status, 0) << run.output;
    nlohmann::json summary = LastJsonLine(run.output);
    EXPECT_EQ(summary["failed"], 0) << run.output;
    EXPECT_GT(summary["gb_per_s"].get<double>(), 0);
    EXPECT_GT(summary["requests"].get<int>(), 0);
  }
  // The same target through shared memory (it is on this host).
  test::RunResult shm = test::RunCommand(
      {MOONCAKE_BINARY, "bench", "transfer", "--target", segment, "--protocol", "shm", "--op",
       "read", "--block-size", "1MiB", "--batch-size", "4", "--duration", "300ms"},
      absl::Seconds(60));
  ASSERT_EQ(shm.status, 0) << shm.output;
  EXPECT_EQ(LastJsonLine(shm.output)["protocol"], "shm");
  // A batch larger than the target's buffer is a usage error, not a crash.
  EXPECT_EQ(test::RunCommand({MOONCAKE_BINARY, "bench", "transfer", "--target", segment,
                              "--block-size", "64MiB", "--batch-size", "2"})
                .status,
            2);
  target.Signal(SIGTERM);
  EXPECT_EQ(target.Wait(absl::Seconds(20)), 0);
}

TEST(BenchCliTest, RdmaWithoutADeviceIsAClearError) {
  test::RunResult run = test::RunCommand(
      {MOONCAKE_BINARY, "bench", "transfer", "--mode", "target", "--protocol", "rdma"});
  EXPECT_EQ(run.status, 1);
}

}  // namespace
}  // namespace mooncake
