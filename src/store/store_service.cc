#include "store/store_service.h"

#include <unistd.h>

#include "common/error_code.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/strings.h"
#include "common/units.h"

namespace mooncake::store {

uint64_t PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? static_cast<uint64_t>(pages) * page_size : 0;
}

absl::StatusOr<std::unique_ptr<StoreService>> StoreService::Start(StoreOptions options) {
  const uint64_t segment = options.client.global_segment_size;
  if (segment == 0) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     "global_segment_size must be > 0: a store exists to contribute memory");
  }
  if (const uint64_t memory = PhysicalMemoryBytes(); memory > 0 && segment > memory) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("global_segment_size {} is larger than this machine's memory ({})",
                                 FormatByteSize(segment), FormatByteSize(memory)));
  }
  std::unique_ptr<StoreService> service(new StoreService());
  absl::StatusOr<std::unique_ptr<client::Client>> client = client::Client::Create(options.client);
  if (!client.ok()) return client.status();
  service->client_ = *std::move(client);

  http::HttpServerOptions http;
  http.name = "store";
  http.host = options.http_host;
  http.port = options.http_port;
  http.min_workers = 1;
  http.auth = options.client.auth;
  service->http_ = std::make_unique<http::HttpServer>(http);
  http::AddHealthAndMetricsRoutes(*service->http_);
  if (absl::Status s = service->http_->Start(); !s.ok()) {
    service->Stop();
    return MakeError(ErrorCodeOf(s), fmt::format("{} (choose another port with --http-port; 0 "
                                                 "takes any free one)",
                                                 s.message()));
  }
  MetricsRegistry::Default()
      .GetGauge("mooncake_store_segment_bytes", "Bytes this store contributes to the pool")
      .Set(static_cast<int64_t>(segment));
  return service;
}

void StoreService::Stop() {
  if (client_) {
    if (absl::Status s = client_->Close(); !s.ok()) {
      spdlog::warn("closing the store's client: {}", s.message());
    }
  }
  if (http_) http_->Stop();
}

StoreService::~StoreService() { Stop(); }

}  // namespace mooncake::store
