// Tenants: namespaces of objects. A client set up with a tenant sees, lists, removes and counts
// only the objects of its tenant; the same key in two tenants is two objects.
//
// On the wire a per-key call names its tenant in a "tenant_id" member (absent: the default
// tenant), and the master keeps each object under an internal key: the default tenant's keys as
// they are (so nothing changes for clusters without tenants), another tenant's as
// NUL + tenant + NUL + key. Keys of the default tenant cannot begin with NUL, and tenant names
// hold no control character, so no two tenants' keys meet. The segments' owners keep internal
// keys in their indexes: an object restored after a master restart or failover is restored into
// its tenant.
//
// A tenant is named by the request, not proven by it: tenants keep apart clients that share a
// cluster's token, they do not protect tenants from one another. A per-tenant token would map a
// caller to the tenant it may name; the wire stays as it is (docs/tenants.md).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace mooncake {

inline constexpr std::string_view kDefaultTenant = "default";
inline constexpr size_t kMaxTenantNameBytes = 128;

// INVALID_PARAMS unless `name` is 1 to kMaxTenantNameBytes bytes with no control character (below
// 0x20, or 0x7f) and does not begin with '_' (names of the system's own, as in the original).
absl::Status ValidateTenantName(std::string_view name);

// ValidateTenantName, its message naming `tenant_id`: the member, config key and keyword that carry
// a tenant.
absl::Status ValidateTenantId(std::string_view name);

// The master's key of `key` in `tenant` (a valid name).
std::string QualifyKey(std::string_view tenant, std::string_view key);

// Appends QualifyKey's prefix for `tenant` (nothing for the default tenant) to `out`.
void AppendTenantPrefix(std::string& out, std::string_view tenant);

// The tenant and the client's key of an internal key.
struct TenantKey {
  std::string_view tenant;
  std::string_view key;
};
TenantKey SplitKey(std::string_view internal_key);

// The client's key of an internal key (for messages).
inline std::string_view UserKey(std::string_view internal_key) {
  return SplitKey(internal_key).key;
}

// Whether `internal_key` belongs to `tenant`.
bool InTenant(std::string_view internal_key, std::string_view tenant);

}  // namespace mooncake
