// The master's admin/metrics endpoints (SPEC.md §4), on the metrics port (9003).
#include <functional>
#include <optional>
#include <string>

#include "common/process_metrics.h"
#include "common/strings.h"
#include "common/tenant.h"
#include "common/units.h"
#include "http/json_body.h"
#include "master/rpc_service.h"

namespace mooncake::master {
namespace {

// Gauges describing the object index, refreshed in the registry just before each scrape. They
// come from counters the master keeps, so a scrape never walks the object table. Returns the
// capacity of the segments.
uint64_t PublishGauges(MetricsRegistry& metrics, const MasterService& service,
                       const std::vector<SegmentInfo>& segments) {
  auto gauge = [&](const char* name, const char* help, uint64_t value) {
    metrics.GetGauge(name, help).Set(static_cast<int64_t>(value));
  };
  const MasterService::Counts counts = service.counts();
  gauge("mooncake_master_objects", "Objects in the index (complete and processing)",
        counts.objects);
  gauge("mooncake_master_processing_objects", "Objects whose put has not ended", counts.processing);
  gauge("mooncake_master_hard_pinned_objects", "Hard-pinned objects", counts.hard_pinned);
  gauge("mooncake_master_key_bytes", "Bytes of all keys in the index", counts.key_bytes);
  uint64_t capacity = 0, used = 0;
  for (const SegmentInfo& s : segments) {
    capacity += s.size;
    used += s.used;
  }
  gauge("mooncake_master_capacity_bytes", "Bytes of all mounted segments", capacity);
  gauge("mooncake_master_used_bytes", "Bytes allocated to objects", used);
  gauge("mooncake_master_segments", "Mounted segments", segments.size());
  gauge("mooncake_master_clients",
        "Clients heard from within the liveness TTL (client_live_ttl_sec)", service.client_count());
  // The original Mooncake master's names for the same figures, which scripts and dashboards
  // written for it read (docs/migration.md).
  gauge("master_key_count", "Keys in the index (the original's name)", counts.objects);
  gauge("master_allocated_bytes", "Bytes allocated to objects (the original's name)", used);
  gauge("master_total_capacity_bytes", "Bytes of all mounted segments (the original's name)",
        capacity);
  gauge("master_active_clients", "Clients heard from within the liveness TTL (the original's name)",
        service.client_count());
  gauge("master_evicted_key_count", "Objects evicted since the start (the original's name)",
        counts.evicted_objects);
  gauge("master_evicted_size_bytes", "Bytes evicted since the start (the original's name)",
        counts.evicted_bytes);
  return capacity;
}

// Per-segment gauges: rendered from the live segment list, so unmounted segments disappear.
// (The original's names, `segment_total_capacity_bytes` and `segment_allocated_bytes`, too.)
std::string SegmentGauges(const std::vector<SegmentInfo>& segments) {
  std::string out;
  auto family = [&](std::string_view metric, std::string_view help, bool used) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", metric, help, metric);
    for (const SegmentInfo& s : segments) {
      out += metric;
      out += "{segment=\"";
      AppendEscapedLabelValue(out, s.name);
      out += fmt::format("\"}} {}\n", used ? s.used : s.size);
    }
  };
  family("mooncake_master_segment_capacity_bytes", "Size of a mounted segment", false);
  family("mooncake_master_segment_used_bytes", "Bytes allocated in a mounted segment", true);
  family("segment_total_capacity_bytes", "Size of a mounted segment (the original's name)", false);
  family("segment_allocated_bytes", "Bytes allocated in a mounted segment (the original's name)",
         true);
  return out;
}

std::string Summary(const MasterStats& stats, const std::vector<SegmentInfo>& segments) {
  const double used_pct = stats.total_bytes == 0
                              ? 0
                              : 100.0 * static_cast<double>(stats.used_bytes) / stats.total_bytes;
  std::string out = fmt::format(
      "mooncake master\n"
      "storage: {} used of {} ({:.1f}%) in {} segments\n"
      "objects: {} ({} being written, {} leased, {} soft-pinned, {} hard-pinned)\n"
      "evicted: {} objects, {}\n"
      "clients: {}\n",
      FormatByteSize(stats.used_bytes), FormatByteSize(stats.total_bytes), used_pct, stats.segments,
      stats.objects, stats.processing, stats.leased, stats.soft_pinned, stats.hard_pinned,
      stats.evicted_objects, FormatByteSize(stats.evicted_bytes), stats.clients);
  for (const SegmentInfo& s : segments) {
    out += fmt::format("  segment {}: {} used of {} (client {})\n", s.name, FormatByteSize(s.used),
                       FormatByteSize(s.size), s.client_id);
  }
  return out;
}

// The tenant a query names with ?tenant_id= (absent: the default tenant).
absl::StatusOr<std::string> TenantParam(const http::HttpRequest& request) {
  if (request.query == nullptr || request.query->count("tenant_id") == 0) {
    return std::string(kDefaultTenant);
  }
  absl::StatusOr<std::string_view> tenant = request.QueryParam("tenant_id");
  if (!tenant.ok()) return tenant.status();
  if (absl::Status valid = ValidateTenantId(*tenant); !valid.ok()) return valid;
  return std::string(*tenant);
}

nlohmann::json SnapshotJson(const TenantSnapshot& s) {
  return {{"tenant_id", s.tenant},
          {"requested_quota_bytes", s.requested_quota_bytes},
          {"effective_quota_bytes", s.effective_quota_bytes},
          {"used_bytes", s.used_bytes},
          {"reserved_bytes", s.reserved_bytes},
          {"object_count", s.objects},
          {"over_quota", s.over_quota}};
}

// The tenant quota API's errors: 409 while quotas are off or for a tenant that still holds
// objects (the original's codes), 503 on a master that does not lead.
http::HttpResponse QuotaError(const absl::Status& status) {
  const ErrorCode code = ErrorCodeOf(status);
  return http::HttpResponse::Error(code, AsStd(status.message()),
                                   code == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS ? 409 : 0);
}

// GET, PUT and DELETE /api/v1/tenant_quotas[?tenant_id=NAME].
void RegisterTenantQuotaRoutes(http::HttpServer& server, MasterService& service,
                               std::function<absl::Status()> leading) {
  using http::HttpRequest;
  using http::HttpResponse;
  constexpr const char* kPath = "/api/v1/tenant_quotas";
  auto admit = [leading]() -> std::optional<HttpResponse> {
    if (!leading) return std::nullopt;
    absl::Status led = leading();
    if (led.ok()) return std::nullopt;
    return HttpResponse::Error(ErrorCodeOf(led), AsStd(led.message()), 503);
  };
  auto capacity = [&service] {
    uint64_t total = 0;
    for (const SegmentInfo& s : service.ListSegments()) total += s.size;
    return total;
  };
  server.Route("GET", kPath, [&service, admit, capacity](const HttpRequest& request) {
    if (auto refused = admit()) return *refused;
    if (request.query != nullptr && request.query->count("tenant_id") > 0) {
      absl::StatusOr<std::string> tenant = TenantParam(request);
      if (!tenant.ok()) return HttpResponse::FromStatus(tenant.status());
      absl::StatusOr<TenantSnapshot> one = service.tenants().Get(*tenant, capacity());
      if (!one.ok()) return QuotaError(one.status());
      return HttpResponse::Json(SnapshotJson(*one));
    }
    absl::StatusOr<std::vector<TenantSnapshot>> all = service.tenants().List(capacity());
    if (!all.ok()) return QuotaError(all.status());
    nlohmann::json tenants = nlohmann::json::array();
    for (const TenantSnapshot& s : *all) tenants.push_back(SnapshotJson(s));
    return HttpResponse::Json({{"tenants", std::move(tenants)}});
  });
  server.Route("PUT", kPath, [&service, admit, capacity](const HttpRequest& request) {
    if (auto refused = admit()) return *refused;
    absl::StatusOr<std::string_view> tenant = request.QueryParam("tenant_id");
    if (!tenant.ok()) return HttpResponse::FromStatus(tenant.status());
    absl::StatusOr<nlohmann::json> body = http::ParseJsonBody(request.body);
    if (!body.ok()) return HttpResponse::FromStatus(body.status());
    auto bytes = body->is_object() ? body->find("requested_quota_bytes") : body->end();
    if (!body->is_object() || bytes == body->end() || !bytes->is_number_unsigned()) {
      return HttpResponse::Error(ErrorCode::INVALID_PARAMS,
                                 "body must be {\"requested_quota_bytes\": N}, N bytes from 1 "
                                 "to 2^62");
    }
    absl::StatusOr<TenantSnapshot> set =
        service.tenants().SetQuota(*tenant, bytes->get<uint64_t>(), capacity());
    if (!set.ok()) return QuotaError(set.status());
    return HttpResponse::Json(SnapshotJson(*set));
  });
  server.Route("DELETE", kPath, [&service, admit](const HttpRequest& request) {
    if (auto refused = admit()) return *refused;
    absl::StatusOr<std::string_view> tenant = request.QueryParam("tenant_id");
    if (!tenant.ok()) return HttpResponse::FromStatus(tenant.status());
    if (absl::Status gone = service.tenants().DeleteQuota(*tenant); !gone.ok()) {
      return QuotaError(gone);
    }
    return HttpResponse::Json({{"tenant_id", *tenant}, {"deleted", true}});
  });
}

std::string Lines(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) {
    out += item;
    out += '\n';
  }
  return out;
}

}  // namespace

