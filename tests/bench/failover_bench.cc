// Failover of masters elected in etcd, measured on a real cluster on 127.0.0.1: one etcd member,
// three `mooncake master --enable_ha` (default lease TTL), two stores, and a client in this process
// whose threads put and get values and check every byte they read. The leader is killed with
// SIGKILL `--kills` times (a new master is started after each kill, so three always run);
// for each kill the program records the time from the kill to the client's first successful
// call, and to the moment every thread has succeeded again. At the end every object whose put
// succeeded is read back and checked: objects lost and wrong bytes must be 0.
//
// With --remount_objects N it then measures recovery of a store holding N objects: it puts them
// on one store, kills the leader, and reports the time from the new leader's election to every
// object being readable again (the store's remount with its index, and the master's rebuild).
//
//   build/tests/failover_bench [--kills 20] [--threads 4] [--remount_objects 100000]
//                              [--remount_object_bytes 4096]
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "http/etcd_leader.h"
#include "nlohmann/json.hpp"
#include "support/etcd.h"
#include "support/memory.h"
#include "support/subprocess.h"

namespace mooncake {
namespace {

using client::Client;
using client::ClientConfig;
using test::Subprocess;

constexpr char kCluster[] = "failover_bench";

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

class Cluster {
 public:
  bool Start() {
    etcd_ = std::make_unique<test::EtcdCluster>(1);
    if (!etcd_->ok()) return Fail("etcd did not start (is etcd-server installed?)");
    etcd_client_ = etcd_->NewClient();
    metadata_ = std::make_unique<Subprocess>(std::vector<std::string>{
        MOONCAKE_BINARY, "metadata", "--host", "127.0.0.1", "--port", "0"});
    std::optional<std::string> line = metadata_->WaitForLine("listening", absl::Seconds(20));
    std::smatch m;
    if (!line || !std::regex_search(*line, m, std::regex("(http://[0-9.:]+/metadata)"))) {
      return Fail("mooncake metadata did not start");
    }
    metadata_url_ = m[1];
    for (int i = 0; i < 3; ++i) {
      if (!StartMaster()) return false;
    }
    if (!Leader(absl::Seconds(20))) return Fail("no master leads");
    for (int i = 0; i < 2; ++i) {
      if (!StartStore(i)) return false;
    }
    return true;
  }

  ~Cluster() {
    for (auto& store : stores_) store->Signal(SIGTERM);
    for (auto& store : stores_) store->Wait(absl::Seconds(20));
    for (auto& [port, master] : masters_) master->Signal(SIGTERM);
    for (auto& [port, master] : masters_) master->Wait(absl::Seconds(20));
    if (metadata_) {
      metadata_->Signal(SIGTERM);
      metadata_->Wait(absl::Seconds(20));
    }
    for (const std::string& path : configs_) unlink(path.c_str());
  }

  bool StartMaster() {
    auto master = std::make_unique<Subprocess>(std::vector<std::string>{
        MOONCAKE_BINARY, "master", "--rpc_address", "127.0.0.1", "--port", "0", "--metrics-port",
        "0", "--enable_ha", "--etcd_endpoints", etcd_->endpoints(), "--cluster_id", kCluster});
    std::optional<std::string> line = master->WaitForLine("listening", absl::Seconds(20));
    std::smatch m;
    if (!line || !std::regex_search(*line, m, std::regex("rpc=[0-9.]+:([0-9]+)"))) {
      return Fail("mooncake master did not start");
    }
    masters_[std::stoi(m[1])] = std::move(master);
    return true;
  }

  bool StartStore(int index) {
    const std::string path =
        "/tmp/failover_bench_store" + std::to_string(index) + "-" + std::to_string(getpid());
    std::ofstream(path) << nlohmann::json{
        {"local_hostname", "127.0.0.1"},
        {"metadata_server", metadata_url_},
        {"master_server_address", address()},
        {"protocol", "tcp"},
        {"global_segment_size", uint64_t{1} << 30},
        {"local_buffer_size",
         0}}.dump();
    configs_.push_back(path);
    auto store = std::make_unique<Subprocess>(
        std::vector<std::string>{MOONCAKE_BINARY, "store", "--config", path, "--http-port", "0",
                                 "--http-host", "127.0.0.1", "--listen-address", "127.0.0.1"});
    std::optional<std::string> line = store->WaitForLine("serving", absl::Seconds(20));
    std::smatch m;
    if (!line || !std::regex_search(*line, m, std::regex("serving segment ([0-9.:]+)"))) {
      return Fail("mooncake store did not start");
    }
    segments_.push_back(m[1]);
    stores_.push_back(std::move(store));
    return true;
  }

