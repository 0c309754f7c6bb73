#include "master/tenants.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "common/error_code.h"
#include "common/metrics.h"
#include "common/strings.h"
#include "common/tenant.h"
#include "common/units.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "yaml-cpp/yaml.h"

namespace mooncake::master {
namespace {

absl::Status PolicyError(std::string_view what) {
  return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("tenant quota policy: {}", what));
}

absl::Status NoPolicy(std::string_view tenant) {
  return MakeError(ErrorCode::OBJECT_NOT_FOUND,
                   fmt::format("tenant '{}' has no quota policy", tenant));
}

// A quota as the file or the admin API gives it: bytes, or a size with a unit ("200GB").
absl::StatusOr<uint64_t> ParseQuota(std::string_view text) {
  absl::StatusOr<uint64_t> bytes = ParseByteSize(text);
  if (!bytes.ok()) return bytes.status();
  if (*bytes == 0 || *bytes > kMaxTenantQuotaBytes) {
    return MakeError(
        ErrorCode::INVALID_PARAMS,
        fmt::format("quota {} must be 1 byte to 4 EiB ({} bytes)", text, kMaxTenantQuotaBytes));
  }
  return bytes;
}

}  // namespace

absl::StatusOr<std::map<std::string, uint64_t>> ParseTenantPolicy(std::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return PolicyError(fmt::format("not YAML: {}", e.what()));
  }
  std::map<std::string, uint64_t> quotas;
  if (root.IsNull()) return quotas;  // an empty file
  if (!root.IsMap()) return PolicyError("expected a mapping with 'version' and 'tenants'");
  for (const auto& member : root) {
    const std::string name = member.first.Scalar();
    if (name != "version" && name != "tenants") {
      return PolicyError(fmt::format("unknown key '{}' (expected 'version' and 'tenants')", name));
    }
  }
  const YAML::Node version = root["version"];
  if (!version || !version.IsScalar() || version.Scalar() != "1") {
    return PolicyError("'version' must be 1");
  }
  const YAML::Node tenants = root["tenants"];
  if (!tenants || tenants.IsNull()) return quotas;
  if (!tenants.IsSequence()) return PolicyError("'tenants' must be a list");
  size_t index = 0;
  for (const YAML::Node& tenant : tenants) {
    const std::string where = fmt::format("tenants[{}]", index++);
    if (!tenant.IsMap()) return PolicyError(where + " must be a mapping with 'name' and 'quota'");
    for (const auto& member : tenant) {
      const std::string key = member.first.Scalar();
      if (key != "name" && key != "quota") {
        return PolicyError(
            fmt::format("{}: unknown key '{}' (expected 'name' and 'quota')", where, key));
      }
    }
    const YAML::Node name = tenant["name"];
    const YAML::Node quota = tenant["quota"];
    if (!name || !name.IsScalar()) return PolicyError(where + ": 'name' must be a string");
    if (absl::Status valid = ValidateTenantName(name.Scalar()); !valid.ok()) {
      return PolicyError(fmt::format("{}: {}", where, AsStd(valid.message())));
    }
    if (!quota || !quota.IsScalar()) {
      return PolicyError(fmt::format("{} ({}): 'quota' must be bytes or a size such as 200GB",
                                     where, name.Scalar()));
    }
    absl::StatusOr<uint64_t> bytes = ParseQuota(quota.Scalar());
    if (!bytes.ok()) {
      return PolicyError(
          fmt::format("{} ({}): {}", where, name.Scalar(), AsStd(bytes.status().message())));
    }
    if (!quotas.emplace(name.Scalar(), *bytes).second) {
      return PolicyError(fmt::format("{}: tenant '{}' is listed twice", where, name.Scalar()));
    }
  }
  return quotas;
}

