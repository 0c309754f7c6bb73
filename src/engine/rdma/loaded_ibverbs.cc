// Ibverbs() of the Python extension: the host's libibverbs.so.1, opened the first time RDMA is
// asked for (ibverbs.h says why).
#include <dlfcn.h>

#include <memory>
#include <string>

#include "common/error_code.h"
#include "engine/rdma/ibverbs.h"
#include "fmt/format.h"

namespace mooncake::engine::rdma {
namespace {

// Sets `out` to the library's `name`; adds the name to `missing` when there is none.
template <typename Function>
void Resolve(void* library, const char* name, Function& out, std::string& missing) {
  out = reinterpret_cast<Function>(dlsym(library, name));
  if (out == nullptr) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", name);
}

}  // namespace

absl::StatusOr<const IbverbsApi*> LoadIbverbs(const char* library) {
  void* handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                     fmt::format("RDMA needs rdma-core's {} on this host (package libibverbs1 or "
                                 "rdma-core), which could not be loaded: {}",
                                 library, dlerror()));
  }
  auto api = std::make_unique<IbverbsApi>();
  std::string missing;
  Resolve(handle, "ibv_get_device_list", api->get_device_list, missing);
  Resolve(handle, "ibv_free_device_list", api->free_device_list, missing);
  Resolve(handle, "ibv_get_device_name", api->get_device_name, missing);
  Resolve(handle, "ibv_open_device", api->open_device, missing);
  Resolve(handle, "ibv_close_device", api->close_device, missing);
  // The exported ibv_query_port fills the fields every rdma-core version has (state and lid
  // among them) and leaves the rest as the caller set them.
  Resolve(handle, "ibv_query_port", api->query_port, missing);
  Resolve(handle, "ibv_query_gid", api->query_gid, missing);
  Resolve(handle, "ibv_alloc_pd", api->alloc_pd, missing);
  Resolve(handle, "ibv_dealloc_pd", api->dealloc_pd, missing);
  Resolve(handle, "ibv_reg_mr", api->reg_mr, missing);
  Resolve(handle, "ibv_dereg_mr", api->dereg_mr, missing);
  Resolve(handle, "ibv_create_cq", api->create_cq, missing);
  Resolve(handle, "ibv_destroy_cq", api->destroy_cq, missing);
  Resolve(handle, "ibv_create_qp", api->create_qp, missing);
  Resolve(handle, "ibv_destroy_qp", api->destroy_qp, missing);
  Resolve(handle, "ibv_modify_qp", api->modify_qp, missing);
  Resolve(handle, "ibv_wc_status_str", api->wc_status_str, missing);
  if (!missing.empty()) {
    dlclose(handle);
    return MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                     fmt::format("{} lacks {}", library, missing));
  }
  return api.release();  // like the library, kept for the life of the process
}

absl::StatusOr<const IbverbsApi*> Ibverbs() {
  static const absl::StatusOr<const IbverbsApi*>* const loaded =
      new absl::StatusOr<const IbverbsApi*>(LoadIbverbs("libibverbs.so.1"));
  return *loaded;
}

}  // namespace mooncake::engine::rdma
