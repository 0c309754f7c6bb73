// A software stand-in for RDMA NICs, behind the same seam (engine/rdma/verbs.h) the production
// libibverbs code implements. It stands for hardware these machines lack: it checks lkeys, rkeys
// and bounds like a NIC, executes work requests in order, reports completions on the device's
// completion queue, puts a queue pair into the error state on a failure (later requests are
// flushed), and can be told to fail requests (injected errors).
//
// Devices of every SoftVerbs sharing one SoftFabric can reach each other, like NICs on one
// network. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "engine/rdma/verbs.h"

namespace mooncake::test {

class SoftFabric;

class SoftVerbs : public engine::rdma::Verbs {
 public:
  // Exposes `devices` (names) on `fabric`.
  SoftVerbs(std::shared_ptr<SoftFabric> fabric, std::vector<std::string> devices);
  std::vector<std::string> ListDevices() override { return devices_; }
  absl::StatusOr<std::unique_ptr<engine::rdma::Device>> Open(const std::string& name) override;

 private:
  std::shared_ptr<SoftFabric> fabric_;
  std::vector<std::string> devices_;
};

class SoftFabric {
 public:
  // The next `count` work requests executed by device `name` fail (a NIC error).
  void FailNext(const std::string& name, int count);
  // Injected failures of device `name` not used up yet.
  int PendingFailures(const std::string& name) const;
  // Work requests each device has executed successfully.
  uint64_t Executed(const std::string& name) const;

  // Internal to the stand-in.
  struct QpState;
  struct DeviceState;
  std::shared_ptr<DeviceState> AddDevice(const std::string& name);
  uint32_t AddQp(const std::shared_ptr<QpState>& qp);
  void RemoveQp(uint32_t qp_num);
  std::shared_ptr<QpState> FindQp(uint32_t qp_num) const;
  bool TakeInjectedFailure(const std::string& name);
  void CountExecuted(const std::string& name);

 private:
  mutable absl::Mutex mu_;
  uint32_t next_qp_ ABSL_GUARDED_BY(mu_) = 100;
  uint16_t next_lid_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint32_t, std::weak_ptr<QpState>> qps_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> executed_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint16_t> lids_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::test
