// The production side of the verbs seam, over libibverbs (its functions from Ibverbs():
// linked in or loaded from the host, see ibverbs.h). There is no RDMA device on our development
// and CI machines, so this file is compiled and linked but not run there; the transport's logic is
// tested through SoftVerbs.
#include <infiniband/verbs.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "absl/synchronization/mutex.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "engine/rdma/ibverbs.h"
#include "engine/rdma/verbs.h"

namespace mooncake::engine::rdma {
namespace {

constexpr uint8_t kPort = 1;
constexpr int kGidIndex = 0;
constexpr int kQueueDepth = 1024;

absl::Status VerbsError(const char* what, int err) {
  return MakeError(ErrorCode::TRANSFER_FAIL, fmt::format("{}: {}", what, std::strerror(err)));
}

class IbQueuePair : public QueuePair {
 public:
  IbQueuePair(const IbverbsApi& api, ibv_qp* qp, uint16_t lid, Gid gid)
      : api_(api), qp_(qp), lid_(lid), gid_(gid) {}
  ~IbQueuePair() override { api_.destroy_qp(qp_); }

  QpAddress address() const override { return QpAddress{qp_->qp_num, lid_, gid_}; }

  absl::Status Connect(const QpAddress& peer) override {
    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_INIT;
    attr.port_num = kPort;
    attr.pkey_index = 0;
    attr.qp_access_flags =
        IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
    if (int rc = api_.modify_qp(
            qp_, &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)) {
      return VerbsError("modify QP to INIT", rc);
    }
    attr = {};
    attr.qp_state = IBV_QPS_RTR;
    attr.path_mtu = IBV_MTU_4096;
    attr.dest_qp_num = peer.qp_num;
    attr.rq_psn = 0;
    attr.max_dest_rd_atomic = 16;
    attr.min_rnr_timer = 12;
    attr.ah_attr.dlid = peer.lid;
    attr.ah_attr.port_num = kPort;
    attr.ah_attr.is_global = 1;
    std::memcpy(attr.ah_attr.grh.dgid.raw, peer.gid.data(), 16);
    attr.ah_attr.grh.sgid_index = kGidIndex;
    attr.ah_attr.grh.hop_limit = 64;
    if (int rc =
            api_.modify_qp(qp_, &attr,
                           IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                               IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER)) {
      return VerbsError("modify QP to RTR", rc);
    }
    attr = {};
    attr.qp_state = IBV_QPS_RTS;
    attr.timeout = 14;
    attr.retry_cnt = 7;
    attr.rnr_retry = 7;
    attr.sq_psn = 0;
    attr.max_rd_atomic = 16;
    if (int rc = api_.modify_qp(qp_, &attr,
                                IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                                    IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC)) {
      return VerbsError("modify QP to RTS", rc);
    }
    return absl::OkStatus();
  }

  absl::Status Post(absl::Span<const WorkRequest> requests) override {
    for (const WorkRequest& r : requests) {
      ibv_sge sge{r.local_addr, r.length, r.lkey};
      ibv_send_wr wr{};
      wr.wr_id = r.id;
      wr.sg_list = &sge;
      wr.num_sge = 1;
      wr.opcode = r.op == WorkOp::kRead ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE;
      wr.send_flags = r.signaled ? IBV_SEND_SIGNALED : 0;
      wr.wr.rdma.remote_addr = r.remote_addr;
      wr.wr.rdma.rkey = r.rkey;
      ibv_send_wr* bad = nullptr;
      if (int rc = ibv_post_send(qp_, &wr, &bad)) return VerbsError("post send", rc);
    }
    return absl::OkStatus();
  }

 private:
  const IbverbsApi& api_;
  ibv_qp* qp_;
  uint16_t lid_;
  Gid gid_;
};

class IbDevice : public Device {
 public:
  IbDevice(const IbverbsApi& api, std::string name, ibv_context* context, ibv_pd* pd, ibv_cq* cq,
           uint16_t lid, Gid gid)
      : api_(api),
        name_(std::move(name)),
        context_(context),
        pd_(pd),
        cq_(cq),
        lid_(lid),
        gid_(gid) {}
  ~IbDevice() override {
    for (auto& [addr, mr] : mrs_) api_.dereg_mr(mr);
    api_.destroy_cq(cq_);
    api_.dealloc_pd(pd_);
    api_.close_device(context_);
  }
  const std::string& name() const override { return name_; }
  uint16_t lid() const override { return lid_; }
  Gid gid() const override { return gid_; }

