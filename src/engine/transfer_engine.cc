#include "engine/transfer_engine.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "absl/algorithm/container.h"
#include "common/error_code.h"
#include "common/logging.h"
#include "common/strings.h"
#include "engine/metadata_client.h"
#include "engine/tcp/socket_io.h"
#include "engine/tcp/tcp_data_server.h"
#include "engine/tcp/tcp_protocol.h"

namespace mooncake::engine {
namespace {

constexpr char kP2PHandshake[] = "P2PHANDSHAKE";

// Who shares memory with whom: the kernel's id for this boot and the network namespace. Two
// processes with the same one are on one host (whatever their hostnames say) and can reach each
// other's abstract sockets; processes in separate namespaces count as separate hosts.
std::string HostId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string boot;
  std::getline(in, boot);
  char netns[64] = {};
  const ssize_t n = readlink("/proc/self/ns/net", netns, sizeof(netns) - 1);
  return fmt::format("{}/{}", boot, n > 0 ? std::string(netns, static_cast<size_t>(n)) : "");
}

uint64_t NewIncarnation() {
  const AuthNonce random = RandomNonce();
  uint64_t value = 0;
  std::memcpy(&value, random.data(), sizeof(value));
  return value == 0 ? 1 : value;
}

// The descriptor `source` holds for segment `name`, refused (INVALID_PARAMS naming the source)
// when it is malformed or describes another segment.
absl::StatusOr<SegmentDescriptor> CheckedDescriptor(const std::string& name, std::string_view json,
                                                    std::string_view source) {
  absl::StatusOr<SegmentDescriptor> descriptor = DecodeDescriptor(json);
  if (!descriptor.ok()) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("the descriptor of segment {} in {} is malformed: {}", name,
                                 source, descriptor.status().message()));
  }
  if (descriptor->name != name) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("{} holds the descriptor of segment {} under segment {}", source,
                                 descriptor->name, name));
  }
  return descriptor;
}

}  // namespace

TransferEngine::TransferEngine(EngineConfig config)
    : config_(std::move(config)), incarnation_(NewIncarnation()) {}

absl::StatusOr<std::unique_ptr<TransferEngine>> TransferEngine::Create(EngineConfig config) {
  if (config.protocol != "tcp" && config.protocol != "rdma") {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("unknown protocol '{}' (expected tcp or rdma)", config.protocol));
  }
  std::unique_ptr<TransferEngine> engine(new TransferEngine(std::move(config)));
  if (absl::Status started = engine->Start(); !started.ok()) return started;
  return engine;
}

absl::Status TransferEngine::Start() {
  host_id_ = HostId();
  int port = 0;
  host_ = config_.local_hostname;
  if (const size_t colon = host_.rfind(':'); colon != std::string::npos && host_.back() != ']') {
    if (absl::Status s = tcp::SplitHostPort(config_.local_hostname, &host_, &port); !s.ok()) {
      return s;
    }
  }
  if (host_.empty()) return MakeError(ErrorCode::INVALID_PARAMS, "local_hostname is empty");
  if (config_.metadata_server != kP2PHandshake) {
    absl::StatusOr<std::unique_ptr<MetadataClient>> metadata = MetadataClient::Create(
        config_.metadata_server, config_.auth, 3 * config_.republish_interval);
    if (!metadata.ok()) return metadata.status();
    metadata_ = *std::move(metadata);
  }
  shm_ = std::make_unique<shm::ShmTransport>(
      config_.auth, [this](const std::string& segment) { RefreshSegment(segment); });
  if (config_.enable_shm) {
    shm_server_ = std::make_unique<shm::ShmServer>(&shared_, incarnation_, config_.auth);
    if (absl::Status s = shm_server_->Start(); !s.ok()) {
      spdlog::warn("shared memory disabled: {}", s.message());
      shm_server_.reset();
    }
  }
  if (config_.protocol == "rdma") {
    verbs_ = config_.verbs ? config_.verbs : std::shared_ptr<rdma::Verbs>(rdma::MakeIbVerbs());
    auto handshake = [this](const std::string& endpoint, const std::string& request) {
      return tcp::CallPeer(endpoint, static_cast<uint8_t>(tcp::Opcode::kHandshake), request,
                           TcpOptions());
    };
    absl::StatusOr<std::unique_ptr<rdma::RdmaTransport>> rdma =
        rdma::RdmaTransport::Create(verbs_.get(), config_.device_name, handshake, config_.rdma,
                                    [this](const std::string& name) { RefreshSegment(name); });
    if (!rdma.ok()) return rdma.status();
    rdma_ = *std::move(rdma);
  }
  tcp::TcpDataServerOptions server_options = config_.data_server;
  server_options.incarnation = incarnation_;
  server_options.auth = config_.auth;
  server_ = std::make_unique<tcp::TcpDataServer>(
      &registry_, [this] { return Describe(); }, std::move(server_options),
      [this](std::string_view request) -> absl::StatusOr<std::string> {
        if (!rdma_) return MakeError(ErrorCode::NOT_SUPPORTED, "this endpoint offers no RDMA");
        return rdma_->AcceptHandshake(request);
      });
  if (absl::Status s =
          server_->Start(config_.listen_address, port, config_.first_port, config_.last_port);
      !s.ok()) {
    return s;
  }
  name_ = fmt::format("{}:{}", host_, server_->port());
  // Segments are named by their data endpoint, so a failing endpoint names its segment.
  tcp_ = std::make_unique<tcp::TcpTransport>(
      TcpOptions(), [this](const std::string& endpoint) { RefreshSegment(endpoint); });
  if (absl::Status published = Publish(); !published.ok()) return published;
  if (metadata_) publisher_ = std::thread([this] { KeepPublished(); });
  return absl::OkStatus();
}

