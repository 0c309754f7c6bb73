#include "support/soft_verbs.h"

#include <cstring>
#include <deque>

#include "common/error_code.h"
#include "common/strings.h"

namespace mooncake::test {

using engine::rdma::Completion;
using engine::rdma::Gid;
using engine::rdma::MemoryKeys;
using engine::rdma::QpAddress;
using engine::rdma::WorkOp;
using engine::rdma::WorkRequest;

struct SoftFabric::DeviceState {
  struct Region {
    uint64_t addr, length;
    uint32_t lkey, rkey;
  };
  std::string name;
  uint16_t lid = 0;
  absl::Mutex mu;
  std::vector<Region> regions ABSL_GUARDED_BY(mu);
  std::deque<Completion> cq ABSL_GUARDED_BY(mu);
  uint32_t next_key ABSL_GUARDED_BY(mu) = 1;

  // The region `key` names, if it holds [addr, addr + length).
  bool Check(uint32_t key, bool remote, uint64_t addr, uint64_t length) {
    absl::MutexLock lock(&mu);
    for (const Region& r : regions) {
      if ((remote ? r.rkey : r.lkey) != key) continue;
      return length <= r.length && addr >= r.addr && addr - r.addr <= r.length - length;
    }
    return false;
  }
  void Complete(Completion c) {
    absl::MutexLock lock(&mu);
    cq.push_back(std::move(c));
  }
};

struct SoftFabric::QpState {
  std::shared_ptr<DeviceState> device;
  uint32_t qp_num = 0;
  absl::Mutex mu;
  bool connected ABSL_GUARDED_BY(mu) = false;
  bool error ABSL_GUARDED_BY(mu) = false;
  uint32_t peer ABSL_GUARDED_BY(mu) = 0;
};

namespace {

Gid GidOf(uint16_t lid) {
  Gid gid{};
  gid[0] = 0xfe;
  gid[1] = 0x80;
  gid[14] = static_cast<uint8_t>(lid >> 8);
  gid[15] = static_cast<uint8_t>(lid);
  return gid;
}

class SoftQueuePair : public engine::rdma::QueuePair {
 public:
  SoftQueuePair(std::shared_ptr<SoftFabric> fabric, std::shared_ptr<SoftFabric::QpState> state)
      : fabric_(std::move(fabric)), state_(std::move(state)) {}
  ~SoftQueuePair() override { fabric_->RemoveQp(state_->qp_num); }

  QpAddress address() const override {
    return QpAddress{state_->qp_num, state_->device->lid, GidOf(state_->device->lid)};
  }

  absl::Status Connect(const QpAddress& peer) override {
    if (!fabric_->FindQp(peer.qp_num)) {
      return MakeError(ErrorCode::TRANSFER_FAIL, fmt::format("no queue pair {}", peer.qp_num));
    }
    absl::MutexLock lock(&state_->mu);
    state_->connected = true;
    state_->error = false;
    state_->peer = peer.qp_num;
    return absl::OkStatus();
  }

  absl::Status Post(absl::Span<const WorkRequest> requests) override {
    for (const WorkRequest& r : requests) Execute(r);
    return absl::OkStatus();
  }

 private:
  void Fail(const WorkRequest& r, std::string why) {
    {
      absl::MutexLock lock(&state_->mu);
      state_->error = true;
    }
    state_->device->Complete(Completion{r.id, false, std::move(why)});
  }

  void Execute(const WorkRequest& r) {
    uint32_t peer_num = 0;
    {
      absl::MutexLock lock(&state_->mu);
      if (state_->error) {
        state_->device->Complete(Completion{r.id, false, "work request flushed (QP in error)"});
        return;
      }
      if (!state_->connected) return Fail(r, "QP not connected");
      peer_num = state_->peer;
    }
    if (fabric_->TakeInjectedFailure(state_->device->name)) {
      return Fail(r, "transport retry counter exceeded (injected)");
    }
    if (!state_->device->Check(r.lkey, /*remote=*/false, r.local_addr, r.length)) {
      return Fail(r, "local protection error");
    }
    std::shared_ptr<SoftFabric::QpState> peer = fabric_->FindQp(peer_num);
    if (!peer || !peer->device->Check(r.rkey, /*remote=*/true, r.remote_addr, r.length)) {
      return Fail(r, "remote access error");
    }
    void* local = reinterpret_cast<void*>(r.local_addr);
    void* remote = reinterpret_cast<void*>(r.remote_addr);
    if (r.op == WorkOp::kRead) {
      std::memcpy(local, remote, r.length);
    } else {
      std::memcpy(remote, local, r.length);
    }
    fabric_->CountExecuted(state_->device->name);
    if (r.signaled) state_->device->Complete(Completion{r.id, true, ""});
  }

