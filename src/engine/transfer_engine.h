// The transfer engine: registered memory, segments, and batches of one-sided transfers.
//
// A process's segment is named "host:port" of its data endpoint. Peers find a segment's
// descriptor (how to reach it, which buffers it has) in the metadata service or etcd, or, with
// metadata_server "P2PHANDSHAKE", by asking the segment's own data endpoint. A transfer to this
// process's own segment is a memcpy; to a process on the same host, into memory it allocated with
// AllocateSharedMemory, a memcpy through shared memory; otherwise it goes over TCP.
//
// Safety: a request's local range must lie inside memory registered here (or be declared the
// caller's own, local_unregistered, where no NIC needs it registered), and the target checks the
// remote range against its own registered memory before touching it; nothing of a segment outside
// its registered buffers is ever read or written. Unregister memory only when no transfer uses it.
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/auth.h"
#include "engine/buffer_registry.h"
#include "engine/metadata_client.h"
#include "engine/rdma/rdma_transport.h"
#include "engine/rdma/verbs.h"
#include "engine/segment_descriptor.h"
#include "engine/shm/shared_memory.h"
#include "engine/shm/shm_channel.h"
#include "engine/shm/shm_transport.h"
#include "engine/tcp/tcp_data_server.h"
#include "engine/tcp/tcp_transport.h"
#include "engine/transfer.h"

namespace mooncake::engine {

struct EngineConfig {
  // "host" (the data endpoint takes a free port in [first_port, last_port]) or "host:port".
  std::string local_hostname = "localhost";
  // "P2PHANDSHAKE", "http://host:port/metadata" or "etcd://host:port[,host:port...]".
  std::string metadata_server = "P2PHANDSHAKE";
  std::string protocol = "tcp";  // "tcp" or "rdma"
  std::string device_name;       // rdma only
  std::string listen_address = "0.0.0.0";
  // Use shared memory for peers on the same host (same boot id and network namespace).
  bool enable_shm = true;
  int first_port = 12300;
  int last_port = 14300;
  // How often the engine checks that the metadata service still holds its descriptor, and
  // publishes it again when not (the service restarted, or someone overwrote it). In etcd the
  // descriptor lives under a lease of three such intervals, renewed as often: it goes away by
  // itself when the engine's process died.
  absl::Duration republish_interval = absl::Seconds(5);
  tcp::TcpTransportOptions tcp;
  // Bounds of the data server (connections, idle time, workers); its incarnation and token are
  // the engine's.
  tcp::TcpDataServerOptions data_server;
  // The cluster's auth token: peers must prove it to reach our data server and shared memory, and
  // we prove it to theirs. Off: anyone who can reach the data port may use it.
  AuthToken auth;
  rdma::RdmaOptions rdma;
  // The verbs implementation for protocol rdma; null means libibverbs. Tests put a software
  // stand-in here.
  std::shared_ptr<rdma::Verbs> verbs;
};

class TransferEngine {
 public:
  // Starts the data endpoint and publishes the (empty) segment. Errors: INVALID_PARAMS for a bad
  // config (unknown protocol, malformed address), NOT_SUPPORTED / INVALID_PARAMS for rdma on a host
  // without a device (the message lists what was found), TRANSFER_FAIL when no port is free,
  // RPC_FAIL when the metadata service cannot be reached.
  static absl::StatusOr<std::unique_ptr<TransferEngine>> Create(EngineConfig config);
  ~TransferEngine();  // removes the segment from the metadata service, stops serving

  const std::string& segment_name() const { return name_; }
  // A random nonzero number chosen at start, published in the descriptor: peers holding a view of
  // an earlier process under the same name never use it for this one.
  uint64_t incarnation() const { return incarnation_; }

  // Memory that peers on this host can map (shared memory, see shm/shared_memory.h). Register it
  // (whole or in parts) to make it part of the segment; peers on the same host then copy directly.
  // Allocation does not touch the pages.
  absl::StatusOr<void*> AllocateSharedMemory(uint64_t size);
  absl::Status FreeSharedMemory(void* addr);

