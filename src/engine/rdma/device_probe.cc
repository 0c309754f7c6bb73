// rdma-core's static libibverbs finds providers only if they are named at compile time: with
// RDMA_STATIC_PROVIDERS=all, ibv_get_device_list() registers every provider of libibverbs.a, so the
// binary drives any supported NIC whether or not rdma-core is installed on the host.
#define RDMA_STATIC_PROVIDERS all
#include "engine/rdma/device_probe.h"

#include <infiniband/verbs.h>

namespace mooncake::engine {

std::vector<std::string> ListRdmaDevices() {
  std::vector<std::string> names;
  int count = 0;
  ibv_device** devices = ibv_get_device_list(&count);
  if (devices == nullptr) return names;
  for (int i = 0; i < count; ++i) names.emplace_back(ibv_get_device_name(devices[i]));
  ibv_free_device_list(devices);
  return names;
}

}  // namespace mooncake::engine