  absl::StatusOr<MemoryKeys> RegisterMemory(void* addr, uint64_t length) override {
    ibv_mr* mr =
        api_.reg_mr(pd_, addr, length,
                    IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE);
    if (mr == nullptr) return VerbsError("register memory", errno);
    absl::MutexLock lock(&mu_);
    mrs_[addr] = mr;
    return MemoryKeys{mr->lkey, mr->rkey};
  }

  absl::Status DeregisterMemory(void* addr) override {
    absl::MutexLock lock(&mu_);
    auto it = mrs_.find(addr);
    if (it == mrs_.end()) return MakeError(ErrorCode::OBJECT_NOT_FOUND, "memory not registered");
    api_.dereg_mr(it->second);
    mrs_.erase(it);
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<QueuePair>> CreateQueuePair() override {
    ibv_qp_init_attr init{};
    init.send_cq = cq_;
    init.recv_cq = cq_;
    init.qp_type = IBV_QPT_RC;
    init.cap.max_send_wr = kQueueDepth;
    init.cap.max_recv_wr = 1;
    init.cap.max_send_sge = 1;
    init.cap.max_recv_sge = 1;
    ibv_qp* qp = api_.create_qp(pd_, &init);
    if (qp == nullptr) return VerbsError("create QP", errno);
    return std::unique_ptr<QueuePair>(new IbQueuePair(api_, qp, lid_, gid_));
  }

  int PollCompletions(Completion* out, int max) override {
    ibv_wc wc[32];
    const int n = ibv_poll_cq(cq_, std::min(max, 32), wc);
    for (int i = 0; i < n; ++i) {
      out[i].id = wc[i].wr_id;
      out[i].ok = wc[i].status == IBV_WC_SUCCESS;
      out[i].error = out[i].ok ? "" : api_.wc_status_str(wc[i].status);
    }
    return n < 0 ? 0 : n;
  }

 private:
  const IbverbsApi& api_;
  const std::string name_;
  ibv_context* context_;
  ibv_pd* pd_;
  ibv_cq* cq_;
  uint16_t lid_;
  Gid gid_;
  absl::Mutex mu_;
  std::map<void*, ibv_mr*> mrs_ ABSL_GUARDED_BY(mu_);
};

class IbVerbs : public Verbs {
 public:
  absl::Status Available() override { return Ibverbs().status(); }

  std::vector<std::string> ListDevices() override {
    std::vector<std::string> names;
    absl::StatusOr<const IbverbsApi*> api = Ibverbs();
    if (!api.ok()) return names;  // no libibverbs: no devices
    const IbverbsApi& ib = **api;
    int count = 0;
    ibv_device** list = ib.get_device_list(&count);
    if (list == nullptr) return names;
    for (int i = 0; i < count; ++i) {
      ibv_context* context = ib.open_device(list[i]);
      if (context == nullptr) continue;
      ibv_port_attr port{};
      if (ib.query_port(context, kPort, &port) == 0 && port.state == IBV_PORT_ACTIVE) {
        names.emplace_back(ib.get_device_name(list[i]));
      }
      ib.close_device(context);
    }
    ib.free_device_list(list);
    return names;
  }

  absl::StatusOr<std::unique_ptr<Device>> Open(const std::string& name) override {
    absl::StatusOr<const IbverbsApi*> api = Ibverbs();
    if (!api.ok()) return api.status();
    const IbverbsApi& ib = **api;
    int count = 0;
    ibv_device** list = ib.get_device_list(&count);
    ibv_context* context = nullptr;
    for (int i = 0; list != nullptr && i < count && context == nullptr; ++i) {
      if (name == ib.get_device_name(list[i])) context = ib.open_device(list[i]);
    }
    if (list != nullptr) ib.free_device_list(list);
    if (context == nullptr) {
      return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("RDMA device {} not found", name));
    }
    ibv_port_attr port{};
    ibv_gid gid{};
    ibv_pd* pd = nullptr;
    ibv_cq* cq = nullptr;
    if (ib.query_port(context, kPort, &port) != 0 ||
        ib.query_gid(context, kPort, kGidIndex, &gid) != 0 ||
        (pd = ib.alloc_pd(context)) == nullptr ||
        (cq = ib.create_cq(context, 4 * kQueueDepth, nullptr, nullptr, 0)) == nullptr) {
      if (pd != nullptr) ib.dealloc_pd(pd);
      ib.close_device(context);
      return VerbsError("open RDMA device", errno);
    }
    Gid our{};
    std::memcpy(our.data(), gid.raw, 16);
    return std::unique_ptr<Device>(new IbDevice(ib, name, context, pd, cq, port.lid, our));
  }
};

}  // namespace

std::unique_ptr<Verbs> MakeIbVerbs() { return std::make_unique<IbVerbs>(); }

}  // namespace mooncake::engine::rdma
