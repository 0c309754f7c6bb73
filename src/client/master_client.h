// Typed calls to the master's RPC (docs/master-rpc.md). Every per-key call is sent in its batch
// form: one request for all keys, one result per key, in order.
//
// Thread safety: thread-safe; concurrent calls use separate pooled connections.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/keys.h"
#include "http/client.h"
#include "http/etcd_client.h"

namespace simdjson::dom {
class element;
}  // namespace simdjson::dom

namespace mooncake::client {

// What an upsert does to the soft pin of the object it replaces.
enum class SoftPinAction {
  kPreserve,  // keep its deadline
  kEnable,    // pin anew from when the new value is readable
  kDisable,   // unpin
};

struct ReplicateConfig {
  uint32_t replica_num = 1;
  bool with_soft_pin = false;
  bool with_hard_pin = false;
  std::string preferred_segment;                // "" = any; "host:port" of a segment
  std::vector<std::string> preferred_segments;  // tried in order, after preferred_segment
  bool prefer_alloc_in_same_node = false;       // put a replica in this client's own segment
  // With with_soft_pin: how long the pin lasts from when the object becomes readable; unset:
  // the master's default_kv_soft_pin_ttl.
  std::optional<absl::Duration> soft_pin_ttl;
  SoftPinAction soft_pin_action = SoftPinAction::kPreserve;  // upserts only
};

struct Replica {
  std::string segment;  // "host:port" of the segment's owner
  uint64_t address = 0;
  uint64_t size = 0;
  uint64_t incarnation = 0;  // of the process `address` belongs to (0: not said)
};

struct ReplicaList {
  uint64_t size = 0;
  absl::Duration lease;  // from when the request was sent, at most
  std::vector<Replica> replicas;
  uint32_t lease_id = 0;  // for ReleaseLease once the read is done
};

struct SegmentInfo {
  std::string name;
  uint64_t base = 0;
  uint64_t size = 0;
  uint64_t used = 0;
  std::string client_id;
};

struct HeartbeatReply {
  bool remount = false;
  uint64_t epoch = 0;
  // How long the master waits for a heartbeat before it declares the client dead (absent from a
  // master that does not say).
  std::optional<absl::Duration> client_live_ttl;
};

// One complete object in this client's segment, as the master reported it (loss-free recovery).
struct IndexEntry {
  std::string key;
  uint64_t offset = 0;  // from the segment's base
  uint64_t size = 0;
  uint64_t put_id = 0;
};

// A change to the index: add `entry`, or drop the entry at entry.offset.
struct IndexChange {
  uint64_t seq = 0;
  bool add = false;
  IndexEntry entry;
};

struct IndexSyncReply {
  uint64_t mount_id = 0;
  std::vector<IndexChange> changes;
};

class MasterClient {
 public:
  // Key bytes per batch call: the 16 MiB body limit holds even if every byte needs a JSON escape.
  static constexpr size_t kMaxKeyBytesPerCall = 2u << 20;
  // Index entries per call: their numbers (up to 3 x 20 digits) take at most 4 MiB more.
  static constexpr size_t kMaxIndexEntriesPerCall = 50000;
  // How long a call waits, after its answer, for other calls carrying releases queued before it
  // (ReleaseLease). They take microseconds; the limit is for a carrier stuck on a failing master,
  // whose releases are then lost (the leases end at their TTL) and not worth waiting for.
  static constexpr absl::Duration kReleaseWaitLimit = absl::Seconds(1);

  // `address` is "host:port" or "http://host:port", or "etcd://h1:2379,h2:2379[/cluster_id]" for
  // masters elected in etcd (docs/ha.md): then the client finds the leader in etcd, follows it to
  // a new one when it stops leading, and refuses answers from an epoch older than one it has
  // seen. INVALID_PARAMS for anything else.
  static absl::StatusOr<std::unique_ptr<MasterClient>> Create(const std::string& address,
                                                              std::string client_id,
                                                              http::HttpClientOptions options);

  // Every call from here on names `tenant` (common/tenant.h): its keys are those of that tenant.
  // REQUIRES: a valid tenant name; called before the client is shared with other threads.
  void SetTenant(std::string_view tenant);

  // Ends this client's lease on `key` (a read of it is done); sent with the next batch call or
  // heartbeat, so it costs no call of its own. Once any batch call, removal or heartbeat of this
  // client that began after this has returned, the master has had the release, whichever thread's
  // call carried it (a call that carried none waits for the calls that did, up to
  // kReleaseWaitLimit). Thread-safe.
  void ReleaseLease(const std::string& key, uint32_t lease_id);
  // ReleaseLease of each (key, lease_id).
  void ReleaseLeases(std::vector<std::pair<std::string, uint32_t>> leases);

  // `incarnation`: the transfer engine's, handed out with every replica in the segment.
  absl::Status MountSegment(const std::string& name, uint64_t base, uint64_t size,
                            uint64_t incarnation);
  // A mount that reports the segment's index (the objects it holds) and keeps it up to date with
  // SyncSegmentIndex. Returns the mount's id. An index larger than one request may carry (more
  // than kMaxIndexEntriesPerCall entries or kMaxKeyBytesPerCall key bytes) is sent in parts: all
  // but the last staged with StageSegmentIndex, the last with the mount.
  absl::StatusOr<uint64_t> MountIndexedSegment(const std::string& name, uint64_t base,
                                               uint64_t size, uint64_t incarnation,
                                               const std::vector<IndexEntry>& index);
  // Acknowledges the changes up to `acked` of mount `mount_id` and fetches the next ones, waiting
  // up to `wait` at the master for one.
  absl::StatusOr<IndexSyncReply> SyncSegmentIndex(const std::string& name, uint64_t mount_id,
                                                  uint64_t acked, absl::Duration wait);
  absl::Status UnmountSegment(const std::string& name);
  // `segments`: the segments this client serves; the master asks for a remount when one of them
  // is not mounted under this client.
  absl::StatusOr<HeartbeatReply> Heartbeat(const std::vector<std::string>& segments = {});
  absl::StatusOr<std::vector<SegmentInfo>> ListSegments();

