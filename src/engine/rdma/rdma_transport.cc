#include "engine/rdma/rdma_transport.h"

#include <algorithm>

#include "absl/strings/str_split.h"
#include "common/error_code.h"
#include "common/logging.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"

namespace mooncake::engine::rdma {
namespace {

std::string GidHex(const Gid& gid) {
  std::string out;
  for (uint8_t b : gid) out += fmt::format("{:02x}", b);
  return out;
}

bool ParseGid(const std::string& hex, Gid* gid) {
  if (hex.size() != 32) return false;
  for (size_t i = 0; i < 16; ++i) {
    unsigned value = 0;
    if (std::sscanf(hex.c_str() + 2 * i, "%2x", &value) != 1) return false;
    (*gid)[i] = static_cast<uint8_t>(value);
  }
  return true;
}

nlohmann::json AddressJson(const QpAddress& a) {
  return {{"qp_num", a.qp_num}, {"lid", a.lid}, {"gid", GidHex(a.gid)}};
}

absl::StatusOr<QpAddress> ParseAddress(const nlohmann::json& j) {
  QpAddress a;
  if (!j.is_object() || !j.contains("qp_num") || !j["qp_num"].is_number_unsigned() ||
      j["qp_num"].get<uint64_t>() > UINT32_MAX || !j.contains("lid") ||
      !j["lid"].is_number_unsigned() || j["lid"].get<uint64_t>() > 65535 || !j.contains("gid") ||
      !j["gid"].is_string() || !ParseGid(j["gid"].get<std::string>(), &a.gid)) {
    return MakeError(ErrorCode::INVALID_PARAMS, "handshake: malformed queue pair address");
  }
  a.qp_num = j["qp_num"].get<uint32_t>();
  a.lid = j["lid"].get<uint16_t>();
  return a;
}

std::string Endpoint(const SegmentDescriptor& d) {
  return fmt::format("{}:{}", d.tcp_host, d.tcp_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RdmaTransport>> RdmaTransport::Create(
    Verbs* verbs, const std::string& device_names, HandshakeCall handshake, RdmaOptions options,
    std::function<void(const std::string&)> on_failure) {
  if (absl::Status available = verbs->Available(); !available.ok()) {
    return MakeError(ErrorCodeOf(available), fmt::format("protocol rdma: {}", available.message()));
  }
  const std::vector<std::string> found = verbs->ListDevices();
  std::string found_list;
  for (const std::string& d : found) found_list += (found_list.empty() ? "" : ", ") + d;
  if (found_list.empty()) found_list = "none";
  std::vector<std::string> wanted;
  for (absl::string_view name : absl::StrSplit(AsAbsl(device_names), ',', absl::SkipWhitespace())) {
    wanted.emplace_back(AsStd(absl::StripAsciiWhitespace(name)));
  }
  if (wanted.empty()) wanted = found;
  if (wanted.empty()) {
    return MakeError(
        ErrorCode::INVALID_PARAMS,
        fmt::format("protocol rdma: no active RDMA device on this host (found: {})", found_list));
  }
  std::vector<std::unique_ptr<Device>> devices;
  for (const std::string& name : wanted) {
    if (std::find(found.begin(), found.end(), name) == found.end()) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("RDMA device '{}' is not an active device here (found: {})",
                                   name, found_list));
    }
    absl::StatusOr<std::unique_ptr<Device>> device = verbs->Open(name);
    if (!device.ok()) return device.status();
    devices.push_back(*std::move(device));
  }
  options.slice_size = std::clamp<uint64_t>(options.slice_size, 4096, uint64_t{1} << 30);
  options.signal_every = std::max<size_t>(options.signal_every, 1);
  return std::unique_ptr<RdmaTransport>(
      new RdmaTransport(std::move(devices), std::move(handshake), options, std::move(on_failure)));
}

RdmaTransport::RdmaTransport(std::vector<std::unique_ptr<Device>> devices, HandshakeCall handshake,
                             RdmaOptions options,
                             std::function<void(const std::string&)> on_failure)
    : devices_(std::move(devices)),
      handshake_(std::move(handshake)),
      options_(options),
      on_failure_(std::move(on_failure)) {
  poller_ = std::thread([this] { PollLoop(); });
}

RdmaTransport::~RdmaTransport() {
  stopping_.store(true);
  poller_.join();
  std::vector<Slice> unfinished;
  {
    absl::MutexLock lock(&connections_mu_);
    for (auto& [key, connection] : connections_) {
      absl::MutexLock conn_lock(&connection->mu);
      for (Outstanding& o : connection->inflight) unfinished.push_back(std::move(o.slice));
      connection->inflight.clear();
    }
  }
  for (Slice& slice : unfinished) {
    slice.batch->CompleteSlice(slice.index,
                               MakeError(ErrorCode::TRANSFER_FAIL, "transfer engine stopped"));
  }
}

std::vector<RdmaNic> RdmaTransport::nics() const {
  std::vector<RdmaNic> out;
  for (const auto& device : devices_) {
    out.push_back(RdmaNic{device->name(), device->lid(), GidHex(device->gid())});
  }
  return out;
}

absl::Status RdmaTransport::Register(void* addr, uint64_t length) {
  Region region{reinterpret_cast<uint64_t>(addr), length, {}};
  for (const auto& device : devices_) {
    absl::StatusOr<MemoryKeys> keys = device->RegisterMemory(addr, length);
    if (!keys.ok()) {
      for (size_t i = 0; i < region.keys.size(); ++i)
        devices_[i]->DeregisterMemory(addr).IgnoreError();
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("RDMA device {} cannot register memory: {}", device->name(),
                                   keys.status().message()));
    }
    region.keys.push_back(*keys);
  }
  absl::MutexLock lock(&regions_mu_);
  regions_[region.addr] = std::move(region);
  return absl::OkStatus();
}

absl::Status RdmaTransport::Deregister(void* addr) {
  for (const auto& device : devices_) device->DeregisterMemory(addr).IgnoreError();
  absl::MutexLock lock(&regions_mu_);
  regions_.erase(reinterpret_cast<uint64_t>(addr));
  return absl::OkStatus();
}

std::vector<uint32_t> RdmaTransport::RemoteKeys(uint64_t addr) const {
  absl::MutexLock lock(&regions_mu_);
  auto it = regions_.find(addr);
  std::vector<uint32_t> keys;
  if (it == regions_.end()) return keys;
  for (const MemoryKeys& k : it->second.keys) keys.push_back(k.rkey);
  return keys;
}

uint32_t RdmaTransport::LocalKey(size_t nic, uint64_t addr, uint64_t length) const {
  absl::MutexLock lock(&regions_mu_);
  auto next = regions_.upper_bound(addr);
  if (next == regions_.begin()) return 0;
  const Region& r = std::prev(next)->second;
  if (!RangeWithin(addr, length, r.addr, r.length)) return 0;
  return r.keys[nic].lkey;
}

const BufferInfo* RdmaTransport::RdmaBuffer(const SegmentDescriptor& target, uint64_t remote,
                                            uint64_t length) {
  if (target.rdma_nics.empty()) return nullptr;
  for (const BufferInfo& b : target.buffers) {
    if (!b.rkeys.empty() && RangeWithin(remote, length, b.addr, b.length)) return &b;
  }
  return nullptr;
}

bool RdmaTransport::CanReach(const SegmentDescriptor& target, uint64_t remote,
                             uint64_t length) const {
  return RdmaBuffer(target, remote, length) != nullptr;
}

absl::StatusOr<std::string> RdmaTransport::AcceptHandshake(std::string_view request) {
  nlohmann::json j = nlohmann::json::parse(request, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("nic") || !j["nic"].is_number_unsigned() ||
      j["nic"].get<uint64_t>() >= devices_.size()) {
    return MakeError(ErrorCode::INVALID_PARAMS, "handshake: 'nic' must name one of our NICs");
  }
  absl::StatusOr<QpAddress> peer = ParseAddress(j);
  if (!peer.ok()) return peer.status();
  absl::StatusOr<std::unique_ptr<QueuePair>> qp =
      devices_[j["nic"].get<size_t>()]->CreateQueuePair();
  if (!qp.ok()) return qp.status();
  if (absl::Status connected = (*qp)->Connect(*peer); !connected.ok()) return connected;
  const std::string answer = AddressJson((*qp)->address()).dump();
  absl::MutexLock lock(&connections_mu_);
  accepted_[fmt::format("{}/{}", GidHex(peer->gid), peer->qp_num)] = *std::move(qp);
  return answer;
}

absl::StatusOr<RdmaTransport::Connection*> RdmaTransport::Connect(const SegmentDescriptor& target,
                                                                  size_t nic) {
  Connection* connection;
  {
    absl::MutexLock lock(&connections_mu_);
    std::unique_ptr<Connection>& slot = connections_[{target.name, nic}];
    if (!slot) slot = std::make_unique<Connection>();
    connection = slot.get();
  }
  absl::MutexLock lock(&connection->mu);
  if (connection->qp && !connection->broken) return connection;
  if (connection->broken && !connection->inflight.empty()) {
    return MakeError(ErrorCode::TRANSFER_FAIL, "queue pair is draining after an error");
  }
  // A new queue pair, connected to the peer's through a handshake on its data endpoint.
  connection->qp.reset();
  absl::StatusOr<std::unique_ptr<QueuePair>> qp = devices_[nic]->CreateQueuePair();
  if (!qp.ok()) return qp.status();
  nlohmann::json request = AddressJson((*qp)->address());
  request["nic"] = nic % target.rdma_nics.size();
  absl::StatusOr<std::string> answer = handshake_(Endpoint(target), request.dump());
  if (!answer.ok()) return answer.status();
  absl::StatusOr<QpAddress> peer =
      ParseAddress(nlohmann::json::parse(*answer, nullptr, /*allow_exceptions=*/false));
  if (!peer.ok()) return peer.status();
  if (absl::Status connected = (*qp)->Connect(*peer); !connected.ok()) return connected;
  connection->qp = *std::move(qp);
  connection->broken = false;
  connection->since_signal = 0;
  return connection;
}

void RdmaTransport::Submit(const std::shared_ptr<const SegmentDescriptor>& target, TransferOp op,
                           uint64_t local, uint64_t remote, uint64_t length,
                           const std::shared_ptr<TransferBatch>& batch, size_t index) {
  const BufferInfo* buffer = RdmaBuffer(*target, remote, length);
  const std::vector<uint32_t> rkeys = buffer ? buffer->rkeys : std::vector<uint32_t>();
  // Stripe the slices over the NICs, starting where the last request left off.
  std::vector<std::vector<Slice>> per_nic(devices_.size());
  size_t count = 0;
  const size_t first = next_nic_.fetch_add(1);
  for (uint64_t offset = 0; offset < length; offset += options_.slice_size, ++count) {
    const uint32_t n = static_cast<uint32_t>(std::min(options_.slice_size, length - offset));
    const size_t nic = (first + count) % devices_.size();
    per_nic[nic].push_back(
        Slice{target, op, local + offset, remote + offset, n, rkeys, batch, index, 0, nic});
  }
  batch->AddSlices(index, count);
  for (size_t nic = 0; nic < per_nic.size(); ++nic) {
    if (!per_nic[nic].empty()) Post(nic, std::move(per_nic[nic]));
  }
}

void RdmaTransport::Post(size_t nic, std::vector<Slice> slices) {
  absl::StatusOr<Connection*> connection = Connect(*slices.front().target, nic);
  if (!connection.ok()) {
    for (Slice& slice : slices) Retry(std::move(slice), std::string(connection.status().message()));
    return;
  }
  Connection* c = *connection;
  std::vector<WorkRequest> requests;
  std::vector<Slice> refused;
  {
    absl::MutexLock lock(&c->mu);
    const size_t peer_nic = nic % slices.front().target->rdma_nics.size();
    for (size_t i = 0; i < slices.size(); ++i) {
      Slice& s = slices[i];
      const bool signaled = ++c->since_signal >= options_.signal_every || i + 1 == slices.size();
      if (signaled) c->since_signal = 0;
      const uint64_t id = next_wr_.fetch_add(1);
      requests.push_back(WorkRequest{id, s.op == TransferOp::kRead ? WorkOp::kRead : WorkOp::kWrite,
                                     s.local, LocalKey(nic, s.local, s.length), s.remote,
                                     s.rkeys.empty() ? 0 : s.rkeys[peer_nic], s.length, signaled});
      s.nic = nic;
      {
        absl::MutexLock wr_lock(&wr_mu_);
        by_wr_[id] = c;
      }
      c->inflight.push_back(Outstanding{id, std::move(s)});
    }
    if (absl::Status posted = c->qp->Post(requests); !posted.ok()) {
      // Not accepted by the NIC: take the requests back and try them elsewhere.
      c->broken = true;
      absl::MutexLock wr_lock(&wr_mu_);
      for (const WorkRequest& r : requests) {
        by_wr_.erase(r.id);
        auto it = std::find_if(c->inflight.begin(), c->inflight.end(),
                               [&](const Outstanding& o) { return o.wr_id == r.id; });
        if (it != c->inflight.end()) {
          refused.push_back(std::move(it->slice));
          c->inflight.erase(it);
        }
      }
    }
  }
  for (Slice& slice : refused) Retry(std::move(slice), "post failed");
}

void RdmaTransport::Retry(Slice slice, const std::string& error) {
  if (++slice.attempts >= options_.max_attempts) {
    if (on_failure_) on_failure_(slice.target->name);
    slice.batch->CompleteSlice(
        slice.index, MakeError(ErrorCode::TRANSFER_FAIL,
                               fmt::format("RDMA {} to {}: {}", devices_[slice.nic]->name(),
                                           slice.target->name, error)));
    return;
  }
  // Another NIC if there is one; otherwise a new queue pair on the same one.
  const size_t nic = (slice.nic + 1) % devices_.size();
  std::vector<Slice> one;
  one.push_back(std::move(slice));
  Post(nic, std::move(one));
}

void RdmaTransport::OnCompletion(const Completion& completion) {
  Connection* c = nullptr;
  {
    absl::MutexLock lock(&wr_mu_);
    auto it = by_wr_.find(completion.id);
    if (it == by_wr_.end()) return;
    c = it->second;
  }
  std::vector<Slice> done;
  std::optional<Slice> failed;
  {
    absl::MutexLock lock(&c->mu);
    absl::MutexLock wr_lock(&wr_mu_);
    // In-order completion: everything posted before this request on this queue pair is done.
    while (!c->inflight.empty()) {
      Outstanding o = std::move(c->inflight.front());
      c->inflight.pop_front();
      by_wr_.erase(o.wr_id);
      if (o.wr_id != completion.id) {
        done.push_back(std::move(o.slice));
        continue;
      }
      if (completion.ok) {
        done.push_back(std::move(o.slice));
      } else {
        c->broken = true;
        failed = std::move(o.slice);
      }
      break;
    }
  }
  for (Slice& slice : done) slice.batch->CompleteSlice(slice.index, absl::OkStatus());
  if (failed) Retry(*std::move(failed), completion.error);
}

void RdmaTransport::PollLoop() {
  Completion completions[32];
  while (!stopping_.load(std::memory_order_relaxed)) {
    int total = 0;
    for (const auto& device : devices_) {
      const int n = device->PollCompletions(completions, 32);
      for (int i = 0; i < n; ++i) OnCompletion(completions[i]);
      total += n;
    }
    if (total == 0) {
      bool idle;
      {
        absl::MutexLock lock(&wr_mu_);
        idle = by_wr_.empty();
      }
      // Spin while work is in flight; rest when there is none.
      if (idle) absl::SleepFor(absl::Microseconds(200));
    }
  }
}

}  // namespace mooncake::engine::rdma