void RegisterAdminRoutes(http::HttpServer& server, MasterService& service,
                         std::function<absl::Status()> leading) {
  using http::HttpRequest;
  using http::HttpResponse;
  MetricsRegistry* metrics = server.options().metrics;
  RegisterProcessMetrics(*metrics);
  server.Route("GET", "/health", [](const HttpRequest&) { return HttpResponse::Text("OK"); });
  server.Route("GET", "/metrics", [metrics, &service](const HttpRequest&) {
    const std::vector<SegmentInfo> segments = service.ListSegments();  // once per scrape
    const uint64_t capacity = PublishGauges(*metrics, service, segments);
    HttpResponse response =
        HttpResponse::Text(metrics->RenderPrometheus() + SegmentGauges(segments) +
                           service.tenants().RenderMetrics(capacity));
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return response;
  });
  server.Route("GET", "/metrics/summary", [&service](const HttpRequest&) {
    return HttpResponse::Text(Summary(service.Stats(), service.ListSegments()));
  });
  server.Route("GET", "/get_all_segments", [&service](const HttpRequest&) {
    std::vector<std::string> names;
    for (const SegmentInfo& info : service.ListSegments()) names.push_back(info.name);
    return HttpResponse::Text(Lines(names));
  });
  server.Route("GET", "/get_all_keys", [&service](const HttpRequest& request) {
    absl::StatusOr<std::string> tenant = TenantParam(request);
    if (!tenant.ok()) return HttpResponse::FromStatus(tenant.status());
    return HttpResponse::Text(Lines(service.AllKeys(*tenant)));
  });
  server.Route("GET", "/query_key", [&service](const HttpRequest& request) {
    absl::StatusOr<std::string_view> key = request.QueryParam("key");
    if (!key.ok()) return HttpResponse::FromStatus(key.status());
    absl::StatusOr<std::string> tenant = TenantParam(request);
    if (!tenant.ok()) return HttpResponse::FromStatus(tenant.status());
    absl::StatusOr<nlohmann::json> described = service.Describe(QualifyKey(*tenant, *key));
    if (!described.ok()) return HttpResponse::FromStatus(described.status());
    return HttpResponse::Json(*described);
  });
  RegisterTenantQuotaRoutes(server, service, std::move(leading));
}

}  // namespace mooncake::master
