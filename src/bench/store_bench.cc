#include "bench/store_bench.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/strings/str_join.h"
#include "bench/latency_recorder.h"
#include "bench/report.h"
#include "client/client.h"
#include "common/error_code.h"
#include "common/logging.h"
#include "common/mapped_memory.h"
#include "common/strings.h"
#include "common/units.h"
#include "http/metadata_service.h"
#include "master/master_server.h"
#include "nlohmann/json.hpp"
#include "store/store_service.h"

namespace mooncake::bench {
namespace {

using client::Client;
using client::Slice;

int Fail(absl::string_view message, int code = 1) {
  std::fprintf(stderr, "bench store: %.*s\n", static_cast<int>(message.size()), message.data());
  return code;
}

// A cheap pattern that differs per object and per byte position.
void FillPattern(char* p, uint64_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (uint64_t i = 0; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(p + i, &x, 8);
  }
  for (uint64_t i = n & ~uint64_t{7}; i < n; ++i) p[i] = static_cast<char>(seed + i);
}

// The cluster the benchmark runs against: embedded parts, or only addresses.
struct Cluster {
  std::unique_ptr<http::MetadataServer> metadata;
  std::unique_ptr<master::MasterServer> master;
  std::unique_ptr<store::StoreService> store;
  client::ClientConfig client;  // how the benchmark's client connects
};

absl::Status StartEmbedded(const StoreBenchOptions& o, Cluster* cluster) {
  http::HttpServerOptions metadata_options;
  metadata_options.name = "metadata";
  metadata_options.host = "127.0.0.1";
  metadata_options.port = 0;
  metadata_options.auth = o.auth;
  cluster->metadata =
      std::make_unique<http::MetadataServer>(metadata_options, http::MetadataStoreOptions{});
  if (absl::Status s = cluster->metadata->Start(); !s.ok()) return s;
  master::MasterServerOptions master_options;
  master_options.rpc_address = "127.0.0.1";
  master_options.rpc_port = 0;
  master_options.enable_metric_reporting = false;
  master_options.auth = o.auth;
  cluster->master = std::make_unique<master::MasterServer>(master_options);
  if (absl::Status s = cluster->master->Start(); !s.ok()) return s;

  client::ClientConfig& c = cluster->client;
  c.local_hostname = "127.0.0.1";
  c.listen_address = "127.0.0.1";
  c.metadata_server = fmt::format("http://127.0.0.1:{}/metadata", cluster->metadata->port());
  c.master_server_address = fmt::format("127.0.0.1:{}", cluster->master->rpc_port());
  store::StoreOptions store_options;
  store_options.client = c;
  store_options.client.global_segment_size = o.segment_size;
  store_options.client.local_buffer_size = 0;
  store_options.http_host = "127.0.0.1";
  store_options.http_port = 0;
  absl::StatusOr<std::unique_ptr<store::StoreService>> store =
      store::StoreService::Start(store_options);
  if (!store.ok()) return store.status();
  cluster->store = *std::move(store);
  std::printf("embedded cluster: metadata %s, master %s, store %s (%s)\n",
              c.metadata_server.c_str(), c.master_server_address.c_str(),
              cluster->store->segment_name().c_str(), FormatByteSize(o.segment_size).c_str());
  return absl::OkStatus();
}

struct CaseResult {
  std::string op, path;
  uint64_t size = 0;
  int batch = 0;
  double seconds = 0;
  uint64_t keys = 0;
  uint64_t failed = 0;
  LatencySummary latency;
  double gbps() const { return seconds > 0 ? keys * static_cast<double>(size) / seconds / 1e9 : 0; }
};

class Runner {
 public:
  Runner(const StoreBenchOptions& o, Client* client, uint64_t capacity, char* pool,
         uint64_t pool_per_thread)
      : o_(o), client_(client), capacity_(capacity), pool_(pool), per_thread_(pool_per_thread) {
    // Each thread's values, once for every case (and the pool's pages faulted in before any case).
    for (int t = 0; t < o_.threads; ++t) FillPattern(pool_ + t * per_thread_, per_thread_, t);
  }