std::string FormatTenantPolicy(const std::map<std::string, uint64_t>& quotas) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "version" << YAML::Value << 1 << YAML::Key << "tenants"
      << YAML::Value << YAML::BeginSeq;
  for (const auto& [name, bytes] : quotas) {
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name << YAML::Key << "quota"
        << YAML::Value << bytes << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

absl::StatusOr<std::unique_ptr<Tenants>> Tenants::Create(TenantOptions options) {
  std::unique_ptr<Tenants> tenants(new Tenants(options));
  if (!options.quotas) return tenants;
  if (options.connector_type == "etcd") {
    const std::string& endpoints =
        options.connector_uri.empty() ? options.etcd_endpoints : options.connector_uri;
    if (endpoints.empty() || options.etcd_key.empty()) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       "tenant_quota_connector_type etcd needs the etcd's endpoints: "
                       "--tenant_quota_connector_uri=host:port[,...], or --enable_ha with "
                       "--etcd_endpoints");
    }
    absl::StatusOr<std::unique_ptr<http::EtcdClient>> etcd = http::EtcdClient::Create(endpoints);
    if (!etcd.ok()) {
      return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("tenant_quota_connector_uri: {}",
                                                              AsStd(etcd.status().message())));
    }
    tenants->etcd_ = *std::move(etcd);
  } else if (options.connector_type != "file") {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("tenant_quota_connector_type '{}' is not supported: 'file' and "
                                 "'etcd' are",
                                 options.connector_type));
  } else if (options.connector_uri.empty()) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     "--enable_multi_tenants needs --tenant_quota_connector_uri: the policy file");
  }
  if (absl::Status loaded = tenants->Reload(); !loaded.ok()) return loaded;
  return tenants;
}

std::string Tenants::Where() const {
  return etcd_ ? fmt::format("etcd key {}", options_.etcd_key) : options_.connector_uri;
}

absl::StatusOr<std::optional<std::string>> Tenants::LoadText() const {
  if (etcd_) {
    absl::StatusOr<std::optional<http::EtcdKeyValue>> kv = etcd_->Get(options_.etcd_key);
    if (!kv.ok()) {
      return MakeError(
          ErrorCode::ETCD_OPERATION_ERROR,
          fmt::format("tenant quota policy, {}: {}", Where(), AsStd(kv.status().message())));
    }
    if (!kv->has_value()) return std::nullopt;
    return (*kv)->value;
  }
  std::ifstream file(options_.connector_uri);
  if (!file) {
    if (errno == ENOENT) return std::nullopt;
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("tenant quota policy {}: cannot be read: {}",
                                 options_.connector_uri, std::strerror(errno)));
  }
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

absl::Status Tenants::Reload() {
  if (!options_.quotas) return absl::OkStatus();
  absl::StatusOr<std::optional<std::string>> text = LoadText();
  if (!text.ok()) return text.status();
  std::map<std::string, uint64_t> read;
  if (text->has_value()) {
    absl::StatusOr<std::map<std::string, uint64_t>> quotas = ParseTenantPolicy(**text);
    if (!quotas.ok()) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("{}: {}", Where(), AsStd(quotas.status().message())));
    }
    read = *std::move(quotas);
  } else {
    spdlog::warn(
        "tenant quota policy {} does not exist: no tenant may write until one is registered "
        "(PUT /api/v1/tenant_quotas?tenant_id=NAME on the metrics port writes it)",
        Where());
  }
  absl::MutexLock lock(&mu_);
  quotas_.clear();
  quotas_.insert(read.begin(), read.end());
  requested_total_ = 0;
  for (const auto& [name, bytes] : read) requested_total_ += bytes;
  for (auto it = usage_.begin(); it != usage_.end();) {
    auto next = std::next(it);
    MaybeForgetLocked(it->first);
    it = next;
  }
  spdlog::info("tenant quota policy {}: {} tenants", Where(), read.size());
  return absl::OkStatus();
}

void Tenants::Count(std::string_view internal_key, uint64_t bytes, int sign) {
  const TenantKey split = SplitKey(internal_key);
  if (split.tenant == kDefaultTenant) {
    if (sign > 0) {
      default_objects_.fetch_add(1, std::memory_order_relaxed);
      default_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    } else {
      default_objects_.fetch_sub(1, std::memory_order_relaxed);
      default_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    }
    return;
  }
  absl::MutexLock lock(&mu_);
  Usage& usage = MutableUsageLocked(split.tenant);
  if (sign > 0) {
    usage.objects += 1;
    usage.bytes += bytes;
  } else {
    usage.objects -= 1;
    usage.bytes -= bytes;
    MaybeForgetLocked(split.tenant);
  }
}