void TransferEngine::KeepPublished() {
  const std::string key = SegmentKey(name_);
  while (!stop_publishing_.WaitForNotificationWithTimeout(config_.republish_interval)) {
    if (!metadata_->KeepAlive().ok()) continue;  // unreachable: try again later
    absl::StatusOr<std::optional<std::string>> held = metadata_->Get(key);
    if (!held.ok()) continue;
    if (held->has_value() && **held == Describe()) continue;
    if (absl::Status s = Publish(); s.ok()) {
      spdlog::info("segment {}: {} {} its descriptor; published it again", name_,
                   metadata_->Describe(), held->has_value() ? "held another" : "had lost");
    }
  }
}

TransferEngine::~TransferEngine() {
  stop_publishing_.Notify();
  if (publisher_.joinable()) publisher_.join();
  if (metadata_ && !name_.empty()) (void)metadata_->Delete(SegmentKey(name_));
  tcp_.reset();
  if (server_) server_->Stop();
  rdma_.reset();
  if (shm_server_) shm_server_->Stop();
  shm_.reset();
}

tcp::TcpTransportOptions TransferEngine::TcpOptions() const {
  tcp::TcpTransportOptions options = config_.tcp;
  options.auth = config_.auth;
  return options;
}

std::string TransferEngine::Describe() const {
  std::vector<BufferInfo> buffers = registry_.List();
  for (BufferInfo& buffer : buffers) {
    if (std::optional<shm::SharedRegion> region = shared_.Find(buffer.addr, buffer.length)) {
      buffer.shm_id = region->id;
      buffer.shm_offset = buffer.addr - region->addr;
    }
    if (rdma_) buffer.rkeys = rdma_->RemoteKeys(buffer.addr);
  }
  return EncodeDescriptor(SegmentDescriptor{
      name_, incarnation_, host_id_, shm_server_ ? shm_server_->name() : std::string(), host_,
      server_ ? server_->port() : 0, buffers, rdma_ ? rdma_->nics() : std::vector<RdmaNic>()});
}

absl::StatusOr<void*> TransferEngine::AllocateSharedMemory(uint64_t size) {
  return shared_.Allocate(size);
}

absl::Status TransferEngine::FreeSharedMemory(void* addr) {
  if (registry_.Contains(reinterpret_cast<uint64_t>(addr), 1)) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("unregister the memory at {} before freeing it", addr));
  }
  return shared_.Free(addr);
}

absl::Status TransferEngine::Publish() {
  if (!metadata_) return absl::OkStatus();
  absl::MutexLock lock(&publish_mu_);
  if (absl::Status put = metadata_->Put(SegmentKey(name_), Describe()); !put.ok()) {
    return MakeError(ErrorCodeOf(put),
                     fmt::format("publishing segment {}: {}", name_, put.message()));
  }
  return absl::OkStatus();
}

absl::Status TransferEngine::RegisterMemory(void* addr, size_t length, std::string location) {
  if (absl::Status s =
          registry_.Register(reinterpret_cast<uint64_t>(addr), length, std::move(location));
      !s.ok()) {
    return s;
  }
  if (rdma_) {
    if (absl::Status s = rdma_->Register(addr, length); !s.ok()) {
      registry_.Unregister(reinterpret_cast<uint64_t>(addr)).IgnoreError();
      return s;
    }
  }
  return Publish();
}

absl::Status TransferEngine::UnregisterMemory(void* addr) {
  if (absl::Status s = registry_.Unregister(reinterpret_cast<uint64_t>(addr)); !s.ok()) return s;
  if (rdma_) rdma_->Deregister(addr).IgnoreError();
  return Publish();
}