  CaseResult Run(const std::string& op, const std::string& path, uint64_t size, int batch) {
    CaseResult result{op, path, size, batch};
    const uint64_t batch_bytes = size * batch;
    // Objects each thread keeps at most: the pool it has, 80% of the pool's free space shared.
    const uint64_t room = capacity_ * 8 / 10 / o_.threads;
    const uint64_t kept_batches = std::max<uint64_t>(1, room / batch_bytes);
    std::vector<std::vector<double>> latencies(o_.threads);
    std::atomic<uint64_t> keys_done{0}, failed{0};
    std::atomic<bool> stop{false};
    const uint64_t run = ++run_;
    std::vector<std::thread> threads;
    std::vector<std::vector<std::string>> stored(o_.threads);
    std::atomic<int> ready{0};
    for (int t = 0; t < o_.threads; ++t) {
      threads.emplace_back([&, t] {
        // Every case moves its keys from and to the thread's whole pool (as many values as the
        // largest batch holds), a call's keys taking the next buffers in turn: one key at a time
        // then moves the same bytes as a batch does, not one value that stays in the cache.
        char* base = pool_ + t * per_thread_;
        const uint64_t buffers = per_thread_ / size;  // at least `batch`
        uint64_t next_buffer = 0;
        std::vector<Slice> slices(batch);
        std::vector<std::string_view> views(batch);
        auto take_buffers = [&] {
          for (int i = 0; i < batch; ++i) {
            char* at = base + (next_buffer++ % buffers) * size;
            slices[i] = {at, size};
            views[i] = {at, size};
          }
        };
        auto key = [&](uint64_t n) { return fmt::format("bench-{}-{}-{}", run, t, n); };
        uint64_t next = 0;
        std::vector<std::string> keys(batch);
        auto put = [&](bool timed) {
          for (int i = 0; i < batch; ++i) keys[i] = key(next++);
          take_buffers();
          const auto t0 = std::chrono::steady_clock::now();
          std::vector<absl::Status> s =
              path == "copy" ? client_->BatchPut(keys, views) : client_->BatchPutFrom(keys, slices);
          const double us =
              std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                  .count();
          uint64_t ok = 0;
          for (size_t i = 0; i < s.size(); ++i) {
            if (s[i].ok()) {
              ++ok;
              stored[t].push_back(keys[i]);
            } else if (failed.fetch_add(1) == 0) {
              std::fprintf(stderr, "\nbench store: put: %s\n", std::string(s[i].message()).c_str());
            }
          }
          if (timed) {
            latencies[t].push_back(us);
            keys_done.fetch_add(ok, std::memory_order_relaxed);
          }
        };
        if (op == "get") {
          // Objects to read, written before the clock starts.
          for (uint64_t b = 0; b < std::min<uint64_t>(kept_batches, 8); ++b) put(false);
        }
        ready.fetch_add(1);
        while (ready.load() < o_.threads) std::this_thread::yield();
        uint64_t cursor = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          if (op == "put") {
            if (stored[t].size() + batch > kept_batches * batch) {
              (void)client_->BatchRemove(stored[t], /*force=*/true);  // untimed: make room
              stored[t].clear();
            }
            put(true);
            continue;
          }
          if (stored[t].empty()) break;
          for (int i = 0; i < batch; ++i) keys[i] = stored[t][cursor++ % stored[t].size()];
          take_buffers();
          const auto t0 = std::chrono::steady_clock::now();
          uint64_t ok = 0;
          if (path == "copy") {
            for (auto& got : client_->BatchGet(keys)) {
              if (got.ok() && got->size() == size) {
                ++ok;
              } else if (failed.fetch_add(1) == 0) {
                std::fprintf(stderr, "\nbench store: get: %s\n",
                             got.ok() ? "wrong size" : std::string(got.status().message()).c_str());
              }
            }
          } else {
            for (auto& got : client_->BatchGetInto(keys, slices)) {
              if (got.ok() && *got == size) {
                ++ok;
              } else if (failed.fetch_add(1) == 0) {
                std::fprintf(stderr, "\nbench store: get: %s\n",
                             got.ok() ? "wrong size" : std::string(got.status().message()).c_str());
              }
            }
          }
          latencies[t].push_back(
              std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                  .count());
          keys_done.fetch_add(ok, std::memory_order_relaxed);
        }
      });
    }
    while (ready.load() < o_.threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto measured_from = std::chrono::steady_clock::now();
    const absl::Time end_at = absl::Now() + o_.duration;
    // Progress: redrawn in place on a terminal; elsewhere (a pipe, a CI log) a line every 5 s.
    const bool terminal = isatty(STDERR_FILENO);
    absl::Time next_line = absl::Now() + absl::Seconds(5);
    while (absl::Now() < end_at) {
      absl::SleepFor(std::min(absl::Milliseconds(250), end_at - absl::Now()));
      if (!terminal && absl::Now() < next_line) continue;
      next_line = absl::Now() + absl::Seconds(5);
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - measured_from).count();
      std::fprintf(stderr, "%s  %-3s %-9s %8s x %-3d %5.1fs %9.3f GB/s   %s",
                   terminal ? "\r" : "bench store:", op.c_str(), path.c_str(),
                   FormatByteSize(size).c_str(), batch, elapsed,
                   keys_done.load() * static_cast<double>(size) / elapsed / 1e9,
                   terminal ? "" : "\n");
    }
    stop.store(true);
    for (std::thread& thread : threads) thread.join();
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - measured_from).count();
    result.keys = keys_done.load();
    result.failed = failed.load();
    result.latency = Summarize(latencies);
    for (auto& keys : stored) {
      if (!keys.empty()) (void)client_->BatchRemove(keys, /*force=*/true);
    }
    return result;
  }