  // A failed call fails every key with its status. With `upsert`, existing objects get new
  // replicas that replace theirs at PutEnd.
  std::vector<absl::StatusOr<std::vector<Replica>>> PutStart(absl::Span<const std::string> keys,
                                                             absl::Span<const uint64_t> sizes,
                                                             const ReplicateConfig& config,
                                                             bool upsert = false);
  std::vector<absl::Status> PutEnd(absl::Span<const std::string> keys);
  std::vector<absl::Status> PutRevoke(absl::Span<const std::string> keys);
  std::vector<absl::StatusOr<ReplicaList>> GetReplicaList(absl::Span<const std::string> keys);
  std::vector<absl::StatusOr<bool>> ExistKey(Keys keys);
  std::vector<absl::StatusOr<uint64_t>> GetSize(absl::Span<const std::string> keys);
  std::vector<absl::Status> Remove(absl::Span<const std::string> keys, bool force);
  absl::StatusOr<uint64_t> RemoveByRegex(const std::string& pattern);
  absl::StatusOr<uint64_t> RemoveAll();

  const std::string& client_id() const { return client_id_; }
  const std::string& address() const { return address_; }

 private:
  MasterClient(std::unique_ptr<http::HttpClient> http, std::string address, std::string client_id,
               http::HttpClientOptions options)
      : http_(std::move(http)),
        address_(std::move(address)),
        client_id_(std::move(client_id)),
        options_(std::move(options)) {}

  // The connection to the master to call now; with etcd, resolved first if there is none.
  absl::StatusOr<std::shared_ptr<http::HttpClient>> Current();
  // With etcd: waits (up to the call timeout) until etcd names a leader newer than `failed_epoch`
  // and connects to it. A leader of the same epoch is taken again only once the wait is over.
  absl::Status Resolve(uint64_t failed_epoch);

  // Sends `body` to `method` and returns the 2xx answer's body; follows the leader with etcd.
  absl::StatusOr<std::string> CallText(std::string_view method, std::string_view body,
                                       bool idempotent);
  // CallText with a JSON request, and the answer parsed (RPC_FAIL unless it is a JSON object).
  absl::StatusOr<nlohmann::json> Call(std::string_view method, const nlohmann::json& request,
                                      bool idempotent);
  // RemoveByRegex and RemoveAll: how many objects the master removed.
  absl::StatusOr<uint64_t> CallRemoved(std::string_view method, const nlohmann::json& request);
  // Sends `method` for all `keys`, in as many calls as the master's limits require, and parses
  // each key's result. A call's body is {"keys": [...keys begin..end...]} plus what `members`
  // appends for those keys (each member after a comma), plus leases waiting to be released;
  // bodies are written as text and answers read with simdjson (http/fast_json.h). A failed
  // call fails each of its keys with its status; a key that is not UTF-8 fails its call with
  // INVALID_KEY.
  template <typename R>
  std::vector<R> Batch(std::string_view method, Keys keys, bool idempotent,
                       absl::FunctionRef<void(std::string& body, size_t begin, size_t end)> members,
                       absl::FunctionRef<R(const simdjson::dom::element&)> parse);

  // CallText of `body`, a JSON object without its closing brace, with the leases waiting to be
  // released added as its last member (`"release_leases":{...}`, as many as fit). Returns once the
  // answer is in and (up to kReleaseWaitLimit) so are the answers of the calls that carried
  // releases queued before this one.
  absl::StatusOr<std::string> CallWithReleases(std::string_view method, std::string& body,
                                               bool idempotent);
  // Which releases a call carries, and which earlier carriers it must outlast: every call of
  // this client numbered below `before` that carries releases.
  struct ReleaseTicket {
    uint64_t before = 0;
    uint64_t own = 0;  // this call's number if it carries releases, else 0
  };
  // CallWithReleases' two halves: before the call and after its answer.
  ReleaseTicket AppendReleases(std::string& body);
  void FinishReleases(const ReleaseTicket& ticket);

  absl::Mutex http_mu_;
  std::shared_ptr<http::HttpClient> http_ ABSL_GUARDED_BY(http_mu_);
  uint64_t leader_epoch_ ABSL_GUARDED_BY(http_mu_) = 0;  // with etcd: of http_'s master
  const std::string address_;
  const std::string client_id_;
  // `,"tenant_id":"NAME"` for a tenant other than the default one (SetTenant), else empty: added
  // to every call that names keys.
  std::string tenant_member_;
  std::string tenant_ = "default";
  const http::HttpClientOptions options_;
  // With etcd: where the leader key is, and the newest epoch any answer carried.
  std::unique_ptr<http::EtcdClient> etcd_;
  std::string leader_key_;
  std::atomic<uint64_t> newest_epoch_{0};
  absl::Mutex release_mu_;
  std::vector<std::pair<std::string, uint32_t>> releases_ ABSL_GUARDED_BY(release_mu_);
  uint64_t next_carrier_ ABSL_GUARDED_BY(release_mu_) = 1;
  // The calls carrying releases now, by number, and how many (read without the lock).
  std::set<uint64_t> carrying_ ABSL_GUARDED_BY(release_mu_);
  std::atomic<size_t> carrying_count_{0};
};

}  // namespace mooncake::client
