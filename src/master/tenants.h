// What each tenant holds and, in multi-tenant mode (--enable_multi_tenants), what it may hold.
//
// Usage is kept as objects enter and leave the master's index (MasterService::Count): a tenant's
// bytes are the sizes of its objects, complete or being written, each counted once however many
// replicas it has. Quotas come from a policy (YAML, docs/tenants.md) kept in a file or in etcd,
// and from the admin API, which writes it back, so that a restarted master (or the next leader)
// enforces the same policy; usage is rebuilt from the objects the segments' owners report.
//
// With quotas on, a write of a tenant without a policy is refused, and a write that would take a
// tenant past its effective quota is refused unless evicting that tenant's own objects makes room
// (MasterService::PutStart). The effective quota is the requested one, scaled down in proportion
// when the requested quotas add up to more than the pool holds.
//
// Thread safety: thread-safe. The default tenant's usage is kept in atomics (its objects are
// counted without a lock); other tenants' in a map under one mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "http/etcd_client.h"

namespace mooncake::master {

struct TenantOptions {
  bool quotas = false;                  // --enable_multi_tenants
  std::string connector_type = "file";  // --tenant_quota_connector_type: "file" or "etcd"
  // --tenant_quota_connector_uri: "file", the policy file; "etcd", the endpoints of the etcd
  // that keeps it ("h1:2379,h2:2379"; empty: `etcd_endpoints`, those of HA).
  std::string connector_uri;
  std::string etcd_endpoints;  // HA's (--etcd_endpoints), for "etcd" without a URI
  // "etcd": the key the policy (its YAML text) is kept under, mooncake/<cluster_id>/tenant_quotas.
  std::string etcd_key;
};

struct TenantSnapshot {
  std::string tenant;
  bool has_policy = false;
  uint64_t requested_quota_bytes = 0;
  uint64_t effective_quota_bytes = 0;
  uint64_t used_bytes = 0;      // sizes of its objects
  uint64_t reserved_bytes = 0;  // admitted puts not yet recorded
  uint64_t objects = 0;
  bool over_quota = false;  // holds more than its effective quota (after the quota was cut)
};

// The largest quota a policy may give: 2^62 bytes (4 EiB).
inline constexpr uint64_t kMaxTenantQuotaBytes = uint64_t{1} << 62;

// Parses a policy file's text: {"tenant": quota bytes}. INVALID_PARAMS naming what is wrong
// (not YAML, version other than 1, a tenant without a valid name or quota, a name twice, keys
// it does not know).
absl::StatusOr<std::map<std::string, uint64_t>> ParseTenantPolicy(std::string_view text);
// The policy as the file holds it (quotas in bytes).
std::string FormatTenantPolicy(const std::map<std::string, uint64_t>& quotas);

class Tenants {
 public:
  // With options.quotas, reads the policy file (a missing file is an empty policy, created by the
  // first PUT). INVALID_PARAMS for an unsupported connector or a malformed file.
  static absl::StatusOr<std::unique_ptr<Tenants>> Create(TenantOptions options);

  bool quotas_enabled() const { return options_.quotas; }
  // Reads the policy file again (a new leader's term: the previous leader may have changed it).
  // INVALID_PARAMS for a malformed file, and the policy stays as it was.
  absl::Status Reload();

  // An object of `internal_key` (common/tenant.h) of `bytes` entering (sign +1) or leaving (-1)
  // the index.
  void Count(std::string_view internal_key, uint64_t bytes, int sign);

  // Admission of a write of `bytes` by `tenant` (quotas on; OK when off): reserves the bytes until
  // Release. ILLEGAL_CLIENT for a tenant without a policy; NO_AVAILABLE_HANDLE when the tenant
  // would exceed its effective quota given a pool of `capacity` bytes, with `*over` set to by how
  // much (0 for an object larger than the whole quota, for which no eviction makes room). Each
  // refusal is counted (mooncake_tenant_quota_reject_total).
  absl::Status Reserve(std::string_view tenant, uint64_t bytes, uint64_t capacity,
                       uint64_t* over = nullptr);
  void Release(std::string_view tenant, uint64_t bytes);
  // The effective quota of `tenant` (0 without a policy).
  uint64_t EffectiveQuota(std::string_view tenant, uint64_t capacity) const;
  void CountEvicted(std::string_view tenant, uint64_t bytes);

  // The admin API (quotas on; otherwise UNAVAILABLE_IN_CURRENT_STATUS).
  // OBJECT_NOT_FOUND for a tenant without a policy.
  absl::StatusOr<TenantSnapshot> Get(std::string_view tenant, uint64_t capacity) const;
  // Every tenant with a policy, by name.
  absl::StatusOr<std::vector<TenantSnapshot>> List(uint64_t capacity) const;
  // Sets a tenant's quota (1 to kMaxTenantQuotaBytes) and writes the policy file.
  absl::StatusOr<TenantSnapshot> SetQuota(std::string_view tenant, uint64_t bytes,
                                          uint64_t capacity);
  // Removes a tenant's policy and writes the file. UNAVAILABLE_IN_CURRENT_STATUS while the
  // tenant holds objects (the admin API answers 409, as the original's TENANT_NOT_EMPTY).
  absl::Status DeleteQuota(std::string_view tenant);

  // The per-tenant series (usage of every tenant holding objects, quotas of every policy).
  std::string RenderMetrics(uint64_t capacity) const;

 private:
  struct Usage {
    uint64_t objects = 0;
    uint64_t bytes = 0;
    uint64_t reserved = 0;
    uint64_t evicted_bytes = 0;
    uint64_t rejected_unregistered = 0;
    uint64_t rejected_quota = 0;
  };

  explicit Tenants(TenantOptions options) : options_(std::move(options)) {}
  absl::Status RequireQuotas() const;
  // The effective quota for `requested` in a pool of `capacity` bytes.
  uint64_t EffectiveLocked(uint64_t requested, uint64_t capacity) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  TenantSnapshot SnapshotLocked(const std::string& tenant, uint64_t capacity) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The usage of `tenant` (the default tenant's read from its atomics).
  Usage UsageLocked(std::string_view tenant) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  Usage& MutableUsageLocked(std::string_view tenant) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets a tenant's usage entry once it holds nothing and has no policy.
  void MaybeForgetLocked(std::string_view tenant) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes quotas_ where the policy is kept (a file: a temporary file renamed over it).
  absl::Status SaveLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The policy's text where it is kept; nullopt when there is none yet.
  absl::StatusOr<std::optional<std::string>> LoadText() const;
  // Where the policy is kept, for messages: the file, or etcd's key.
  std::string Where() const;

  const TenantOptions options_;
  std::unique_ptr<http::EtcdClient> etcd_;  // the "etcd" connector's
  std::atomic<uint64_t> default_objects_{0};
  std::atomic<uint64_t> default_bytes_{0};
  mutable absl::Mutex mu_;
  std::map<std::string, uint64_t, std::less<>> quotas_ ABSL_GUARDED_BY(mu_);
  uint64_t requested_total_ ABSL_GUARDED_BY(mu_) = 0;
  // Every tenant but the default one's objects and bytes, and everyone's other counts.
  absl::flat_hash_map<std::string, Usage> usage_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::master