Tenants::Usage Tenants::UsageLocked(std::string_view tenant) const {
  Usage usage;
  if (auto it = usage_.find(AsAbsl(tenant)); it != usage_.end()) usage = it->second;
  if (tenant == kDefaultTenant) {
    usage.objects = default_objects_.load(std::memory_order_relaxed);
    usage.bytes = default_bytes_.load(std::memory_order_relaxed);
  }
  return usage;
}

Tenants::Usage& Tenants::MutableUsageLocked(std::string_view tenant) {
  auto it = usage_.find(AsAbsl(tenant));
  if (it == usage_.end()) it = usage_.emplace(std::string(tenant), Usage{}).first;
  return it->second;
}

void Tenants::MaybeForgetLocked(std::string_view tenant) {
  auto it = usage_.find(AsAbsl(tenant));
  if (it == usage_.end()) return;
  const Usage& u = it->second;
  // Counters of refusals and evictions go with it: a tenant that holds nothing and may write
  // nothing has none worth keeping, and the table stays as small as the tenants in use.
  if (u.objects == 0 && u.reserved == 0 && tenant != kDefaultTenant &&
      quotas_.find(tenant) == quotas_.end()) {
    usage_.erase(it);
  }
}

uint64_t Tenants::EffectiveLocked(uint64_t requested, uint64_t capacity) const {
  if (capacity == 0 || requested_total_ <= capacity) return requested;
  return static_cast<uint64_t>(static_cast<unsigned __int128>(requested) * capacity /
                               requested_total_);
}

uint64_t Tenants::EffectiveQuota(std::string_view tenant, uint64_t capacity) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = quotas_.find(tenant);
  return it == quotas_.end() ? 0 : EffectiveLocked(it->second, capacity);
}

absl::Status Tenants::Reserve(std::string_view tenant, uint64_t bytes, uint64_t capacity,
                              uint64_t* over) {
  if (!options_.quotas) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  auto policy = quotas_.find(tenant);
  if (policy == quotas_.end()) {
    MutableUsageLocked(tenant).rejected_unregistered += 1;
    return MakeError(ErrorCode::ILLEGAL_CLIENT,
                     fmt::format("tenant '{}' has no quota: with multi-tenant quotas on, only "
                                 "tenants of the policy ({}) may write",
                                 tenant, Where()));
  }
  const uint64_t quota = EffectiveLocked(policy->second, capacity);
  Usage& usage = MutableUsageLocked(tenant);
  const Usage now = UsageLocked(tenant);
  const uint64_t held = now.bytes + usage.reserved;
  if (bytes > quota) {
    if (over != nullptr) *over = 0;  // no eviction makes room
    usage.rejected_quota += 1;
    return MakeError(ErrorCode::NO_AVAILABLE_HANDLE,
                     fmt::format("an object of {} is larger than tenant '{}''s quota of {}",
                                 FormatByteSize(bytes), tenant, FormatByteSize(quota)));
  }
  if (held + bytes > quota) {
    if (over != nullptr) *over = held + bytes - quota;
    usage.rejected_quota += 1;
    return MakeError(
        ErrorCode::NO_AVAILABLE_HANDLE,
        fmt::format("tenant '{}' holds {} of its quota of {}: no room for {} more", tenant,
                    FormatByteSize(held), FormatByteSize(quota), FormatByteSize(bytes)));
  }
  usage.reserved += bytes;
  return absl::OkStatus();
}

void Tenants::Release(std::string_view tenant, uint64_t bytes) {
  if (!options_.quotas) return;
  absl::MutexLock lock(&mu_);
  Usage& usage = MutableUsageLocked(tenant);
  usage.reserved -= std::min(usage.reserved, bytes);
  MaybeForgetLocked(tenant);
}

void Tenants::CountEvicted(std::string_view tenant, uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  MutableUsageLocked(tenant).evicted_bytes += bytes;
}

absl::Status Tenants::RequireQuotas() const {
  if (options_.quotas) return absl::OkStatus();
  return MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                   "tenant quotas are off: start the master with --enable_multi_tenants");
}