  // Makes [addr, addr + length) reachable by peers. INVALID_PARAMS for an empty, wrapping or
  // overlapping range.
  absl::Status RegisterMemory(void* addr, size_t length, std::string location = "cpu:0");
  absl::Status UnregisterMemory(void* addr);
  bool IsRegistered(const void* addr, size_t length) const {
    return registry_.Contains(reinterpret_cast<uint64_t>(addr), length);
  }
  // The registered buffer that holds `addr`, if any.
  std::optional<BufferInfo> RegisteredBufferAt(const void* addr) const {
    return registry_.Find(reinterpret_cast<uint64_t>(addr));
  }

  // Whether requests may need their local range registered: true where RDMA is in use (the NIC
  // reads and writes only registered memory); false, every request may set local_unregistered.
  bool LocalNeedsRegistration() const { return rdma_ != nullptr; }

  // Resolves a segment by name (cached). SEGMENT_NOT_FOUND if the metadata service does not know
  // it; TRANSFER_FAIL if its endpoint does not answer a handshake.
  absl::StatusOr<SegmentId> OpenSegment(const std::string& name);
  // Which transport requests to an opened segment use by default: "memcpy", "shm" or "tcp".
  std::string TransportFor(SegmentId id);

  // The descriptor of an opened segment: its endpoint and buffers. INVALID_PARAMS for an id that
  // was not opened.
  absl::StatusOr<SegmentDescriptor> DescribeSegment(SegmentId id);

  // Marks the cached descriptor stale: the next OpenSegment or Submit to the segment fetches it
  // again. Transfers that fail mark their segment stale themselves, so a peer that restarted (new
  // buffers, new keys) is picked up by the next request.
  void RefreshSegment(const std::string& name);

  // Starts every request of the batch. Requests that cannot start (unregistered local range,
  // unknown segment, zero length) fail at once with INVALID_PARAMS; a request for an incarnation
  // of its segment that is no longer the one serving it fails with TRANSFER_FAIL; the others
  // complete asynchronously. Wait on or poll the returned batch. A write reported done landed in
  // the memory of a process that was alive after the write.
  std::shared_ptr<TransferBatch> Submit(const std::vector<TransferRequest>& requests);

 private:
  explicit TransferEngine(EngineConfig config);
  absl::Status Start();
  absl::Status Publish();
  // Every config_.republish_interval until stopped: publishes the descriptor again when the
  // metadata service lost it or holds another.
  void KeepPublished();
  std::string Describe() const;
  tcp::TcpTransportOptions TcpOptions() const;  // config_.tcp with the auth token
  absl::StatusOr<SegmentDescriptor> Fetch(const std::string& name);
  // Fetches `name` again and stores it under `id`; the old descriptor stays if that fails.
  std::shared_ptr<const SegmentDescriptor> Reload(SegmentId id, const std::string& name);

  const EngineConfig config_;
  const uint64_t incarnation_;
  std::string name_;
  std::string host_;
  std::string host_id_;
  BufferRegistry registry_;
  shm::SharedMemory shared_;
  std::unique_ptr<shm::ShmServer> shm_server_;
  std::unique_ptr<shm::ShmTransport> shm_;
  std::unique_ptr<tcp::TcpDataServer> server_;
  std::unique_ptr<tcp::TcpTransport> tcp_;
  std::shared_ptr<rdma::Verbs> verbs_;
  std::unique_ptr<rdma::RdmaTransport> rdma_;
  std::unique_ptr<MetadataClient> metadata_;  // null with P2PHANDSHAKE
  absl::Mutex publish_mu_;  // one Publish() at a time, so the newest descriptor is stored last
  absl::Notification stop_publishing_;
  std::thread publisher_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, SegmentId> ids_ ABSL_GUARDED_BY(mu_);
  // index = SegmentId - 1; null after RefreshSegment
  std::vector<std::shared_ptr<const SegmentDescriptor>> segments_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<SegmentId> stale_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::engine
