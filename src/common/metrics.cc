#include "common/metrics.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "common/strings.h"

namespace mooncake {
namespace {

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

[[noreturn]] void DieMisuse(std::string_view what, std::string_view name) {
  std::fprintf(stderr, "metrics registry misuse: %.*s '%.*s'\n", static_cast<int>(what.size()),
               what.data(), static_cast<int>(name.size()), name.data());
  std::abort();
}

}  // namespace

void AppendEscapedLabelValue(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

namespace {

// `{a="x",b="y"}` (with `extra` appended as a last label), or "" when there are no labels at all.
std::string RenderLabels(const MetricLabels& labels,
                         const std::pair<std::string_view, std::string_view>* extra = nullptr) {
  if (labels.empty() && extra == nullptr) return "";
  std::string out = "{";
  bool first = true;
  auto append = [&](std::string_view key, std::string_view value) {
    if (!first) out += ',';
    first = false;
    out.append(key);
    out += "=\"";
    AppendEscapedLabelValue(out, value);
    out += '"';
  };
  for (const auto& [key, value] : labels) append(key, value);
  if (extra != nullptr) append(extra->first, extra->second);
  out += '}';
  return out;
}

std::string FormatNumber(double value) { return fmt::format("{:.10g}", value); }

const char* TypeName(int type) {
  static const char* const kNames[] = {"counter", "gauge", "histogram"};
  return kNames[type];
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      buckets_(new std::atomic<uint64_t>[upper_bounds_.size() + 1]) {
  if (upper_bounds_.empty() || !std::is_sorted(upper_bounds_.begin(), upper_bounds_.end()) ||
      std::adjacent_find(upper_bounds_.begin(), upper_bounds_.end()) != upper_bounds_.end()) {
    DieMisuse("histogram bounds must be non-empty and strictly increasing", "");
  }
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double value) {
  size_t index =
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin();
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot snapshot;
  snapshot.upper_bounds = upper_bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snapshot.cumulative_counts.push_back(running);
  }
  // The +Inf bucket and the count are the same number; take it from the buckets so the snapshot is
  // self-consistent even while observations race with it.
  snapshot.count = running;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

MetricsRegistry& MetricsRegistry::Default() {
  static MetricsRegistry* registry = new MetricsRegistry();
  return *registry;
}

const std::vector<double>& MetricsRegistry::LatencyBuckets() {
  static const std::vector<double>* buckets = [] {
    auto* b = new std::vector<double>;
    for (double v = 10e-6; v < 12; v *= 2) b->push_back(v);
    return b;
  }();
  return *buckets;
}

MetricsRegistry::Series& MetricsRegistry::FindOrCreate(std::string_view name, std::string_view help,
                                                       Type type, const MetricLabels& labels) {
  if (!IsValidMetricName(name)) DieMisuse("invalid metric name", name);
  for (const auto& [key, value] : labels) {
    if (!IsValidMetricName(key) || key.find(':') != std::string::npos) {
      DieMisuse("invalid label name", key);
    }
  }
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{type, std::string(help), {}}).first;
  } else if (it->second.type != type) {
    DieMisuse("metric registered with two types", name);
  }
  Series& series = it->second.series[RenderLabels(labels)];
  if (series.labels.empty()) series.labels = labels;
  return series;
}

Counter& MetricsRegistry::GetCounter(std::string_view name, std::string_view help,
                                     const MetricLabels& labels) {
  absl::MutexLock lock(&mu_);
  Series& series = FindOrCreate(name, help, Type::kCounter, labels);
  if (series.read) DieMisuse("counter already has a callback", name);
  if (!series.counter) series.counter = std::make_unique<Counter>();
  return *series.counter;
}

Gauge& MetricsRegistry::GetGauge(std::string_view name, std::string_view help,
                                 const MetricLabels& labels) {
  absl::MutexLock lock(&mu_);
  Series& series = FindOrCreate(name, help, Type::kGauge, labels);
  if (series.read) DieMisuse("gauge already has a callback", name);
  if (!series.gauge) series.gauge = std::make_unique<Gauge>();
  return *series.gauge;
}

Histogram& MetricsRegistry::GetHistogram(std::string_view name, std::string_view help,
                                         const MetricLabels& labels,
                                         const std::vector<double>& upper_bounds) {
  absl::MutexLock lock(&mu_);
  Series& series = FindOrCreate(name, help, Type::kHistogram, labels);
  if (!series.histogram) series.histogram = std::make_unique<Histogram>(upper_bounds);
  return *series.histogram;
}

void MetricsRegistry::SetGaugeCallback(std::string_view name, std::string_view help,
                                       const MetricLabels& labels, std::function<double()> read) {
  SetCallback(name, help, Type::kGauge, labels, std::move(read));
}

void MetricsRegistry::SetCounterCallback(std::string_view name, std::string_view help,
                                         const MetricLabels& labels, std::function<double()> read) {
  SetCallback(name, help, Type::kCounter, labels, std::move(read));
}

void MetricsRegistry::SetCallback(std::string_view name, std::string_view help, Type type,
                                  const MetricLabels& labels, std::function<double()> read) {
  absl::MutexLock lock(&mu_);
  Series& series = FindOrCreate(name, help, type, labels);
  if (series.gauge || series.counter) DieMisuse("series already has a stored value", name);
  series.read = std::move(read);
}

void MetricsRegistry::RemoveGaugeCallback(std::string_view name, const MetricLabels& labels) {
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return;
  it->second.series.erase(RenderLabels(labels));
  if (it->second.series.empty()) families_.erase(it);
}

std::string MetricsRegistry::RenderPrometheus() const {
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n", name, family.help);
    fmt::format_to(std::back_inserter(out), "# TYPE {} {}\n", name,
                   TypeName(static_cast<int>(family.type)));
    for (const auto& [rendered, series] : family.series) {
      switch (family.type) {
        case Type::kCounter:
          if (series.read) {
            fmt::format_to(std::back_inserter(out), "{}{} {}\n", name, rendered,
                           FormatNumber(series.read()));
          } else {
            fmt::format_to(std::back_inserter(out), "{}{} {}\n", name, rendered,
                           series.counter->Value());
          }
          break;
        case Type::kGauge: {
          double value = series.read ? series.read() : static_cast<double>(series.gauge->Value());
          fmt::format_to(std::back_inserter(out), "{}{} {}\n", name, rendered, FormatNumber(value));
          break;
        }
        case Type::kHistogram: {
          Histogram::Snapshot snap = series.histogram->Take();
          for (size_t i = 0; i < snap.cumulative_counts.size(); ++i) {
            std::string le = i < snap.upper_bounds.size() ? FormatNumber(snap.upper_bounds[i])
                                                          : std::string("+Inf");
            std::pair<std::string_view, std::string_view> extra{"le", le};
            fmt::format_to(std::back_inserter(out), "{}_bucket{} {}\n", name,
                           RenderLabels(series.labels, &extra), snap.cumulative_counts[i]);
          }
          fmt::format_to(std::back_inserter(out), "{}_sum{} {}\n", name, rendered,
                         FormatNumber(snap.sum));
          fmt::format_to(std::back_inserter(out), "{}_count{} {}\n", name, rendered, snap.count);
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace mooncake