absl::StatusOr<SegmentDescriptor> TransferEngine::Fetch(const std::string& name) {
  if (name == name_) return DecodeDescriptor(Describe());
  if (metadata_) {
    absl::StatusOr<std::optional<std::string>> got = metadata_->Get(SegmentKey(name));
    if (!got.ok()) return got.status();
    if (!got->has_value()) {
      return MakeError(ErrorCode::SEGMENT_NOT_FOUND,
                       fmt::format("segment {} is not in {}", name, metadata_->Describe()));
    }
    return CheckedDescriptor(name, **got, metadata_->Describe());
  }
  // P2P handshake: ask the segment's own data endpoint.
  absl::StatusOr<std::string> body =
      tcp::CallPeer(name, static_cast<uint8_t>(tcp::Opcode::kDescribe), {}, TcpOptions());
  if (!body.ok()) return body.status();
  return CheckedDescriptor(name, *body, "its data endpoint");
}

absl::StatusOr<SegmentId> TransferEngine::OpenSegment(const std::string& name) {
  {
    absl::MutexLock lock(&mu_);
    auto it = ids_.find(name);
    if (it != ids_.end() && segments_[it->second - 1] && !stale_.contains(it->second)) {
      return it->second;
    }
  }
  absl::StatusOr<SegmentDescriptor> descriptor = Fetch(name);
  if (!descriptor.ok()) return descriptor.status();
  // A peer on this host whose memory is shared: map it now, once.
  shm_->Detach(name);
  if (config_.enable_shm && name != name_ && descriptor->host_id == host_id_) {
    shm_->Attach(*descriptor);
  }
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = ids_.try_emplace(name, segments_.size() + 1);
  auto shared = std::make_shared<const SegmentDescriptor>(*std::move(descriptor));
  if (inserted) {
    segments_.push_back(std::move(shared));
  } else {
    segments_[it->second - 1] = std::move(shared);
  }
  stale_.erase(it->second);
  return it->second;
}

absl::StatusOr<SegmentDescriptor> TransferEngine::DescribeSegment(SegmentId id) {
  absl::MutexLock lock(&mu_);
  if (id == 0 || id > segments_.size()) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("segment id {} was not opened", id));
  }
  return *segments_[id - 1];
}

std::string TransferEngine::TransportFor(SegmentId id) {
  absl::StatusOr<SegmentDescriptor> descriptor = DescribeSegment(id);
  if (!descriptor.ok()) return "";
  if (descriptor->name == name_) return "memcpy";
  // Any mapped buffer of the segment means shared memory is in use for it.
  for (const BufferInfo& buffer : descriptor->buffers) {
    if (shm_->Covers(descriptor->name, descriptor->incarnation, buffer.addr, buffer.length)) {
      return "shm";
    }
  }
  if (rdma_ && !descriptor->rdma_nics.empty()) return "rdma";
  return "tcp";
}

std::shared_ptr<const SegmentDescriptor> TransferEngine::Reload(SegmentId id,
                                                                const std::string& name) {
  absl::StatusOr<SegmentDescriptor> fresh = Fetch(name);
  shm_->Detach(name);
  if (fresh.ok() && config_.enable_shm && name != name_ && fresh->host_id == host_id_) {
    shm_->Attach(*fresh);
  }
  absl::MutexLock lock(&mu_);
  if (fresh.ok()) {
    segments_[id - 1] = std::make_shared<const SegmentDescriptor>(*std::move(fresh));
    stale_.erase(id);
  }
  return segments_[id - 1];
}

void TransferEngine::RefreshSegment(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = ids_.find(name);
  if (it != ids_.end()) stale_.insert(it->second);
}