TenantSnapshot Tenants::SnapshotLocked(const std::string& tenant, uint64_t capacity) const {
  TenantSnapshot out;
  out.tenant = tenant;
  const Usage usage = UsageLocked(tenant);
  out.used_bytes = usage.bytes;
  out.reserved_bytes = usage.reserved;
  out.objects = usage.objects;
  if (auto it = quotas_.find(tenant); it != quotas_.end()) {
    out.has_policy = true;
    out.requested_quota_bytes = it->second;
    out.effective_quota_bytes = EffectiveLocked(it->second, capacity);
    out.over_quota = out.used_bytes > out.effective_quota_bytes;
  }
  return out;
}

absl::StatusOr<TenantSnapshot> Tenants::Get(std::string_view tenant, uint64_t capacity) const {
  if (absl::Status on = RequireQuotas(); !on.ok()) return on;
  absl::ReaderMutexLock lock(&mu_);
  auto it = quotas_.find(tenant);
  if (it == quotas_.end()) return NoPolicy(tenant);
  return SnapshotLocked(it->first, capacity);
}

absl::StatusOr<std::vector<TenantSnapshot>> Tenants::List(uint64_t capacity) const {
  if (absl::Status on = RequireQuotas(); !on.ok()) return on;
  absl::ReaderMutexLock lock(&mu_);
  std::vector<TenantSnapshot> out;
  out.reserve(quotas_.size());
  for (const auto& [name, bytes] : quotas_) out.push_back(SnapshotLocked(name, capacity));
  return out;
}

absl::StatusOr<TenantSnapshot> Tenants::SetQuota(std::string_view tenant, uint64_t bytes,
                                                 uint64_t capacity) {
  if (absl::Status on = RequireQuotas(); !on.ok()) return on;
  if (absl::Status valid = ValidateTenantName(tenant); !valid.ok()) return valid;
  if (bytes == 0 || bytes > kMaxTenantQuotaBytes) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("requested_quota_bytes must be 1 to {}", kMaxTenantQuotaBytes));
  }
  absl::MutexLock lock(&mu_);
  auto it = quotas_.find(tenant);
  const std::optional<uint64_t> before =
      it == quotas_.end() ? std::nullopt : std::optional<uint64_t>(it->second);
  if (it == quotas_.end()) it = quotas_.emplace(std::string(tenant), 0).first;
  requested_total_ = requested_total_ - before.value_or(0) + bytes;
  it->second = bytes;
  if (absl::Status saved = SaveLocked(); !saved.ok()) {
    // Not kept: a policy the file does not hold would be lost by the next restart.
    requested_total_ = requested_total_ - bytes + before.value_or(0);
    if (before.has_value()) {
      it->second = *before;
    } else {
      quotas_.erase(it);
    }
    return saved;
  }
  spdlog::info("tenant '{}': quota {}", tenant, FormatByteSize(bytes));
  return SnapshotLocked(it->first, capacity);
}

absl::Status Tenants::DeleteQuota(std::string_view tenant) {
  if (absl::Status on = RequireQuotas(); !on.ok()) return on;
  absl::MutexLock lock(&mu_);
  auto it = quotas_.find(tenant);
  if (it == quotas_.end()) return NoPolicy(tenant);
  const Usage usage = UsageLocked(tenant);
  if (usage.objects > 0 || usage.reserved > 0) {
    return MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                     fmt::format("TENANT_NOT_EMPTY: tenant '{}' holds {} objects; remove them "
                                 "(remove_all as that tenant) before its policy",
                                 tenant, usage.objects));
  }
  const uint64_t bytes = it->second;
  const std::string name = it->first;
  quotas_.erase(it);
  requested_total_ -= bytes;
  if (absl::Status saved = SaveLocked(); !saved.ok()) {
    quotas_.emplace(name, bytes);
    requested_total_ += bytes;
    return saved;
  }
  MaybeForgetLocked(name);
  spdlog::info("tenant '{}': quota policy removed", name);
  return absl::OkStatus();
}

