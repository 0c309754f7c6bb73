// libFuzzer target: every master RPC with a fuzzed JSON body. The first byte picks the route; the
// rest is the body, sent as a well-formed HTTP request, so the fuzzer spends its time inside the
// handlers (field parsing, batches, configs, lease releases) rather than in HTTP framing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fmt/format.h"
#include "http/server.h"
#include "master/master_service.h"
#include "master/rpc_service.h"

namespace {

// Not SyncSegmentIndex: it may hold a request for 10 s waiting for a change.
constexpr const char* kRoutes[] = {
    "MountSegment",
    "UnmountSegment",
    "Heartbeat",
    "ListSegments",
    "RemoveByRegex",
    "RemoveAll",
    "PutStart",
    "BatchPutStart",
    "PutEnd",
    "BatchPutEnd",
    "PutRevoke",
    "BatchPutRevoke",
    "GetReplicaList",
    "BatchGetReplicaList",
    "ExistKey",
    "BatchExistKey",
    "GetSize",
    "BatchGetSize",
    "Remove",
    "BatchRemove",
    "StageSegmentIndex",
};

struct Target {
  Target()
      : service(mooncake::master::MasterConfig{}), server(mooncake::http::HttpServerOptions{}) {
    (void)service.MountSegment("fuzz-client", "127.0.0.1:1", 1 << 20, 64 << 20, 7);
    mooncake::master::RegisterRpcRoutes(server, service);
  }
  mooncake::master::MasterService service;
  mooncake::http::HttpServer server;
  uint64_t runs = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Target* target = new Target();
  if (size == 0) return 0;
  const char* route = kRoutes[data[0] % (sizeof(kRoutes) / sizeof(kRoutes[0]))];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string request = fmt::format(
      "POST /v1/{} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\n\r\n{}",
      route, body.size(), body);
  (void)target->server.ServeBytes(request);
  // Time passing: abandoned puts, dead clients and eviction get their turn too.
  if (++target->runs % 1024 == 0) target->service.RunMaintenance();
  return 0;
}
