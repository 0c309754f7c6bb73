#include "common/tenant.h"

#include "common/error_code.h"
#include "fmt/format.h"

namespace mooncake {

absl::Status ValidateTenantName(std::string_view name) {
  if (name.empty()) return MakeError(ErrorCode::INVALID_PARAMS, "tenant name is empty");
  if (name.size() > kMaxTenantNameBytes) {
    return MakeError(
        ErrorCode::INVALID_PARAMS,
        fmt::format("tenant name is {} bytes; the limit is {}", name.size(), kMaxTenantNameBytes));
  }
  if (name.front() == '_') {
    return MakeError(ErrorCode::INVALID_PARAMS, "tenant names beginning with '_' are reserved");
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) {
      return MakeError(
          ErrorCode::INVALID_PARAMS,
          fmt::format("tenant name holds a control character (0x{:02x}) at byte {}", c, i));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTenantId(std::string_view name) {
  absl::Status valid = ValidateTenantName(name);
  if (valid.ok()) return valid;
  return MakeError(ErrorCode::INVALID_PARAMS,
                   fmt::format("tenant_id: {}",
                               std::string_view(valid.message().data(), valid.message().size())));
}

void AppendTenantPrefix(std::string& out, std::string_view tenant) {
  if (tenant == kDefaultTenant) return;
  out += '\0';
  out += tenant;
  out += '\0';
}

std::string QualifyKey(std::string_view tenant, std::string_view key) {
  std::string out;
  if (tenant != kDefaultTenant) out.reserve(tenant.size() + key.size() + 2);
  AppendTenantPrefix(out, tenant);
  out += key;
  return out;
}

TenantKey SplitKey(std::string_view internal_key) {
  if (internal_key.empty() || internal_key.front() != '\0') return {kDefaultTenant, internal_key};
  const size_t end = internal_key.find('\0', 1);
  if (end == std::string_view::npos) return {kDefaultTenant, internal_key};  // not made here
  return {internal_key.substr(1, end - 1), internal_key.substr(end + 1)};
}

bool InTenant(std::string_view internal_key, std::string_view tenant) {
  if (tenant == kDefaultTenant) return internal_key.empty() || internal_key.front() != '\0';
  return internal_key.size() >= tenant.size() + 2 && internal_key.front() == '\0' &&
         internal_key.compare(1, tenant.size(), tenant) == 0 &&
         internal_key[tenant.size() + 1] == '\0';
}

}  // namespace mooncake