  // The leader etcd names, newer than `after`.
  std::optional<http::LeaderInfo> Leader(absl::Duration timeout, uint64_t after = 0) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      absl::StatusOr<std::optional<http::LeaderInfo>> leader =
          http::ReadLeader(*etcd_client_, http::LeaderKey(kCluster));
      if (leader.ok() && leader->has_value() && (*leader)->epoch > after) return **leader;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return std::nullopt;
  }

  // Kills the leader; returns the time of the kill and its epoch.
  std::optional<std::pair<absl::Time, uint64_t>> KillLeader() {
    std::optional<http::LeaderInfo> leader = Leader(absl::Seconds(20));
    if (!leader) return std::nullopt;
    const int port = std::stoi(leader->address.substr(leader->address.rfind(':') + 1));
    auto it = masters_.find(port);
    if (it == masters_.end()) return std::nullopt;
    const absl::Time killed = absl::Now();
    it->second->Signal(SIGKILL);
    it->second->Wait(absl::Seconds(10));
    masters_.erase(it);
    return std::make_pair(killed, leader->epoch);
  }

  std::string address() const { return "etcd://" + etcd_->endpoints() + "/" + kCluster; }
  const std::vector<std::string>& segments() const { return segments_; }
  ClientConfig ClientConfigFor() const {
    ClientConfig config;
    config.local_hostname = "127.0.0.1";
    config.listen_address = "127.0.0.1";
    config.metadata_server = metadata_url_;
    config.master_server_address = address();
    config.protocol = "tcp";
    config.enable_shm = false;  // the bytes cross TCP, as between hosts
    config.local_buffer_size = 256u << 20;
    config.global_segment_size = 0;  // the stores hold every object: nothing is evicted
    return config;
  }

 private:
  bool Fail(const std::string& why) {
    std::fprintf(stderr, "failover_bench: %s\n", why.c_str());
    return false;
  }

