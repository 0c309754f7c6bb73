#include "common/metrics.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "common/process_metrics.h"
#include "common/version.h"

namespace mooncake {
namespace {

TEST(MetricsTest, CountersRenderWithLabels) {
  MetricsRegistry registry;
  registry.GetCounter("requests_total", "Requests", {{"route", "/a"}}).Increment();
  registry.GetCounter("requests_total", "Requests", {{"route", "/a"}}).Increment(2);
  registry.GetCounter("requests_total", "Requests", {{"route", "/b"}}).Increment();
  std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("# HELP requests_total Requests\n# TYPE requests_total counter\n"),
            std::string::npos);
  EXPECT_NE(text.find("requests_total{route=\"/a\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("requests_total{route=\"/b\"} 1\n"), std::string::npos) << text;
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  MetricsRegistry registry;
  registry.GetGauge("g", "G", {{"path", "a\"b\\c\nd"}}).Set(-5);
  EXPECT_NE(registry.RenderPrometheus().find("g{path=\"a\\\"b\\\\c\\nd\"} -5\n"), std::string::npos)
      << registry.RenderPrometheus();
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  MetricsRegistry registry;
  Histogram& h = registry.GetHistogram("latency_seconds", "L", {{"op", "get"}}, {0.1, 1.0});
  h.Observe(0.05);
  h.Observe(0.1);  // on the bound: counts in le="0.1"
  h.Observe(0.5);
  h.Observe(5);
  std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("latency_seconds_bucket{op=\"get\",le=\"0.1\"} 2\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("latency_seconds_bucket{op=\"get\",le=\"1\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("latency_seconds_count{op=\"get\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("latency_seconds_sum{op=\"get\"} 5.65\n"), std::string::npos);
}

TEST(MetricsTest, GaugeCallbacksAreReadAtRenderTimeAndRemovable) {
  MetricsRegistry registry;
  int value = 7;
  registry.SetGaugeCallback("live", "Live", {}, [&] { return static_cast<double>(value); });
  EXPECT_NE(registry.RenderPrometheus().find("live 7\n"), std::string::npos);
  value = 9;
  EXPECT_NE(registry.RenderPrometheus().find("live 9\n"), std::string::npos);
  registry.RemoveGaugeCallback("live", {});
  EXPECT_EQ(registry.RenderPrometheus().find("live"), std::string::npos);
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
  MetricsRegistry registry;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) registry.GetCounter("c", "C", {{"k", "v"}}).Increment();
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(registry.GetCounter("c", "C", {{"k", "v"}}).Value(), 80000u);
}

TEST(MetricsDeathTest, OneNameHasOneType) {
  MetricsRegistry registry;
  registry.GetCounter("x", "X");
  EXPECT_DEATH(registry.GetGauge("x", "X"), "two types");
  EXPECT_DEATH(registry.GetCounter("bad name", "X"), "invalid metric name");
}

// The process_* series every process exports, read from the kernel at each scrape, and the build.
TEST(ProcessMetricsTest, EveryScrapeReadsTheProcess) {
  MetricsRegistry registry;
  RegisterProcessMetrics(registry);
  RegisterProcessMetrics(registry);  // again: replaced, not duplicated
  auto value = [](const std::string& text, const std::string& series) {
    const size_t at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + series.size() + 2));
  };
  const std::string before = registry.RenderPrometheus();
  EXPECT_NE(before.find("# TYPE process_cpu_seconds_total counter"), std::string::npos) << before;
  EXPECT_NE(before.find(std::string("mooncake_build_info{version=\"") + kVersion + "\"} 1"),
            std::string::npos)
      << before;
  EXPECT_GT(value(before, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(value(before, "process_virtual_memory_bytes"),
            value(before, "process_resident_memory_bytes"));
  EXPECT_GT(value(before, "process_max_fds"), 0);
  EXPECT_GT(value(before, "process_start_time_seconds"), 1.7e9);
  // Opening descriptors and burning CPU show at the next scrape.
  std::vector<std::FILE*> files;
  for (int i = 0; i < 10; ++i) files.push_back(std::fopen("/dev/null", "r"));
  volatile double sink = 0;
  for (int i = 0; i < 20000000; ++i) sink = sink + i * 0.5;
  const std::string after = registry.RenderPrometheus();
  EXPECT_GE(value(after, "process_open_fds"), value(before, "process_open_fds") + 10) << after;
  EXPECT_GT(value(after, "process_cpu_seconds_total"), value(before, "process_cpu_seconds_total"));
  for (std::FILE* f : files) std::fclose(f);
}

}  // namespace
}  // namespace mooncake
