// The libibverbs functions the RDMA transport calls (ib_verbs.cc, device_probe.cc), found in one of
// two ways, one linked into each program:
//   - linked_ibverbs.cc, in the static `mooncake` binary: rdma-core and every provider it ships are
//     compiled in, so the binary drives any supported NIC whether or not rdma-core is installed;
//   - loaded_ibverbs.cc, in the Python extension: the host's own libibverbs.so.1, opened the first
//     time RDMA is asked for, so that it finds the providers (and their versions) installed with
//     the host's drivers, and a host without rdma-core still imports the module and uses TCP.
// ibv_post_send and ibv_poll_cq are not here: verbs.h makes them calls through the device context.
#pragma once

#include <infiniband/verbs.h>

#include "absl/status/statusor.h"

namespace mooncake::engine::rdma {

struct IbverbsApi {
  ibv_device** (*get_device_list)(int* count);
  void (*free_device_list)(ibv_device** list);
  const char* (*get_device_name)(ibv_device* device);
  ibv_context* (*open_device)(ibv_device* device);
  int (*close_device)(ibv_context* context);
  int (*query_port)(ibv_context* context, uint8_t port, ibv_port_attr* attr);
  int (*query_gid)(ibv_context* context, uint8_t port, int index, ibv_gid* gid);
  ibv_pd* (*alloc_pd)(ibv_context* context);
  int (*dealloc_pd)(ibv_pd* pd);
  ibv_mr* (*reg_mr)(ibv_pd* pd, void* addr, size_t length, int access);
  int (*dereg_mr)(ibv_mr* mr);
  ibv_cq* (*create_cq)(ibv_context* context, int entries, void* user, ibv_comp_channel* channel,
                       int vector);
  int (*destroy_cq)(ibv_cq* cq);
  ibv_qp* (*create_qp)(ibv_pd* pd, ibv_qp_init_attr* attr);
  int (*destroy_qp)(ibv_qp* qp);
  int (*modify_qp)(ibv_qp* qp, ibv_qp_attr* attr, int mask);
  const char* (*wc_status_str)(ibv_wc_status status);
};

// The functions, or why they cannot be had (UNAVAILABLE_IN_CURRENT_STATUS: no libibverbs on this
// host). Resolved once; thread-safe.
absl::StatusOr<const IbverbsApi*> Ibverbs();

// loaded_ibverbs.cc only: the functions of `library` (a name or path dlopen takes), or why they
// cannot be had. Ibverbs() is LoadIbverbs("libibverbs.so.1") kept; tests name other libraries.
absl::StatusOr<const IbverbsApi*> LoadIbverbs(const char* library);

}  // namespace mooncake::engine::rdma