  std::unique_ptr<test::EtcdCluster> etcd_;
  std::unique_ptr<http::EtcdClient> etcd_client_;
  std::unique_ptr<Subprocess> metadata_;
  std::string metadata_url_;
  std::map<int, std::unique_ptr<Subprocess>> masters_;
  std::vector<std::unique_ptr<Subprocess>> stores_;
  std::vector<std::string> segments_;
  std::vector<std::string> configs_;
};

int Run(int kills, int threads, int remount_objects, int remount_object_bytes) {
  Cluster cluster;
  if (!cluster.Start()) return 1;
  absl::StatusOr<std::unique_ptr<Client>> made = Client::Create(cluster.ClientConfigFor());
  if (!made.ok()) {
    std::fprintf(stderr, "failover_bench: client: %s\n", made.status().ToString().c_str());
    return 1;
  }
  Client& client = **made;

  struct Done {
    std::string key;
    size_t size;
  };
  std::vector<std::vector<Done>> done(threads);
  absl::Mutex mu;
  // Per thread: when its first put-and-get that started after `mark` succeeded.
  std::vector<absl::Time> first_ok(threads, absl::InfiniteFuture());
  absl::Time mark = absl::InfinitePast();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, ops{0}, failed{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; !stop.load(); ++i) {
        const absl::Time started = absl::Now();
        const std::string key = "f" + std::to_string(t) + "_" + std::to_string(i);
        const size_t size = 1024 + rng() % (32 * 1024);
        bool ok = client.Put(key, test::BytesFor(key, size)).ok();
        if (ok) done[t].push_back(Done{key, size});
        if (!done[t].empty()) {
          const Done& old = done[t][rng() % done[t].size()];
          absl::StatusOr<std::string> got = client.Get(old.key);
          if (got.ok() && *got != test::BytesFor(old.key, old.size)) ++wrong;
          ok = ok && got.ok();
        }
        ++ops;
        if (!ok) {
          ++failed;
          continue;
        }
        absl::MutexLock lock(&mu);
        if (started >= mark && first_ok[t] == absl::InfiniteFuture()) first_ok[t] = absl::Now();
      }
    });
  }
  // Sets the mark; true once every thread has succeeded with an operation started after it.
  const auto set_mark = [&](absl::Time at) {
    absl::MutexLock lock(&mu);
    mark = at;
    std::fill(first_ok.begin(), first_ok.end(), absl::InfiniteFuture());
  };
  const auto all_ok = [&] {
    absl::MutexLock lock(&mu);
    return std::none_of(first_ok.begin(), first_ok.end(),
                        [](absl::Time t) { return t == absl::InfiniteFuture(); });
  };

  std::vector<double> first_call_s, all_threads_s;
  bool broken = false;
  for (int k = 0; k < kills && !broken; ++k) {
    // Steady load first: every thread has succeeded, and half a second more.
    set_mark(absl::Now());
    while (!all_ok()) absl::SleepFor(absl::Milliseconds(5));
    absl::SleepFor(absl::Milliseconds(500));
    std::optional<std::pair<absl::Time, uint64_t>> killed = cluster.KillLeader();
    if (!killed) {
      std::fprintf(stderr, "failover_bench: could not find and kill the leader\n");
      broken = true;
      break;
    }
    set_mark(killed->first);  // operations started after the kill
    const absl::Time deadline = killed->first + absl::Seconds(60);
    while (!all_ok() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
    if (!all_ok()) {
      std::fprintf(stderr, "failover_bench: the client did not recover within 60 s\n");
      broken = true;
      break;
    }
    double first = 1e9, all = 0;
    {
      absl::MutexLock lock(&mu);
      for (absl::Time t : first_ok) {
        first = std::min(first, absl::ToDoubleSeconds(t - killed->first));
        all = std::max(all, absl::ToDoubleSeconds(t - killed->first));
      }
    }
    first_call_s.push_back(first);
    all_threads_s.push_back(all);
    std::printf(
        "kill %2d (epoch %llu): first successful put+get after %.3f s, every thread's "
        "after %.3f s\n",
        k + 1, static_cast<unsigned long long>(killed->second), first, all);
    std::fflush(stdout);
    if (!cluster.StartMaster()) broken = true;  // three masters again
  }
  stop = true;
  for (std::thread& t : workers) t.join();

  // Every acknowledged object, read back and checked, once both stores are mounted.
  const absl::Time mounted_deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < mounted_deadline) {
    absl::StatusOr<std::vector<client::SegmentInfo>> segments = client.ListSegments();
    if (segments.ok() && segments->size() == cluster.segments().size()) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  uint64_t objects = 0, lost = 0, wrong_at_end = 0;
  for (int t = 0; t < threads; ++t) {
    for (const Done& d : done[t]) {
      ++objects;
      absl::StatusOr<std::string> got = client.Get(d.key);
      if (!got.ok()) {
        ++lost;
        std::printf("  lost: %s (%s)\n", d.key.c_str(), got.status().ToString().c_str());
      } else if (*got != test::BytesFor(d.key, d.size)) {
        ++wrong_at_end;
      }
    }
  }
  std::printf(
      "\n%zu kills of the leader (3 masters, lease TTL 2 s, %d client threads, %llu operations, "
      "%llu failed during failovers)\n",
      first_call_s.size(), threads, static_cast<unsigned long long>(ops.load()),
      static_cast<unsigned long long>(failed.load()));
  std::printf(
      "  kill -> client's first successful put+get: p50 %.3f s  p90 %.3f s  p99 %.3f s  max "
      "%.3f s\n",
      Percentile(first_call_s, 0.5), Percentile(first_call_s, 0.9), Percentile(first_call_s, 0.99),
      Percentile(first_call_s, 1.0));
  std::printf(
      "  kill -> every thread's next put+get: p50 %.3f s  p90 %.3f s  p99 %.3f s  max "
      "%.3f s\n",
      Percentile(all_threads_s, 0.5), Percentile(all_threads_s, 0.9),
      Percentile(all_threads_s, 0.99), Percentile(all_threads_s, 1.0));
  std::printf(
      "  objects acknowledged %llu, lost %llu, wrong bytes read %llu (during load) + %llu "
      "(at the end)\n",
      static_cast<unsigned long long>(objects), static_cast<unsigned long long>(lost),
      static_cast<unsigned long long>(wrong.load()), static_cast<unsigned long long>(wrong_at_end));
  int status = broken || lost > 0 || wrong.load() > 0 || wrong_at_end > 0 ? 1 : 0;

  if (remount_objects > 0 && status == 0) {
    // One store holds them all: its remount carries the whole index.
    client::ReplicateConfig there;
    there.preferred_segment = cluster.segments()[0];
    std::vector<std::string> keys;
    const std::string value(static_cast<size_t>(remount_object_bytes), 'r');
    constexpr int kBatch = 1000;
    const absl::Time put_start = absl::Now();
    for (int i = 0; i < remount_objects; i += kBatch) {
      std::vector<std::string> batch;
      for (int j = i; j < std::min(remount_objects, i + kBatch); ++j) {
        batch.push_back("r" + std::to_string(j));
      }
      std::vector<std::string_view> values(batch.size(), value);
      for (const absl::Status& s : client.BatchPut(batch, values, there)) {
        if (!s.ok()) {
          std::fprintf(stderr, "failover_bench: put: %s\n", s.ToString().c_str());
          return 1;
        }
      }
      keys.insert(keys.end(), batch.begin(), batch.end());
    }
    std::printf("\nput %d objects of %d bytes on one store in %.1f s\n", remount_objects,
                remount_object_bytes, absl::ToDoubleSeconds(absl::Now() - put_start));
    std::optional<std::pair<absl::Time, uint64_t>> killed = cluster.KillLeader();
    if (!killed) return 1;
    std::optional<http::LeaderInfo> next = cluster.Leader(absl::Seconds(30), killed->second);
    if (!next) return 1;
    const absl::Time elected = absl::Now();
    // Readable again: passes over every key until none is missing (a pass of 1,000-key calls
    // takes a fraction of the recovery time).
    const auto count_missing = [&](bool show) {
      uint64_t missing = 0;
      for (size_t i = 0; i < keys.size(); i += kBatch) {
        const size_t n = std::min<size_t>(kBatch, keys.size() - i);
        std::vector<absl::StatusOr<bool>> exist = client.BatchExists({keys.data() + i, n});
        for (size_t j = 0; j < n; ++j) {
          if (exist[j].ok() && *exist[j]) continue;
          if (show && missing < 3) {
            std::printf("  missing: %s (%s)\n", keys[i + j].c_str(),
                        exist[j].ok() ? "does not exist" : exist[j].status().ToString().c_str());
          }
          ++missing;
        }
      }
      return missing;
    };
    const absl::Time deadline = elected + absl::Seconds(60);
    uint64_t missing = count_missing(false);
    while (missing > 0 && absl::Now() < deadline) missing = count_missing(false);
    const absl::Time readable = absl::Now();
    if (missing > 0) missing = count_missing(true);
    std::printf(
        "store with %d objects: leader killed -> new leader elected %.3f s; elected -> "
        "all readable again (remount with the index, rebuild) %.3f s; missing %llu\n",
        remount_objects, absl::ToDoubleSeconds(elected - killed->first),
        absl::ToDoubleSeconds(readable - elected), static_cast<unsigned long long>(missing));
    if (missing > 0) status = 1;
  }
  return status;
}

}  // namespace
}  // namespace mooncake

int main(int argc, char** argv) {
  int kills = 20, threads = 4, remount_objects = 0, remount_object_bytes = 4096;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    int* target = flag == "--kills"                  ? &kills
                  : flag == "--threads"              ? &threads
                  : flag == "--remount_objects"      ? &remount_objects
                  : flag == "--remount_object_bytes" ? &remount_object_bytes
                                                     : nullptr;
    if (target == nullptr || !absl::SimpleAtoi(argv[i + 1], target) || *target < 0) {
      std::fprintf(stderr,
                   "usage: %s [--kills N] [--threads N] [--remount_objects N] "
                   "[--remount_object_bytes N]\n",
                   argv[0]);
      return 2;
    }
  }
  if (threads < 1) threads = 1;
  if (remount_object_bytes < 1) remount_object_bytes = 1;
  return mooncake::Run(kills, threads, remount_objects, remount_object_bytes);
}
