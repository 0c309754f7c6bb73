// The `mooncake` binary links rdma-core statically, and a static libibverbs finds providers only
// if they are named at compile time: with RDMA_STATIC_PROVIDERS=all, every provider of
// libibverbs.a is registered, so the binary drives any supported NIC whether or not rdma-core is
// installed on the host.
#define RDMA_STATIC_PROVIDERS all
#include <infiniband/verbs.h>

#include "engine/rdma/providers.h"

namespace mooncake::engine::rdma {

void RegisterBuiltinProviders() {
  ibv_static_providers(NULL, _RDMA_STATIC_PREFIX(RDMA_STATIC_PROVIDERS), NULL);
}

}  // namespace mooncake::engine::rdma
