// The Python extension links the shared libibverbs, which loads the host's providers itself.
#include "engine/rdma/providers.h"

namespace mooncake::engine::rdma {

void RegisterBuiltinProviders() {}

}  // namespace mooncake::engine::rdma
