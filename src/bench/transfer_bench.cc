#include "bench/transfer_bench.h"

#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "bench/latency_recorder.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "common/units.h"
#include "engine/transfer_engine.h"
#include "nlohmann/json.hpp"

namespace mooncake::bench {
namespace {

// Anonymous memory, touched once so page faults stay out of the measurement.
struct Buffer {
  explicit Buffer(uint64_t size) : size(size) {
    data = static_cast<uint8_t*>(
        mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (data == MAP_FAILED) {
      data = nullptr;
      return;
    }
    for (uint64_t i = 0; i < size; i += 4096) data[i] = static_cast<uint8_t>(i >> 12);
  }
  ~Buffer() {
    if (data) munmap(data, size);
  }
  uint8_t* data = nullptr;
  uint64_t size = 0;
};

engine::EngineConfig EngineConfigFor(const TransferBenchOptions& o, int port) {
  engine::EngineConfig config;
  config.local_hostname = port ? fmt::format("{}:{}", o.local_hostname, port) : o.local_hostname;
  config.metadata_server = o.metadata_server;
  // "shm" is not a network protocol: it is the TCP engine with shared memory for same-host peers.
  config.protocol = o.protocol == "shm" ? "tcp" : o.protocol;
  config.enable_shm = o.protocol == "shm" || o.mode == "target";
  config.device_name = o.device_name;
  config.listen_address = "0.0.0.0";
  config.first_port = 0;
  config.tcp.slice_size = o.slice_size;
  config.tcp.connections_per_peer = static_cast<size_t>(o.connections);
  config.auth = o.auth;
  return config;
}

int RunTarget(const TransferBenchOptions& o, const std::function<void()>& wait_for_stop) {
  auto engine = engine::TransferEngine::Create(EngineConfigFor(o, o.port));
  if (!engine.ok()) {
    std::fprintf(stderr, "bench transfer: %s\n", std::string(engine.status().message()).c_str());
    return 1;
  }
  // Shared memory, so initiators on this host may use either transport.
  absl::StatusOr<void*> shared = (*engine)->AllocateSharedMemory(o.buffer_size);
  if (!shared.ok()) {
    std::fprintf(stderr, "bench transfer: %s\n", std::string(shared.status().message()).c_str());
    return 1;
  }
  auto* bytes = static_cast<uint8_t*>(*shared);
  for (uint64_t i = 0; i < o.buffer_size; i += 4096) bytes[i] = static_cast<uint8_t>(i >> 12);
  if (absl::Status s = (*engine)->RegisterMemory(bytes, o.buffer_size); !s.ok()) {
    std::fprintf(stderr, "bench transfer: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("bench transfer target ready: segment=%s buffer=%s\n",
              (*engine)->segment_name().c_str(), FormatByteSize(o.buffer_size).c_str());
  std::fflush(stdout);
  wait_for_stop();
  return 0;
}

int RunInitiator(const TransferBenchOptions& o) {
  if (o.op != "read" && o.op != "write") {
    std::fprintf(stderr, "bench transfer: --op must be read or write\n");
    return 2;
  }
  auto engine = engine::TransferEngine::Create(EngineConfigFor(o, 0));
  if (!engine.ok()) {
    std::fprintf(stderr, "bench transfer: %s\n", std::string(engine.status().message()).c_str());
    return 1;
  }
  auto segment = (*engine)->OpenSegment(o.target);
  if (!segment.ok()) {
    std::fprintf(stderr, "bench transfer: cannot open %s: %s\n", o.target.c_str(),
                 std::string(segment.status().message()).c_str());
    return 1;
  }
  const std::string transport = (*engine)->TransportFor(*segment);
  const std::string wanted = o.protocol == "tcp" ? "tcp" : o.protocol;
  if (transport != wanted) {
    std::fprintf(stderr, "bench transfer: %s is reached by %s, not %s%s\n", o.target.c_str(),
                 transport.c_str(), wanted.c_str(),
                 wanted == "shm" ? " (shared memory needs a target on this host)" : "");
    return 1;
  }
  // The target's first buffer, from its descriptor.
  auto remote = (*engine)->DescribeSegment(*segment);
  if (!remote.ok() || remote->buffers.empty()) {
    std::fprintf(stderr, "bench transfer: %s registers no buffer\n", o.target.c_str());
    return 1;
  }
  const engine::BufferInfo target_buffer = remote->buffers.front();
  const uint64_t per_thread = o.block_size * static_cast<uint64_t>(o.batch_size);
  // Each thread cycles through a part of the target's buffer of its own, so that no two
  // transfers in flight touch the same bytes.
  const uint64_t slots_per_thread =
      target_buffer.length / o.block_size / static_cast<uint64_t>(o.threads);
  if (slots_per_thread < static_cast<uint64_t>(o.batch_size)) {
    std::fprintf(stderr,
                 "bench transfer: a batch per thread (%s x %d threads) does not fit the target's "
                 "buffer (%s)\n",
                 FormatByteSize(per_thread).c_str(), o.threads,
                 FormatByteSize(target_buffer.length).c_str());
    return 2;
  }
  Buffer local(per_thread * static_cast<uint64_t>(o.threads));
  if (!local.data || !(*engine)->RegisterMemory(local.data, local.size).ok()) {
    std::fprintf(stderr, "bench transfer: cannot allocate and register the local buffer\n");
    return 1;
  }
  const auto op = o.op == "read" ? engine::TransferOp::kRead : engine::TransferOp::kWrite;

  std::atomic<uint64_t> bytes{0}, failed{0};
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> latencies(o.threads);
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      const uint64_t first_slot = static_cast<uint64_t>(t) * slots_per_thread;
      uint64_t slot = 0;
      std::vector<engine::TransferRequest> batch(o.batch_size);
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < o.batch_size; ++i) {
          batch[i] = {op, local.data + (static_cast<uint64_t>(t) * o.batch_size + i) * o.block_size,
                      *segment,
                      target_buffer.addr + (first_slot + slot++ % slots_per_thread) * o.block_size,
                      o.block_size};
        }
        auto submitted = (*engine)->Submit(batch);
        for (const absl::Status& s : submitted->Wait()) {
          if (s.ok()) {
            bytes.fetch_add(o.block_size, std::memory_order_relaxed);
          } else if (failed.fetch_add(1) == 0) {
            std::fprintf(stderr, "\nbench transfer: %s\n", std::string(s.message()).c_str());
          }
        }
        for (absl::Duration d : submitted->Latencies()) {
          latencies[t].push_back(absl::ToDoubleMicroseconds(d));
        }
      }
    });
  }
  const absl::Time end_at = absl::Now() + o.duration;
  uint64_t last_bytes = 0;
  while (absl::Now() < end_at) {
    absl::SleepFor(std::min(absl::Seconds(1), end_at - absl::Now()));
    const uint64_t now_bytes = bytes.load();
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "\r  %5.1fs  %8.3f GB/s  (%.3f GB/s in the last interval)   ", elapsed,
                 now_bytes / elapsed / 1e9, (now_bytes - last_bytes) / 1e9);
    last_bytes = now_bytes;
  }
  stop.store(true);
  for (auto& thread : threads) thread.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "\n");
  const LatencySummary latency = Summarize(latencies);
  const double gbps = bytes.load() / seconds / 1e9;
  std::printf(
      "bench transfer: %s %s x %d per batch, %d threads, %s: %.3f GB/s, %.0f requests/s, "
      "p50 %.1f us, p99 %.1f us, %lu failed\n",
      o.op.c_str(), FormatByteSize(o.block_size).c_str(), o.batch_size, o.threads,
      o.protocol.c_str(), gbps, latency.count / seconds, latency.p50_us, latency.p99_us,
      static_cast<unsigned long>(failed.load()));
  nlohmann::json summary = {{"bench", "transfer"},        {"op", o.op},
                            {"protocol", o.protocol},     {"block_size", o.block_size},
                            {"batch_size", o.batch_size}, {"threads", o.threads},
                            {"seconds", seconds},         {"gb_per_s", gbps},
                            {"requests", latency.count},  {"p50_us", latency.p50_us},
                            {"p99_us", latency.p99_us},   {"failed", failed.load()}};
  std::printf("%s\n", summary.dump().c_str());
  return failed.load() == 0 ? 0 : 1;
}

}  // namespace

int RunTransferBench(const TransferBenchOptions& options,
                     const std::function<void()>& wait_for_stop) {
  if (options.mode == "target") return RunTarget(options, wait_for_stop);
  if (options.mode == "initiator") {
    if (options.target.empty()) {
      std::fprintf(stderr, "bench transfer: --target host:port is required\n");
      return 2;
    }
    return RunInitiator(options);
  }
  std::fprintf(stderr, "bench transfer: --mode must be target or initiator\n");
  return 2;
}

}  // namespace mooncake::bench
