#include "client/client_metrics.h"

#include <array>

#include "common/error_code.h"
#include "common/metrics.h"

namespace mooncake::client {
namespace {

constexpr std::array<const char*, 6> kOpNames = {"put",   "upsert",   "get",
                                                 "exist", "get_size", "remove"};

struct OpSeries {
  Counter* calls;
  Counter* keys;
  Counter* misses;
  Counter* errors;
  Counter* bytes;
  Histogram* duration;
};

const std::array<OpSeries, kOpNames.size()>& Series() {
  static const std::array<OpSeries, kOpNames.size()> series = [] {
    MetricsRegistry& registry = MetricsRegistry::Default();
    std::array<OpSeries, kOpNames.size()> all{};
    for (size_t i = 0; i < kOpNames.size(); ++i) {
      const MetricLabels op = {{"op", kOpNames[i]}};
      all[i].calls = &registry.GetCounter("mooncake_client_requests_total",
                                          "Calls of the client, by operation (a batch is one)", op);
      all[i].keys = &registry.GetCounter("mooncake_client_keys_total", "Keys the calls named", op);
      all[i].misses = &registry.GetCounter("mooncake_client_key_misses_total",
                                           "Keys found absent (not counted as errors)", op);
      all[i].errors = &registry.GetCounter("mooncake_client_key_errors_total",
                                           "Keys that failed, misses apart", op);
      all[i].bytes = &registry.GetCounter("mooncake_client_bytes_total",
                                          "Bytes of the values written or read", op);
      all[i].duration = &registry.GetHistogram("mooncake_client_request_duration_seconds",
                                               "Time of a call, from its start to its answer", op,
                                               MetricsRegistry::LatencyBuckets());
    }
    return all;
  }();
  return series;
}

}  // namespace

void RegisterClientMetrics() { Series(); }

void CallRecord::Key(const absl::Status& status, uint64_t bytes) {
  ++keys_;
  if (status.ok()) {
    bytes_ += bytes;
  } else if (ErrorCodeOf(status) == ErrorCode::OBJECT_NOT_FOUND) {
    ++misses_;
  } else {
    ++errors_;
  }
}

CallRecord::~CallRecord() {
  const OpSeries& series = Series()[static_cast<size_t>(op_)];
  series.calls->Increment();
  if (keys_ > 0) series.keys->Increment(keys_);
  if (misses_ > 0) series.misses->Increment(misses_);
  if (errors_ > 0) series.errors->Increment(errors_);
  if (bytes_ > 0) series.bytes->Increment(bytes_);
  series.duration->Observe(absl::ToDoubleSeconds(absl::Now() - start_));
}

}  // namespace mooncake::client
