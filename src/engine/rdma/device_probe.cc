#include "engine/rdma/device_probe.h"

#include "engine/rdma/ibverbs.h"

namespace mooncake::engine {

std::vector<std::string> ListRdmaDevices() {
  std::vector<std::string> names;
  absl::StatusOr<const rdma::IbverbsApi*> api = rdma::Ibverbs();
  if (!api.ok()) return names;  // no libibverbs on this host: no devices
  int count = 0;
  ibv_device** devices = (*api)->get_device_list(&count);
  if (devices == nullptr) return names;
  for (int i = 0; i < count; ++i) names.emplace_back((*api)->get_device_name(devices[i]));
  (*api)->free_device_list(devices);
  return names;
}

}  // namespace mooncake::engine
