// The master's RPC endpoints: POST /v1/<Method> with JSON bodies, on the RPC port (50051).
// docs/master-rpc.md documents every request and response.
#pragma once

#include <functional>

#include "http/server.h"
#include "master/master_service.h"

namespace mooncake::master {

// Adds the /v1/... routes to `server`. REQUIRES: `server` not started; `service` outlives it.
void RegisterRpcRoutes(http::HttpServer& server, MasterService& service);

// Adds the admin endpoints of SPEC.md §4 (/metrics, /metrics/summary, /health, /get_all_segments,
// /query_key, /get_all_keys) and the tenant quota API (/api/v1/tenant_quotas) to `server`, the
// admin port (9003). `leading`, when set, says whether this master leads (HA): a master that
// does not answers the tenant quota API with 503.
void RegisterAdminRoutes(http::HttpServer& server, MasterService& service,
                         std::function<absl::Status()> leading = nullptr);

}  // namespace mooncake::master
