// A real cluster for integration tests: `mooncake metadata`, `mooncake master` and two
// `mooncake store` processes on 127.0.0.1, and clients of it in the test's own process. With
// auth_token_file_ set before SetUp(), every process and client gets that auth token.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/error_code.h"
#include "support/memory.h"
#include "support/subprocess.h"

namespace mooncake {

using client::Client;
using client::ClientConfig;
using client::ReplicateConfig;
using client::Slice;
using test::MappedBuffer;
using test::Subprocess;

inline constexpr uint64_t kMiB = 1u << 20;

inline std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/", name, "-", getpid());
}

// The bytes object `key` holds: derived from the key, so any reader can check them.
inline void FillFor(const std::string& key, char* p, size_t n) {
  test::FillRandom(p, n, std::hash<std::string>()(key));
}

// Values for `keys`, `size` bytes each, whose bytes FillFor derives from their keys: in[i] (in src)
// holds key i's value, out[i] (in dst) is where a test reads it back.
struct KeyedValues {
  KeyedValues(std::vector<std::string> names, size_t size)
      : keys(std::move(names)), src(keys.size() * size), dst(keys.size() * size) {
    for (size_t i = 0; i < keys.size(); ++i) {
      FillFor(keys[i], src.data() + i * size, size);
      in.push_back({src.data() + i * size, size});
      out.push_back({dst.data() + i * size, size});
    }
  }
  // Registers both buffers with `client`, for its zero-copy calls.
  bool RegisterWith(Client& client) {
    return client.RegisterBuffer(src.data(), src.size()).ok() &&
           client.RegisterBuffer(dst.data(), dst.size()).ok();
  }

  std::vector<std::string> keys;
  MappedBuffer src, dst;
  std::vector<Slice> in, out;
};

// The value of series `series` (name and labels exactly as rendered, e.g.
// `mooncake_client_keys_total{op="get"}`) in Prometheus text `body`, if it is there.
inline std::optional<double> SeriesValue(const std::string& body, const std::string& series) {
  const std::string needle = "\n" + series + " ";
  const size_t at = body.find(needle);
  if (at == std::string::npos) return std::nullopt;
  return std::stod(body.substr(at + needle.size()));
}

class StoreClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StartMetadata();
    if (HasFatalFailure()) return;
    StartMasters();
    if (HasFatalFailure()) return;
    for (int i = 0; i < 2; ++i) StartStore(i);
  }

  // Starts where descriptors are kept and sets metadata_url_: `mooncake metadata` here; the
  // fixture for highly available masters keeps them in its etcd.
  virtual void StartMetadata() {
    metadata_ = std::make_unique<Subprocess>(WithToken(std::vector<std::string>{
        MOONCAKE_BINARY, "metadata", "--host", "127.0.0.1", "--port", "0"}));
    std::optional<std::string> line = metadata_->WaitForLine("listening", absl::Seconds(20));
    ASSERT_TRUE(line.has_value()) << "mooncake metadata did not start";
    std::smatch m;
    ASSERT_TRUE(std::regex_search(*line, m, std::regex("(http://[0-9.:]+/metadata)")));
    metadata_url_ = m[1];
  }

  // Starts the master(s) and sets master_address_: one master here; a fixture for highly
  // available masters starts several.
  virtual void StartMasters() { StartMaster("0"); }

  void TearDown() override {
    for (auto& store : stores_) {
      if (store) {
        store->Signal(SIGTERM);
        EXPECT_EQ(store->Wait(absl::Seconds(20)), 0);
      }
    }
    if (master_) {
      master_->Signal(SIGTERM);
      EXPECT_EQ(master_->Wait(absl::Seconds(20)), 0);
    }
    if (metadata_) {
      metadata_->Signal(SIGTERM);
      EXPECT_EQ(metadata_->Wait(absl::Seconds(20)), 0);
    }
    for (const std::string& path : configs_) unlink(path.c_str());
  }

  // A master whose liveness TTL is short, so that tests of killed stores end soon.
  void StartMaster(const std::string& port, const std::string& client_live_ttl_sec = "2") {
    master_ = std::make_unique<Subprocess>(WithToken(std::vector<std::string>{
        MOONCAKE_BINARY, "master", "--rpc_address", "127.0.0.1", "--port", port, "--metrics-port",
        "0", "--client_live_ttl_sec", client_live_ttl_sec}));
    std::optional<std::string> line = master_->WaitForLine("listening", absl::Seconds(20));
    ASSERT_TRUE(line.has_value()) << "mooncake master did not start";
    std::smatch m;
    ASSERT_TRUE(std::regex_search(*line, m, std::regex("rpc=([0-9.]+:[0-9]+)")));
    master_address_ = m[1];
    ASSERT_TRUE(std::regex_search(*line, m, std::regex("metrics=[0-9.]+:([0-9]+)")));
    master_admin_port_ = std::stoi(m[1]);
  }

  // `hostname`: "127.0.0.1" (a free data port) or "127.0.0.1:port". `wrapper`: a command the
  // store runs under (e.g. `setarch -R`, so that a restarted store maps its segment where the
  // last one had it; `prlimit --as=N`), which must exec it in its own process.
  void StartStore(size_t index, uint64_t segment = 256 * kMiB,
                  const std::string& hostname = "127.0.0.1",
                  const std::vector<std::string>& wrapper = {}) {
    const std::string path = TempPath("store" + std::to_string(index) + ".json");
    std::ofstream(path) << nlohmann::json{
        {"local_hostname", hostname},
        {"metadata_server", metadata_url_},
        {"master_server_address", master_address_},
        {"protocol", "tcp"},
        {"global_segment_size", segment},
        {"local_buffer_size",
         0}}.dump();
    configs_.push_back(path);
    if (stores_.size() <= index) stores_.resize(index + 1);
    std::vector<std::string> argv = {MOONCAKE_BINARY,    "store",    "--config",    path,
                                     "--http-port",      "0",        "--http-host", "127.0.0.1",
                                     "--listen-address", "127.0.0.1"};
    argv.insert(argv.begin(), wrapper.begin(), wrapper.end());
    stores_[index] = std::make_unique<Subprocess>(WithToken(argv));
    std::optional<std::string> line = stores_[index]->WaitForLine("serving", absl::Seconds(20));
    ASSERT_TRUE(line.has_value()) << "mooncake store did not start";
    std::smatch m;
    ASSERT_TRUE(std::regex_search(*line, m, std::regex("http=127.0.0.1:([0-9]+)")));
    if (store_http_.size() <= index) store_http_.resize(index + 1);
    store_http_[index] = std::stoi(m[1]);
    ASSERT_TRUE(std::regex_search(*line, m, std::regex("serving segment ([0-9.]+:[0-9]+)")));
    if (store_segments_.size() <= index) store_segments_.resize(index + 1);
    store_segments_[index] = m[1];
  }

  // How the test's clients connect (the cluster's token included).
  ClientConfig ClientConfigFor(bool shm, uint64_t local_buffer = 16 * kMiB) {
    ClientConfig config;
    config.local_hostname = "127.0.0.1";
    config.listen_address = "127.0.0.1";
    config.metadata_server = metadata_url_;
    config.master_server_address = master_address_;
    config.global_segment_size = 0;
    config.local_buffer_size = local_buffer;
    config.enable_shm = shm;
    config.heartbeat_interval = absl::Milliseconds(200);
    if (!auth_token_file_.empty()) {
      absl::StatusOr<AuthToken> token = AuthToken::FromFile(auth_token_file_);
      EXPECT_TRUE(token.ok()) << token.status();
      if (token.ok()) config.auth = *token;
    }
    return config;
  }

  std::unique_ptr<Client> MakeClient(bool shm, uint64_t local_buffer = 16 * kMiB) {
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Create(ClientConfigFor(shm, local_buffer));
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  // Stops every store the fixture started (SIGTERM: they unmount).
  void StopStores() {
    for (auto& store : stores_) {
      store->Signal(SIGTERM);
      EXPECT_EQ(store->Wait(absl::Seconds(20)), 0);
      store.reset();
    }
  }

  // Waits until the master lists `count` segments.
  bool WaitForSegments(Client& client, size_t count, absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      auto segments = client.ListSegments();
      if (segments.ok() && segments->size() == count) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  // argv with --auth-token-file when the cluster has a token.
  std::vector<std::string> WithToken(std::vector<std::string> argv) const {
    if (!auth_token_file_.empty()) {
      argv.push_back("--auth-token-file");
      argv.push_back(auth_token_file_);
    }
    return argv;
  }

  std::string auth_token_file_;  // set before SetUp(): every process and client uses it
  int master_admin_port_ = 0;
  std::unique_ptr<Subprocess> metadata_, master_;
  std::vector<std::unique_ptr<Subprocess>> stores_;
  std::vector<std::string> configs_;
  std::vector<int> store_http_;              // the stores' /health and /metrics ports
  std::vector<std::string> store_segments_;  // their segments' names (data endpoints)
  std::string metadata_url_, master_address_;
};

}  // namespace mooncake
