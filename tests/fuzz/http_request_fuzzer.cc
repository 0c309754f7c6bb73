// libFuzzer target: raw bytes as one HTTP connection to a server with the master's RPC and admin
// routes, the metadata routes, /health and /metrics. Whatever arrives, the server answers (or
// closes) without crashing, leaking or reading out of bounds, and the master stays consistent.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/metadata_service.h"
#include "http/server.h"
#include "master/master_service.h"
#include "master/rpc_service.h"

namespace {

struct Target {
  Target()
      : service(mooncake::master::MasterConfig{}), server(mooncake::http::HttpServerOptions{}) {
    (void)service.MountSegment("fuzz-client", "127.0.0.1:1", 1 << 20, 64 << 20, 7);
    mooncake::master::RegisterRpcRoutes(server, service);
    mooncake::master::RegisterAdminRoutes(server, service);
    mooncake::http::AddHealthAndMetricsRoutes(server);
  }
  mooncake::master::MasterService service;
  mooncake::http::HttpServer server;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Target* target = new Target();
  (void)target->server.ServeBytes(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