absl::Status Tenants::SaveLocked() const {
  const std::string text =
      FormatTenantPolicy(std::map<std::string, uint64_t>(quotas_.begin(), quotas_.end()));
  if (etcd_) {
    absl::StatusOr<int64_t> put = etcd_->Put(options_.etcd_key, text);
    if (!put.ok()) {
      return MakeError(ErrorCode::ETCD_OPERATION_ERROR,
                       fmt::format("tenant quota policy: cannot write {}: {}", Where(),
                                   AsStd(put.status().message())));
    }
    return absl::OkStatus();
  }
  const std::string& path = options_.connector_uri;
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      return MakeError(
          ErrorCode::INTERNAL_ERROR,
          fmt::format("tenant quota policy: cannot write {}: {}", temp, std::strerror(errno)));
    }
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temp.c_str());
    return MakeError(
        ErrorCode::INTERNAL_ERROR,
        fmt::format("tenant quota policy: cannot replace {}: {}", path, std::strerror(error)));
  }
  return absl::OkStatus();
}

std::string Tenants::RenderMetrics(uint64_t capacity) const {
  absl::ReaderMutexLock lock(&mu_);
  // Every tenant holding objects, the default one, and every tenant with a policy, by name.
  std::map<std::string, TenantSnapshot> all;
  all.emplace(std::string(kDefaultTenant), SnapshotLocked(std::string(kDefaultTenant), capacity));
  for (const auto& [name, usage] : usage_) all.emplace(name, SnapshotLocked(name, capacity));
  for (const auto& [name, bytes] : quotas_) all.emplace(name, SnapshotLocked(name, capacity));
  std::string out;
  auto family = [&](std::string_view metric, std::string_view type, std::string_view help,
                    auto value, bool policies_only) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", metric, help, metric, type);
    for (const auto& [name, snapshot] : all) {
      if (policies_only && !snapshot.has_policy) continue;
      out += metric;
      out += "{tenant_id=\"";
      AppendEscapedLabelValue(out, name);
      out += fmt::format("\"}} {}\n", value(snapshot));
    }
  };
  family(
      "mooncake_tenant_objects", "gauge", "Objects of a tenant (complete and being written)",
      [](const TenantSnapshot& s) { return s.objects; }, false);
  family(
      "mooncake_tenant_bytes", "gauge", "Sizes of a tenant's objects, each counted once",
      [](const TenantSnapshot& s) { return s.used_bytes; }, false);
  family(
      "mooncake_tenant_quota_requested_bytes", "gauge", "A tenant's quota as its policy says",
      [](const TenantSnapshot& s) { return s.requested_quota_bytes; }, true);
  family(
      "mooncake_tenant_quota_effective_bytes", "gauge",
      "A tenant's quota, scaled down when the quotas add up to more than the pool",
      [](const TenantSnapshot& s) { return s.effective_quota_bytes; }, true);
  family(
      "mooncake_tenant_quota_used_bytes", "gauge", "What a tenant holds against its quota",
      [](const TenantSnapshot& s) { return s.used_bytes; }, true);
  family(
      "mooncake_tenant_quota_over_quota", "gauge",
      "1 while a tenant holds more than its effective quota",
      [](const TenantSnapshot& s) { return s.over_quota ? 1 : 0; }, true);
  std::string rejects, evictions;
  for (const auto& [name, snapshot] : all) {
    const Usage usage = UsageLocked(name);
    std::string label;
    AppendEscapedLabelValue(label, name);
    rejects += fmt::format(
        "mooncake_tenant_quota_reject_total{{tenant_id=\"{}\",reason=\"unregistered\"}} {}\n"
        "mooncake_tenant_quota_reject_total{{tenant_id=\"{}\",reason=\"quota\"}} {}\n",
        label, usage.rejected_unregistered, label, usage.rejected_quota);
    evictions += fmt::format("mooncake_tenant_evict_bytes_total{{tenant_id=\"{}\"}} {}\n", label,
                             usage.evicted_bytes);
  }
  out +=
      "# HELP mooncake_tenant_quota_reject_total Writes refused by tenant and reason\n"
      "# TYPE mooncake_tenant_quota_reject_total counter\n";
  out += rejects;
  out +=
      "# HELP mooncake_tenant_evict_bytes_total Bytes evicted to make room within a quota\n"
      "# TYPE mooncake_tenant_evict_bytes_total counter\n";
  out += evictions;
  return out;
}

}  // namespace mooncake::master