 private:
  const StoreBenchOptions& o_;
  Client* client_;
  const uint64_t capacity_;
  char* const pool_;
  const uint64_t per_thread_;
  uint64_t run_ = 0;
};

int Validate(const StoreBenchOptions& o, Client& client, MappedMemory& pool) {
  absl::StatusOr<std::vector<client::SegmentInfo>> segments = client.ListSegments();
  if (!segments.ok()) return Fail(segments.status().message());
  if (segments->empty()) return Fail("the master has no mounted segment to validate");
  const uint64_t object = o.validate_object_size;
  const uint64_t count = std::max<uint64_t>(1, o.validate_bytes / object);
  std::printf("%-24s %-7s %10s %10s %8s %8s  %s\n", "segment", "via", "write GB/s", "read GB/s",
              "objects", "errors", "result");
  nlohmann::json report = nlohmann::json::array();
  bool all_ok = true;
  for (const client::SegmentInfo& segment : *segments) {
    const uint64_t n = std::min<uint64_t>(count, (segment.size - segment.used) / 2 / object);
    std::vector<std::string> keys;
    std::vector<Slice> in, out;
    for (uint64_t i = 0; i < n; ++i) {
      keys.push_back(fmt::format("validate-{}-{}", segment.name, i));
      in.push_back({pool.data() + i * object, object});
      out.push_back({pool.data() + (n + i) * object, object});
      FillPattern(pool.data() + i * object, object, i * 7919 + segment.base);
      std::memset(pool.data() + (n + i) * object, 0, object);
    }
    client::ReplicateConfig there;
    there.preferred_segment = segment.name;
    (void)client.BatchRemove(keys, /*force=*/true);  // leftovers of an interrupted run
    uint64_t errors = 0, misplaced = 0, mismatched = 0;
    auto t0 = std::chrono::steady_clock::now();
    std::vector<absl::Status> put = client.BatchPutFrom(keys, in, there);
    const double write_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const absl::Status& s : put) errors += s.ok() ? 0 : 1;
    for (const auto& where : client.BatchGetReplicas(keys)) {
      if (where.ok() && (where->replicas.empty() || where->replicas[0].segment != segment.name)) {
        ++misplaced;
      }
    }
    t0 = std::chrono::steady_clock::now();
    std::vector<absl::StatusOr<uint64_t>> got = client.BatchGetInto(keys, out);
    const double read_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (uint64_t i = 0; i < n; ++i) {
      if (!got[i].ok() || *got[i] != object) {
        ++errors;
      } else if (std::memcmp(in[i].data, out[i].data, object) != 0) {
        ++mismatched;
      }
    }
    (void)client.BatchRemove(keys, /*force=*/true);
    const bool ok = n > 0 && errors == 0 && mismatched == 0 && misplaced == 0;
    all_ok = all_ok && ok;
    const double bytes = static_cast<double>(n * object);
    const std::string via = client.TransportTo(segment.name);
    const std::string verdict =
        n == 0 ? "no free space to test"
        : ok   ? "ok"
               : fmt::format("FAILED: {} errors, {} mismatched, {} placed elsewhere", errors,
                             mismatched, misplaced);
    std::printf("%-24s %-7s %10.3f %10.3f %8lu %8lu  %s\n", segment.name.c_str(), via.c_str(),
                write_s > 0 ? bytes / write_s / 1e9 : 0, read_s > 0 ? bytes / read_s / 1e9 : 0,
                static_cast<unsigned long>(n), static_cast<unsigned long>(errors + mismatched),
                verdict.c_str());
    report.push_back({{"segment", segment.name},
                      {"transport", via},
                      {"objects", n},
                      {"write_gb_per_s", write_s > 0 ? bytes / write_s / 1e9 : 0},
                      {"read_gb_per_s", read_s > 0 ? bytes / read_s / 1e9 : 0},
                      {"errors", errors},
                      {"mismatched", mismatched},
                      {"misplaced", misplaced},
                      {"ok", ok}});
  }
  // The verdict, for people and for scripts that grep for it.
  std::vector<std::string> failed;
  uint64_t objects = 0;
  for (const nlohmann::json& r : report) {
    objects += r["objects"].get<uint64_t>();
    if (!r["ok"].get<bool>()) failed.push_back(r["segment"].get<std::string>());
  }
  if (all_ok) {
    std::printf(
        "verdict: OK: %lu object(s) on %zu segment(s) written and read back byte for byte\n",
        static_cast<unsigned long>(objects), report.size());
  } else {
    std::printf("verdict: FAILED on %zu of %zu segment(s): %s\n", failed.size(), report.size(),
                absl::StrJoin(failed, ", ").c_str());
  }
  if (!EmitJson("store",
                nlohmann::json{{"bench", "store-validate"}, {"segments", report}, {"ok", all_ok}},
                o.json_path)) {
    return 1;
  }
  return all_ok ? 0 : 1;
}

}  // namespace

