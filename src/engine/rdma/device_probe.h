// Which RDMA devices this host has, through libibverbs (engine/rdma/ibverbs.h).
#pragma once

#include <string>
#include <vector>

namespace mooncake::engine {

// Names of the RDMA devices (e.g. "mlx5_0") the kernel exposes. Empty when there are none,
// including on kernels without RDMA support and hosts without libibverbs. Never fails.
std::vector<std::string> ListRdmaDevices();

}  // namespace mooncake::engine
