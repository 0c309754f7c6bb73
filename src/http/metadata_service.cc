#include "http/metadata_service.h"

#include <algorithm>
#include <string>
#include <utility>

namespace mooncake::http {
namespace {

HttpServerOptions FitBody(HttpServerOptions options, const MetadataStoreOptions& store) {
  options.max_body_bytes = std::max(options.max_body_bytes, store.max_value_bytes);
  return options;
}

}  // namespace

MetadataService::MetadataService(MetadataStoreOptions options, MetricsRegistry* metrics)
    : store_(options), metrics_(metrics) {
  metrics_->SetGaugeCallback("mooncake_metadata_keys", "Keys held by the metadata service", {},
                             [this] { return static_cast<double>(store_.key_count()); });
  metrics_->SetGaugeCallback("mooncake_metadata_bytes",
                             "Bytes of keys and values held by the metadata service", {},
                             [this] { return static_cast<double>(store_.total_bytes()); });
}

MetadataService::~MetadataService() {
  metrics_->RemoveGaugeCallback("mooncake_metadata_keys", {});
  metrics_->RemoveGaugeCallback("mooncake_metadata_bytes", {});
}

void MetadataService::RegisterRoutes(HttpServer& server) {
  server.Route("GET", "/metadata", [this](const HttpRequest& request) {
    absl::StatusOr<std::string_view> key = request.QueryParam("key");
    if (!key.ok()) return HttpResponse::FromStatus(key.status());
    absl::StatusOr<std::string> value = store_.Get(*key);
    if (!value.ok()) return HttpResponse::FromStatus(value.status());
    return HttpResponse::Bytes(*std::move(value));
  });
  server.Route("PUT", "/metadata", [this](const HttpRequest& request) {
    absl::StatusOr<std::string_view> key = request.QueryParam("key");
    if (!key.ok()) return HttpResponse::FromStatus(key.status());
    if (absl::Status put = store_.Put(*key, request.body); !put.ok()) {
      return HttpResponse::FromStatus(put);
    }
    return HttpResponse::Text("metadata updated");
  });
  server.Route("DELETE", "/metadata", [this](const HttpRequest& request) {
    absl::StatusOr<std::string_view> key = request.QueryParam("key");
    if (!key.ok()) return HttpResponse::FromStatus(key.status());
    if (absl::Status removed = store_.Delete(*key); !removed.ok()) {
      return HttpResponse::FromStatus(removed);
    }
    return HttpResponse::Text("metadata deleted");
  });
}

MetadataServer::MetadataServer(HttpServerOptions server_options, MetadataStoreOptions store_options)
    : service_(store_options, server_options.metrics),
      server_(FitBody(std::move(server_options), store_options)) {
  service_.RegisterRoutes(server_);
  AddHealthAndMetricsRoutes(server_);
}

}  // namespace mooncake::http