  std::shared_ptr<SoftFabric> fabric_;
  std::shared_ptr<SoftFabric::QpState> state_;
};

class SoftDevice : public engine::rdma::Device {
 public:
  SoftDevice(std::shared_ptr<SoftFabric> fabric, std::shared_ptr<SoftFabric::DeviceState> state)
      : fabric_(std::move(fabric)), state_(std::move(state)) {}
  const std::string& name() const override { return state_->name; }
  uint16_t lid() const override { return state_->lid; }
  Gid gid() const override { return GidOf(state_->lid); }

  absl::StatusOr<MemoryKeys> RegisterMemory(void* addr, uint64_t length) override {
    absl::MutexLock lock(&state_->mu);
    // Keys differ per device and between local and remote use, as on a NIC.
    const uint32_t lkey = (static_cast<uint32_t>(state_->lid) << 20) | (state_->next_key++ << 1);
    const uint32_t rkey = lkey | 1;
    state_->regions.push_back({reinterpret_cast<uint64_t>(addr), length, lkey, rkey});
    return MemoryKeys{lkey, rkey};
  }

  absl::Status DeregisterMemory(void* addr) override {
    absl::MutexLock lock(&state_->mu);
    for (auto it = state_->regions.begin(); it != state_->regions.end(); ++it) {
      if (it->addr == reinterpret_cast<uint64_t>(addr)) {
        state_->regions.erase(it);
        return absl::OkStatus();
      }
    }
    return MakeError(ErrorCode::OBJECT_NOT_FOUND, "memory not registered");
  }

  absl::StatusOr<std::unique_ptr<engine::rdma::QueuePair>> CreateQueuePair() override {
    auto qp = std::make_shared<SoftFabric::QpState>();
    qp->device = state_;
    qp->qp_num = fabric_->AddQp(qp);
    return std::unique_ptr<engine::rdma::QueuePair>(new SoftQueuePair(fabric_, qp));
  }

  int PollCompletions(Completion* out, int max) override {
    absl::MutexLock lock(&state_->mu);
    int n = 0;
    while (n < max && !state_->cq.empty()) {
      out[n++] = std::move(state_->cq.front());
      state_->cq.pop_front();
    }
    return n;
  }

 private:
  std::shared_ptr<SoftFabric> fabric_;
  std::shared_ptr<SoftFabric::DeviceState> state_;
};

}  // namespace

SoftVerbs::SoftVerbs(std::shared_ptr<SoftFabric> fabric, std::vector<std::string> devices)
    : fabric_(std::move(fabric)), devices_(std::move(devices)) {}

absl::StatusOr<std::unique_ptr<engine::rdma::Device>> SoftVerbs::Open(const std::string& name) {
  for (const std::string& d : devices_) {
    if (d == name)
      return std::unique_ptr<engine::rdma::Device>(
          new SoftDevice(fabric_, fabric_->AddDevice(name)));
  }
  return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("RDMA device {} not found", name));
}

std::shared_ptr<SoftFabric::DeviceState> SoftFabric::AddDevice(const std::string& name) {
  auto device = std::make_shared<DeviceState>();
  device->name = name;
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = lids_.try_emplace(name, next_lid_);
  if (inserted) ++next_lid_;
  device->lid = it->second;
  return device;
}

uint32_t SoftFabric::AddQp(const std::shared_ptr<QpState>& qp) {
  absl::MutexLock lock(&mu_);
  const uint32_t num = next_qp_++;
  qps_[num] = qp;
  return num;
}

void SoftFabric::RemoveQp(uint32_t qp_num) {
  absl::MutexLock lock(&mu_);
  qps_.erase(qp_num);
}

std::shared_ptr<SoftFabric::QpState> SoftFabric::FindQp(uint32_t qp_num) const {
  absl::MutexLock lock(&mu_);
  auto it = qps_.find(qp_num);
  return it == qps_.end() ? nullptr : it->second.lock();
}

void SoftFabric::FailNext(const std::string& name, int count) {
  absl::MutexLock lock(&mu_);
  failures_[name] += count;
}

bool SoftFabric::TakeInjectedFailure(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = failures_.find(name);
  if (it == failures_.end() || it->second == 0) return false;
  --it->second;
  return true;
}

int SoftFabric::PendingFailures(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = failures_.find(name);
  return it == failures_.end() ? 0 : it->second;
}

void SoftFabric::CountExecuted(const std::string& name) {
  absl::MutexLock lock(&mu_);
  ++executed_[name];
}

uint64_t SoftFabric::Executed(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = executed_.find(name);
  return it == executed_.end() ? 0 : it->second;
}

}  // namespace mooncake::test
