// The process's metrics registry: counters, gauges and histograms with labels, rendered in the
// Prometheus text exposition format (version 0.0.4).
//
// Thread safety: everything here is safe to call from any thread. Looking a series up takes the
// registry's lock; updating a series you hold a reference to is lock-free (atomics), so hot paths
// look their series up once and keep the reference. References stay valid for the registry's life.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace mooncake {

// Label pairs in the order they are rendered, e.g. {{"route", "/metadata"}, {"method", "GET"}}.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Increment(uint64_t delta = 1) { value_.fetch_add(delta, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t value) { value_.store(value, std::memory_order_relaxed); }
  void Add(int64_t delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  int64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

class Histogram {
 public:
  // REQUIRES: `upper_bounds` is non-empty and strictly increasing. A +Inf bucket is implied.
  explicit Histogram(std::vector<double> upper_bounds);

  void Observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative_counts;  // one per bound, then the +Inf bucket
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot Take() const;

 private:
  const std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // upper_bounds_.size() + 1 entries
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The registry of this process, which every service renders on its /metrics.
  static MetricsRegistry& Default();

  // Exponential buckets for request latencies in seconds: 10 us to about 10 s.
  static const std::vector<double>& LatencyBuckets();

  // Return the series `name{labels}`, creating it (and its family, with `help`) on first use.
  // REQUIRES: `name` is a valid Prometheus metric name, and every use of a name asks for one type.
  // A violation is a programming error and aborts the process with a message.
  Counter& GetCounter(std::string_view name, std::string_view help,
                      const MetricLabels& labels = {});
  Gauge& GetGauge(std::string_view name, std::string_view help, const MetricLabels& labels = {});
  Histogram& GetHistogram(std::string_view name, std::string_view help, const MetricLabels& labels,
                          const std::vector<double>& upper_bounds);

  // A gauge whose value is computed by `read` each time the registry is rendered. Registering the
  // same name and labels again replaces the callback. `read` must not call back into the registry.
  void SetGaugeCallback(std::string_view name, std::string_view help, const MetricLabels& labels,
                        std::function<double()> read);

  // A counter whose value is computed by `read` each time the registry is rendered (a total kept
  // elsewhere, e.g. by the kernel). Same rules as SetGaugeCallback.
  void SetCounterCallback(std::string_view name, std::string_view help, const MetricLabels& labels,
                          std::function<double()> read);

  // Drops the callback gauge `name{labels}` (call it before whatever `read` uses is destroyed).
  void RemoveGaugeCallback(std::string_view name, const MetricLabels& labels);

  // All families, sorted by name, in Prometheus text format.
  std::string RenderPrometheus() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    MetricLabels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> read;
  };
  struct Family {
    Type type;
    std::string help;
    std::map<std::string, Series> series;  // keyed by rendered labels
  };

  // A gauge's or counter's series computed by `read` at each rendering.
  void SetCallback(std::string_view name, std::string_view help, Type type,
                   const MetricLabels& labels, std::function<double()> read)
      ABSL_LOCKS_EXCLUDED(mu_);
  Series& FindOrCreate(std::string_view name, std::string_view help, Type type,
                       const MetricLabels& labels) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Family, std::less<>> families_ ABSL_GUARDED_BY(mu_);
};

// Appends `value` escaped for a label value of the Prometheus text format (backslash, double
// quote and newline), so that no value can end its label or its line.
void AppendEscapedLabelValue(std::string& out, std::string_view value);

}  // namespace mooncake
