#include "engine/rdma/device_probe.h"

#include <infiniband/verbs.h>

#include "engine/rdma/providers.h"

namespace mooncake::engine {

std::vector<std::string> ListRdmaDevices() {
  std::vector<std::string> names;
  int count = 0;
  rdma::RegisterBuiltinProviders();
  ibv_device** devices = ibv_get_device_list(&count);
  if (devices == nullptr) return names;
  for (int i = 0; i < count; ++i) names.emplace_back(ibv_get_device_name(devices[i]));
  ibv_free_device_list(devices);
  return names;
}

}  // namespace mooncake::engine
