// Ibverbs() of the static `mooncake` binary: rdma-core linked in. A static libibverbs finds
// providers only if they are named at compile time: with RDMA_STATIC_PROVIDERS=all, every provider
// of libibverbs.a is registered before the first device list.
#define RDMA_STATIC_PROVIDERS all
#include <infiniband/verbs.h>

#include "engine/rdma/ibverbs.h"

namespace mooncake::engine::rdma {

absl::StatusOr<const IbverbsApi*> Ibverbs() {
  // Lambdas where verbs.h makes the call a macro or an inline function.
  static const IbverbsApi* const api = [] {
    return new IbverbsApi{
        // Registers the providers, then lists (verbs.h with RDMA_STATIC_PROVIDERS).
        .get_device_list = [](int* count) { return ibv_get_device_list(count); },
        .free_device_list = &ibv_free_device_list,
        .get_device_name = &ibv_get_device_name,
        .open_device = &ibv_open_device,
        .close_device = &ibv_close_device,
        .query_port = [](ibv_context* context, uint8_t port,
                         ibv_port_attr* attr) { return ibv_query_port(context, port, attr); },
        .query_gid = &ibv_query_gid,
        .alloc_pd = &ibv_alloc_pd,
        .dealloc_pd = &ibv_dealloc_pd,
        .reg_mr = [](ibv_pd* pd, void* addr, size_t length,
                     int access) { return ibv_reg_mr(pd, addr, length, access); },
        .dereg_mr = &ibv_dereg_mr,
        .create_cq = &ibv_create_cq,
        .destroy_cq = &ibv_destroy_cq,
        .create_qp = &ibv_create_qp,
        .destroy_qp = &ibv_destroy_qp,
        .modify_qp = &ibv_modify_qp,
        .wc_status_str = &ibv_wc_status_str,
    };
  }();
  return api;
}

}  // namespace mooncake::engine::rdma
