// The Python extension's way to libibverbs (engine/rdma/loaded_ibverbs.cc): the host's library,
// opened at run time. This machine has rdma-core's libibverbs.so.1 (a build dependency) but no
// RDMA device, so the functions are found and the device list is empty; the calls on devices are
// exercised through SoftVerbs elsewhere (rdma_transport_test.cc).
#include <gtest/gtest.h>

#include "common/error_code.h"
#include "engine/rdma/ibverbs.h"

namespace mooncake::engine::rdma {
namespace {

TEST(LoadedIbverbsTest, TheHostsLibraryGivesEveryFunction) {
  absl::StatusOr<const IbverbsApi*> api = Ibverbs();
  ASSERT_TRUE(api.ok()) << api.status();
  const IbverbsApi& ib = **api;
  for (const void* f :
       {reinterpret_cast<const void*>(ib.get_device_list),
        reinterpret_cast<const void*>(ib.free_device_list),
        reinterpret_cast<const void*>(ib.get_device_name),
        reinterpret_cast<const void*>(ib.open_device),
        reinterpret_cast<const void*>(ib.close_device),
        reinterpret_cast<const void*>(ib.query_port), reinterpret_cast<const void*>(ib.query_gid),
        reinterpret_cast<const void*>(ib.alloc_pd), reinterpret_cast<const void*>(ib.dealloc_pd),
        reinterpret_cast<const void*>(ib.reg_mr), reinterpret_cast<const void*>(ib.dereg_mr),
        reinterpret_cast<const void*>(ib.create_cq), reinterpret_cast<const void*>(ib.destroy_cq),
        reinterpret_cast<const void*>(ib.create_qp), reinterpret_cast<const void*>(ib.destroy_qp),
        reinterpret_cast<const void*>(ib.modify_qp),
        reinterpret_cast<const void*>(ib.wc_status_str)}) {
    EXPECT_NE(f, nullptr);
  }
  // Loaded once: the same table every time.
  EXPECT_EQ(*Ibverbs(), *api);
  // Working calls into the host's library: no devices here, and a completion status by name.
  int count = -1;
  ibv_device** list = ib.get_device_list(&count);
  if (list != nullptr) {
    EXPECT_EQ(count, 0);
    ib.free_device_list(list);
  }
  EXPECT_STREQ(ib.wc_status_str(IBV_WC_SUCCESS), "success");
}

TEST(LoadedIbverbsTest, AHostWithoutTheLibraryGetsAnErrorThatSaysWhatIsMissing) {
  absl::StatusOr<const IbverbsApi*> api = LoadIbverbs("libmooncake-test-no-such-library.so.1");
  ASSERT_FALSE(api.ok());
  EXPECT_EQ(ErrorCodeOf(api.status()), ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  EXPECT_NE(api.status().message().find("libmooncake-test-no-such-library.so.1"), std::string::npos)
      << api.status();
  EXPECT_NE(api.status().message().find("rdma-core"), std::string::npos) << api.status();
}

TEST(LoadedIbverbsTest, ALibraryWithoutTheFunctionsIsRefusedNamingThem) {
  absl::StatusOr<const IbverbsApi*> api = LoadIbverbs("libc.so.6");
  ASSERT_FALSE(api.ok());
  EXPECT_EQ(ErrorCodeOf(api.status()), ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  EXPECT_NE(api.status().message().find("lacks ibv_get_device_list"), std::string::npos)
      << api.status();
  EXPECT_NE(api.status().message().find("ibv_wc_status_str"), std::string::npos) << api.status();
}

}  // namespace
}  // namespace mooncake::engine::rdma