std::shared_ptr<TransferBatch> TransferEngine::Submit(
    const std::vector<TransferRequest>& requests) {
  auto batch = std::make_shared<TransferBatch>(requests.size());
  // Copies through shared memory complete only once their peer is known to have outlived them.
  struct ShmCopy {
    size_t index;
    std::shared_ptr<const SegmentDescriptor> target;
    absl::Status status;
  };
  std::vector<ShmCopy> shm_copies;
  std::vector<SegmentId> reloaded;  // fetched again in this call: once is enough
  SegmentId last_segment = 0;
  uint64_t last_incarnation = 0;
  std::shared_ptr<const SegmentDescriptor> last_target;
  bool last_stale = false;
  for (size_t i = 0; i < requests.size(); ++i) {
    const TransferRequest& r = requests[i];
    const uint64_t local = reinterpret_cast<uint64_t>(r.local);
    if (r.length == 0 || (!r.local_unregistered && !registry_.Contains(local, r.length))) {
      batch->Fail(i, MakeError(ErrorCode::INVALID_PARAMS,
                               fmt::format("local range [{:#x}, +{}) is not registered memory",
                                           local, r.length)));
      continue;
    }
    // A batch's requests mostly go to one segment or a few: the previous request's look-up is
    // used again for the same segment.
    std::shared_ptr<const SegmentDescriptor> target;
    bool stale = false;
    if (r.segment != 0 && r.segment == last_segment && r.incarnation == last_incarnation) {
      target = last_target;
      stale = last_stale;
    } else {
      absl::MutexLock lock(&mu_);
      if (r.segment != 0 && r.segment <= segments_.size()) {
        target = segments_[r.segment - 1];
        stale = stale_.contains(r.segment);
      }
    }
    // A request made for another incarnation than the one we know: our view may be old.
    if (target && (stale || (r.incarnation != 0 && r.incarnation != target->incarnation)) &&
        absl::c_find(reloaded, r.segment) == reloaded.end()) {
      target = Reload(r.segment, target->name);
      reloaded.push_back(r.segment);
    }
    if (!target) {
      batch->Fail(i, MakeError(ErrorCode::INVALID_PARAMS,
                               fmt::format("segment id {} is not open", r.segment)));
      continue;
    }
    if (r.segment != last_segment || r.incarnation != last_incarnation) {
      last_segment = r.segment;
      last_incarnation = r.incarnation;
      last_target = target;
      last_stale = stale;
    }
    const std::string& name = target->name;
    if (r.incarnation != 0 && r.incarnation != target->incarnation) {
      batch->Fail(i, MakeError(ErrorCode::TRANSFER_FAIL,
                               fmt::format("segment {} is now incarnation {:016x}; the request was "
                                           "for {:016x}, a process that has ended",
                                           name, target->incarnation, r.incarnation)));
      continue;
    }
    if (name == name_) {
      // Our own segment: both ranges are checked, then one memcpy.
      if (!registry_.Contains(r.remote_addr, r.length)) {
        batch->Fail(i, MakeError(ErrorCode::TRANSFER_FAIL,
                                 fmt::format("[{:#x}, +{}) is not inside a registered buffer",
                                             r.remote_addr, r.length)));
        continue;
      }
      void* remote = reinterpret_cast<void*>(r.remote_addr);
      if (r.op == TransferOp::kRead) {
        std::memmove(r.local, remote, r.length);
      } else {
        std::memmove(remote, r.local, r.length);
      }
      batch->AddSlices(i, 1);
      batch->CompleteSlice(i, absl::OkStatus());
      continue;
    }
    if (shm_->TryCopy(name, target->incarnation, r.op, r.local, r.remote_addr, r.length)) {
      batch->AddSlices(i, 1);
      shm_copies.push_back(ShmCopy{i, target, absl::OkStatus()});
      continue;
    }
    if (rdma_ && rdma_->CanReach(*target, r.remote_addr, r.length)) {
      if (r.local_unregistered) {
        batch->Fail(i, MakeError(ErrorCode::INVALID_PARAMS,
                                 fmt::format("local range [{:#x}, +{}) is not registered memory, "
                                             "which RDMA to {} needs",
                                             local, r.length, name)));
        continue;
      }
      rdma_->Submit(target, r.op, local, r.remote_addr, r.length, batch, i);
      continue;
    }
    // A batch of one request runs in this thread: no handoff to a worker and back.
    tcp_->Submit(fmt::format("{}:{}", target->tcp_host, target->tcp_port), target->incarnation,
                 r.op, local, r.remote_addr, r.length, batch, i,
                 /*may_run_inline=*/requests.size() == 1);
  }
  // One liveness check per peer: a peer that ended meanwhile fails what was copied to or from it
  // (its memory is no segment's any more), and its mapping is dropped.
  std::vector<std::pair<const SegmentDescriptor*, bool>> alive;
  for (ShmCopy& copy : shm_copies) {
    auto known = std::find_if(alive.begin(), alive.end(),
                              [&](const auto& a) { return a.first == copy.target.get(); });
    if (known == alive.end()) {
      alive.emplace_back(copy.target.get(),
                         shm_->Alive(copy.target->name, copy.target->incarnation));
      known = std::prev(alive.end());
    }
    if (copy.status.ok() && !known->second) {
      copy.status = MakeError(ErrorCode::TRANSFER_FAIL,
                              fmt::format("{} ended during the transfer", copy.target->name));
    }
    batch->CompleteSlice(copy.index, copy.status);
  }
  for (const auto& [target, ok] : alive) {
    if (!ok) RefreshSegment(target->name);
  }
  return batch;
}

}  // namespace mooncake::engine