int RunStoreBench(const StoreBenchOptions& o) {
  ReportAsYouGo();
  if (!o.embedded && o.master.empty()) {
    return Fail("give --master host:port of a running cluster, or --embedded", 2);
  }
  if (o.transport != "auto" && o.transport != "tcp") {
    return Fail("--transport must be auto or tcp", 2);
  }
  Cluster cluster;
  cluster.client.enable_shm = o.transport != "tcp";
  cluster.client.auth = o.auth;
  if (o.embedded) {
    if (absl::Status s = StartEmbedded(o, &cluster); !s.ok()) return Fail(s.message());
  } else {
    cluster.client.master_server_address = o.master;
    cluster.client.metadata_server = o.metadata;
    cluster.client.protocol = o.protocol;
    cluster.client.local_hostname = o.local_hostname;
  }
  const uint64_t max_size = *std::max_element(o.value_sizes.begin(), o.value_sizes.end());
  const int max_batch = *std::max_element(o.batch_sizes.begin(), o.batch_sizes.end());
  const uint64_t per_thread =
      o.validate ? 2 * std::max<uint64_t>(1, o.validate_bytes / o.validate_object_size) *
                       o.validate_object_size
                 : max_size * max_batch;
  client::ClientConfig config = cluster.client;
  config.global_segment_size = 0;
  const bool copying = std::find(o.paths.begin(), o.paths.end(), "copy") != o.paths.end();
  config.local_buffer_size = copying && !o.validate ? per_thread * o.threads + (1u << 20) : 0;
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(config);
  if (!client.ok()) return Fail(client.status().message(), 2);
  MappedMemory pool(per_thread * o.threads);
  if (pool.data() == nullptr) return Fail("cannot map the benchmark's buffers");
  if (absl::Status s = (*client)->RegisterBuffer(pool.data(), pool.size()); !s.ok()) {
    return Fail(s.message());
  }
  if (o.validate) return Validate(o, **client, pool);

  absl::StatusOr<std::vector<client::SegmentInfo>> segments = (*client)->ListSegments();
  if (!segments.ok()) return Fail(segments.status().message());
  uint64_t free_bytes = 0;
  std::string via;
  for (const client::SegmentInfo& s : *segments) {
    free_bytes += s.size - s.used;
    const std::string t = (*client)->TransportTo(s.name);
    if (via.find(t) == std::string::npos) via += (via.empty() ? "" : ",") + t;
  }
  if (free_bytes < max_size * max_batch * o.threads) {
    return Fail(fmt::format("the cluster has {} free; a batch of every thread needs {}",
                            FormatByteSize(free_bytes),
                            FormatByteSize(max_size * max_batch * o.threads)));
  }
  std::printf("bench store: %zu segment(s), %s free, reached by %s; %d thread(s), %s per case\n",
              segments->size(), FormatByteSize(free_bytes).c_str(), via.c_str(), o.threads,
              absl::FormatDuration(o.duration).c_str());
  std::fflush(stdout);

  Runner runner(o, client->get(), free_bytes, pool.data(), per_thread);
  const size_t cases_total =
      o.paths.size() * o.value_sizes.size() * o.batch_sizes.size() * o.ops.size();
  std::vector<CaseResult> results;
  for (const std::string& path : o.paths) {
    for (uint64_t size : o.value_sizes) {
      for (int batch : o.batch_sizes) {
        for (const std::string& op : o.ops) {
          results.push_back(runner.Run(op, path, size, batch));
          if (!isatty(STDERR_FILENO)) {  // where no progress line is redrawn: one per case
            const CaseResult& r = results.back();
            std::fprintf(stderr,
                         "bench store: case %zu/%zu: %s %s %s x %d: %.3f GB/s, p50 %.1f us\n",
                         results.size(), cases_total, op.c_str(), path.c_str(),
                         FormatByteSize(size).c_str(), batch, r.gbps(), r.latency.p50_us);
          }
        }
      }
    }
  }
  if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\r%80s\r", "");
  std::printf("%-4s %-9s %9s %6s %10s %11s %10s %10s %10s %7s\n", "op", "path", "size", "batch",
              "GB/s", "keys/s", "p50 us", "p99 us", "p999 us", "failed");
  nlohmann::json cases = nlohmann::json::array();
  uint64_t failed = 0;
  for (const CaseResult& r : results) {
    failed += r.failed;
    std::printf("%-4s %-9s %9s %6d %10.3f %11.0f %10.1f %10.1f %10.1f %7lu\n", r.op.c_str(),
                r.path.c_str(), FormatByteSize(r.size).c_str(), r.batch, r.gbps(),
                r.seconds > 0 ? r.keys / r.seconds : 0, r.latency.p50_us, r.latency.p99_us,
                r.latency.p999_us, static_cast<unsigned long>(r.failed));
    cases.push_back({{"op", r.op},
                     {"path", r.path},
                     {"size", r.size},
                     {"batch", r.batch},
                     {"gb_per_s", r.gbps()},
                     {"keys_per_s", r.seconds > 0 ? r.keys / r.seconds : 0},
                     {"p50_us", r.latency.p50_us},
                     {"p99_us", r.latency.p99_us},
                     {"p999_us", r.latency.p999_us},
                     {"failed", r.failed}});
  }
  if (!EmitJson(
          "store",
          nlohmann::json{
              {"bench", "store"}, {"transport", via}, {"threads", o.threads}, {"cases", cases}},
          o.json_path)) {
    failed += 1;
  }
  (void)(*client)->Close();
  if (cluster.store) cluster.store->Stop();
  return failed == 0 ? 0 : 1;
}

}  // namespace mooncake::bench
