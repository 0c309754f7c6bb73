// Makes rdma-core's device providers known before devices are listed. Two implementations, one
// linked into each program: static_providers.cc for the static binary (providers compiled in),
// shared_providers.cc for the Python extension (the shared libibverbs loads them itself).
#pragma once

namespace mooncake::engine::rdma {

// Call before ibv_get_device_list(); cheap and idempotent.
void RegisterBuiltinProviders();

}  // namespace mooncake::engine::rdma
