#include "bench/master_bench.h"

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/notification.h"
#include "bench/latency_recorder.h"
#include "bench/report.h"
#include "client/master_client.h"
#include "common/strings.h"
#include "http/client.h"
#include "master/master_server.h"
#include "nlohmann/json.hpp"

namespace mooncake::bench {
namespace {

using nlohmann::json;

struct PhaseResult {
  std::string op;
  int batch = 0;
  double keys_per_second = 0;
  LatencySummary latency;
  uint64_t errors = 0;
  uint64_t objects = 0;  // objects the bench had written when the phase ended
};

// The keys of put number `round` of a batch of `n`, shaped as SGLang's page keys (64 hex digits,
// the TP rank, K or V: 68 bytes): hash-like digits first, then the batch size and the key's
// number, so that each batch size has keys of its own (a later size's puts never find an earlier
// size's objects).
std::vector<std::string> KeysFor(uint64_t round, int n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (int i = 0; i < n; ++i) {
    const uint64_t id = round * n + i;
    const uint64_t hash = absl::HashOf(n, id);
    keys.push_back(fmt::format("{:016x}{:016x}{:08x}{:024x}_0_k", hash, hash * 0x9e3779b97f4a7c15,
                               static_cast<uint32_t>(n), id));
  }
  return keys;
}

http::HttpClientOptions ClientOptions(const MasterBenchOptions& options) {
  http::HttpClientOptions http;
  http.auth = options.auth;
  return http;
}

template <typename Results>
bool AllOk(const Results& results) {
  for (const auto& result : results) {
    if (!result.ok()) return false;
  }
  return true;
}

// Runs `op` on every thread for `duration`, each thread with a client of its own as the product's
// (client/master_client.h: the same request writing and answer parsing); each call handles the
// `batch` keys that `keys_for(t, round)` names for thread t's round, made before the call is
// timed, and returns false on an error. A thread whose `keys_for` names no keys is done; the
// phase ends when every thread is, or at `duration`.
using KeysOf = std::function<std::vector<std::string>(int t, uint64_t round)>;
PhaseResult RunPhase(
    const std::string& name, int batch, const MasterBenchOptions& options,
    const std::string& address, const std::string& client_id, const KeysOf& keys_for,
    const std::function<bool(client::MasterClient&, const std::vector<std::string>&)>& op) {
  std::vector<std::vector<double>> latencies(options.threads);
  std::atomic<uint64_t> keys{0}, errors{0};
  std::atomic<bool> stop{false};
  std::atomic<int> running{options.threads};
  absl::Notification all_done;
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < options.threads; ++t) {
    threads.emplace_back([&, t] {
      absl::Cleanup done = [&] {
        if (running.fetch_sub(1) == 1) all_done.Notify();
      };
      absl::StatusOr<std::unique_ptr<client::MasterClient>> client =
          client::MasterClient::Create(address, client_id, ClientOptions(options));
      if (!client.ok()) {
        errors.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      for (uint64_t round = 0; !stop.load(std::memory_order_relaxed); ++round) {
        const std::vector<std::string> batch_keys = keys_for(t, round);
        if (batch_keys.empty()) break;
        const auto begin = std::chrono::steady_clock::now();
        const bool ok = op(**client, batch_keys);
        const auto end = std::chrono::steady_clock::now();
        latencies[t].push_back(std::chrono::duration<double, std::micro>(end - begin).count());
        keys.fetch_add(batch, std::memory_order_relaxed);
        if (!ok) errors.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  all_done.WaitForNotificationWithTimeout(options.duration);
  stop.store(true);
  for (auto& thread : threads) thread.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  PhaseResult result{name, batch, keys.load() / seconds, Summarize(latencies), errors.load()};
  std::printf("  %-22s batch %-4d %12.0f keys/s   p50 %8.1f us   p99 %8.1f us   errors %lu\n",
              name.c_str(), batch, result.keys_per_second, result.latency.p50_us,
              result.latency.p99_us, static_cast<unsigned long>(result.errors));
  std::fflush(stdout);
  return result;
}

// Heap bytes per object of a MasterService holding `n` objects, their keys included (in the
// table's slots or on the heap).
double MeasureMemoryPerObject(uint64_t n, double* key_bytes_per_object) {
  master::MasterConfig config;
  config.seed = 1;
  auto service = std::make_unique<master::MasterService>(config);
  (void)service->MountSegment("bench-client", "bench:1", 0, uint64_t{1} << 50);
  malloc_trim(0);
  const size_t before = mallinfo2().uordblks;
  uint64_t key_bytes = 0;
  std::vector<master::PutItem> items(1000);
  std::vector<std::string> keys(1000);
  for (uint64_t base = 0; base < n; base += 1000) {
    for (size_t i = 0; i < items.size(); ++i) {
      // SGLang's page keys: a 64-hex-digit hash, the TP rank and K or V.
      keys[i] = fmt::format("{:064x}_0_k", base + i);
      items[i] = {keys[i], 4096};
    }
    service->PutStart("bench-client", items, {});
    service->PutEnd("bench-client", keys);
    for (const std::string& key : keys) key_bytes += key.size();
  }
  const size_t after = mallinfo2().uordblks;
  *key_bytes_per_object = static_cast<double>(key_bytes) / n;
  return static_cast<double>(after - before) / n;
}

}  // namespace

int RunMasterBench(const MasterBenchOptions& options) {
  ReportAsYouGo();
  std::unique_ptr<master::MasterServer> embedded;
  std::string host;
  int port = 0;
  if (options.master.empty()) {
    master::MasterServerOptions server_options;
    server_options.rpc_address = "127.0.0.1";
    server_options.rpc_port = 0;
    server_options.enable_metric_reporting = false;
    server_options.auth = options.auth;
    embedded = std::make_unique<master::MasterServer>(server_options);
    if (absl::Status status = embedded->Start(); !status.ok()) {
      std::fprintf(stderr, "bench master: %s\n", std::string(status.message()).c_str());
      return 1;
    }
    host = "127.0.0.1";
    port = embedded->rpc_port();
  } else {
    size_t colon = options.master.rfind(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "bench master: --master must be host:port\n");
      return 2;
    }
    host = options.master.substr(0, colon);
    port = std::atoi(options.master.c_str() + colon + 1);
  }

  const std::string client_id = "bench-client";
  http::HttpClient setup(host, port, ClientOptions(options));
  // Segments of 1 PiB of offsets each: the master never touches segment memory, so nothing is
  // used.
  std::vector<std::string> segments;
  for (int i = 0; i < options.segments; ++i) {
    segments.push_back(i == 0 ? fmt::format("bench-segment:{}", ::getpid())
                              : fmt::format("bench-segment:{}:{}", ::getpid(), i));
    absl::StatusOr<json> mounted = setup.CallJson(
        "POST", "/v1/MountSegment",
        {{"client_id", client_id},
         {"segment", {{"name", segments.back()}, {"base", 0}, {"size", uint64_t{1} << 50}}}});
    if (!mounted.ok()) {
      std::fprintf(stderr, "bench master: cannot mount a segment at %s:%d: %s\n", host.c_str(),
                   port, std::string(mounted.status().message()).c_str());
      for (size_t j = 0; j + 1 < segments.size(); ++j) {
        (void)setup.CallJson("POST", "/v1/UnmountSegment",
                             {{"client_id", client_id}, {"name", segments[j]}});
      }
      return 1;
    }
  }
  std::printf(
      "mooncake bench master: %s:%d, %d threads, %s per phase, %lu-byte objects, %d segment%s\n",
      host.c_str(), port, options.threads, absl::FormatDuration(options.duration).c_str(),
      static_cast<unsigned long>(options.value_size), options.segments,
      options.segments == 1 ? "" : "s");
  if (options.keys > 0) {
    std::printf("  puts stop at %lu keys per batch size\n",
                static_cast<unsigned long>(options.keys));
  }

  // Heartbeat like a real client, or the master declares us dead and unmounts the segment.
  absl::Notification stop_heartbeat;
  std::thread heartbeat([&] {
    http::HttpClient client(host, port, ClientOptions(options));
    while (!stop_heartbeat.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      (void)client.CallJson("POST", "/v1/Heartbeat", {{"client_id", client_id}});
    }
  });
  std::vector<PhaseResult> results;
  uint64_t objects = 0;
  const std::string address = fmt::format("{}:{}", host, port);
  for (int batch : options.batch_sizes) {
    // Puts: the threads take numbered rounds of fresh keys, up to --keys of them; a round taken is
    // run to its end, so rounds [0, taken) are what the later phases read.
    const uint64_t max_rounds = options.keys == 0 ? UINT64_MAX : options.keys / batch;
    std::atomic<uint64_t> next_round{0};
    const std::vector<uint64_t> sizes(batch, options.value_size);
    PhaseResult put = RunPhase(
        "PutStart+PutEnd", batch, options, address, client_id,
        [&](int, uint64_t) {
          const uint64_t round = next_round.fetch_add(1);
          return round < max_rounds ? KeysFor(round, batch) : std::vector<std::string>{};
        },
        [&](client::MasterClient& client, const std::vector<std::string>& keys) {
          return AllOk(client.PutStart(keys, sizes, {})) && AllOk(client.PutEnd(keys));
        });
    const uint64_t rounds = std::min(next_round.load(), max_rounds);
    objects += rounds * batch;
    put.objects = objects;
    results.push_back(put);
    std::printf("  %-22s %lu\n", "objects written", static_cast<unsigned long>(objects));
    // Reads spread over the rounds written, each thread starting at a round of its own.
    KeysOf written = [&](int t, uint64_t round) {
      return KeysFor((round * options.threads + t) % std::max<uint64_t>(1, rounds), batch);
    };
    results.push_back(
        RunPhase("ExistKey", batch, options, address, client_id, written,
                 [&](client::MasterClient& client, const std::vector<std::string>& keys) {
                   for (const absl::StatusOr<bool>& one : client.ExistKey(keys)) {
                     if (!one.ok() || !*one) return false;
                   }
                   return true;
                 }));
    results.back().objects = objects;
    results.push_back(
        RunPhase("GetReplicaList", batch, options, address, client_id, written,
                 [&](client::MasterClient& client, const std::vector<std::string>& keys) {
                   return AllOk(client.GetReplicaList(keys));
                 }));
    results.back().objects = objects;
  }
  stop_heartbeat.Notify();
  heartbeat.join();
  for (const std::string& segment : segments) {
    (void)setup.CallJson("POST", "/v1/UnmountSegment",
                         {{"client_id", client_id}, {"name", segment}});
  }

  json summary = {{"bench", "master"},
                  {"threads", options.threads},
                  {"segments", options.segments},
                  {"phases", json::array()}};
  for (const PhaseResult& r : results) {
    summary["phases"].push_back({{"op", r.op},
                                 {"batch", r.batch},
                                 {"keys_per_s", std::round(r.keys_per_second)},
                                 {"p50_us", r.latency.p50_us},
                                 {"p99_us", r.latency.p99_us},
                                 {"errors", r.errors},
                                 {"objects", r.objects}});
  }
  if (embedded && options.memory_objects > 0) {
    embedded->Stop();
    embedded.reset();
    double key_bytes = 0;
    const double per_object = MeasureMemoryPerObject(options.memory_objects, &key_bytes);
    std::printf("  memory: %.0f bytes per object at %lu objects, its %.0f-byte key included\n",
                per_object, static_cast<unsigned long>(options.memory_objects), key_bytes);
    summary["memory_bytes_per_object"] = std::round(per_object);
    summary["memory_objects"] = options.memory_objects;
  }
  if (!EmitJson("master", summary, options.json_path)) return 1;
  uint64_t errors = 0;
  for (const PhaseResult& r : results) errors += r.errors;
  return errors == 0 ? 0 : 1;
}

}  // namespace mooncake::bench
