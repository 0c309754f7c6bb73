#include "client/client_config.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/error_code.h"
#include "common/strings.h"
#include "common/tenant.h"
#include "common/units.h"
#include "fmt/format.h"

namespace mooncake::client {
namespace {

absl::Status Invalid(std::string message) { return MakeError(ErrorCode::INVALID_PARAMS, message); }

absl::Status ReadString(const nlohmann::json& value, std::string_view key, std::string* out) {
  if (!value.is_string()) return Invalid(fmt::format("config key '{}' must be a string", key));
  *out = value.get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadSize(const nlohmann::json& value, std::string_view key, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return absl::OkStatus();
  }
  if (value.is_string()) {
    absl::StatusOr<uint64_t> parsed = ParseByteSize(value.get<std::string>());
    if (!parsed.ok())
      return Invalid(fmt::format("config key '{}': {}", key, parsed.status().message()));
    *out = *parsed;
    return absl::OkStatus();
  }
  return Invalid(fmt::format(
      "config key '{}' must be a non-negative integer or a size string such as \"4gb\"", key));
}

absl::Status CheckTenant(std::string_view tenant, std::string_view where) {
  absl::Status valid = ValidateTenantName(tenant);
  if (valid.ok()) return valid;
  return Invalid(fmt::format("{}: {}", where, AsStd(valid.message())));
}

const char* Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' ? value : nullptr;
}

}  // namespace

absl::StatusOr<ClientConfig> ConfigFromJson(const nlohmann::json& json, ClientConfig base,
                                            std::vector<std::string>* ignored) {
  if (!json.is_object()) return Invalid("the config must be a JSON object");
  for (const auto& [key, value] : json.items()) {
    absl::Status status;
    if (key == "local_hostname") {
      status = ReadString(value, key, &base.local_hostname);
    } else if (key == "metadata_server") {
      status = ReadString(value, key, &base.metadata_server);
    } else if (key == "master_server_address" || key == "master_server_addr") {
      status = ReadString(value, key, &base.master_server_address);
    } else if (key == "protocol") {
      status = ReadString(value, key, &base.protocol);
    } else if (key == "device_name" || key == "rdma_devices") {
      status = ReadString(value, key, &base.device_name);
    } else if (key == "global_segment_size") {
      status = ReadSize(value, key, &base.global_segment_size);
    } else if (key == "local_buffer_size") {
      status = ReadSize(value, key, &base.local_buffer_size);
    } else if (key == "tenant_id") {
      // null: the default tenant, as SGLang passes it when MOONCAKE_TENANT_ID is unset.
      if (!value.is_null()) status = ReadString(value, key, &base.tenant_id);
      if (status.ok() && value.is_null()) base.tenant_id = std::string(kDefaultTenant);
      if (status.ok()) status = CheckTenant(base.tenant_id, "config key 'tenant_id'");
    } else if (key == "auth_token_file") {
      std::string path;
      status = ReadString(value, key, &path);
      if (status.ok() && !path.empty()) {
        absl::StatusOr<AuthToken> token = AuthToken::FromFile(path);
        if (token.ok()) base.auth = *std::move(token);
        status = token.status();
      }
    } else if (ignored != nullptr) {
      ignored->push_back(key);
    }
    if (!status.ok()) return status;
  }
  return base;
}

absl::StatusOr<ClientConfig> ConfigFromFile(const std::string& path, ClientConfig base,
                                            std::vector<std::string>* ignored) {
  std::ifstream in(path);
  if (!in) return Invalid(fmt::format("cannot read config file '{}'", path));
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json json = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Invalid(fmt::format("config file '{}' is not valid JSON", path));
  absl::StatusOr<ClientConfig> config = ConfigFromJson(json, std::move(base), ignored);
  if (!config.ok()) {
    return Invalid(fmt::format("config file '{}': {}", path, config.status().message()));
  }
  return config;
}

absl::StatusOr<AuthToken> AuthTokenFromEnvironment() {
  const char* token = Env("MOONCAKE_AUTH_TOKEN");
  if (token == nullptr) return AuthToken();
  absl::StatusOr<AuthToken> parsed = AuthToken::FromString(token);
  if (!parsed.ok())
    return Invalid(fmt::format("MOONCAKE_AUTH_TOKEN: {}", parsed.status().message()));
  return parsed;
}

absl::StatusOr<ClientConfig> ConfigFromEnvironment() {
  ClientConfig config;
  config.global_segment_size = uint64_t{4} << 30;  // SGLang's default
  absl::StatusOr<AuthToken> token = AuthTokenFromEnvironment();
  if (!token.ok()) return token.status();
  config.auth = *std::move(token);
  if (const char* path = Env("SGLANG_HICACHE_MOONCAKE_CONFIG_PATH")) {
    return ConfigFromFile(path, config);
  }
  const char* master = Env("MOONCAKE_MASTER");
  if (master == nullptr) {
    return Invalid(
        "MOONCAKE_MASTER is not set (the master's host:port), nor is "
        "SGLANG_HICACHE_MOONCAKE_CONFIG_PATH");
  }
  config.master_server_address = master;
  if (const char* v = Env("MOONCAKE_TE_META_DATA_SERVER")) config.metadata_server = v;
  if (const char* v = Env("MOONCAKE_PROTOCOL")) config.protocol = v;
  if (const char* v = Env("MOONCAKE_DEVICE")) config.device_name = v;
  if (const char* v = Env("MOONCAKE_TENANT_ID")) {
    if (absl::Status s = CheckTenant(v, "MOONCAKE_TENANT_ID"); !s.ok()) return s;
    config.tenant_id = v;
  }
  if (const char* v =
          Env("MOONCAKE_LOCAL_HOSTNAME") ? Env("MOONCAKE_LOCAL_HOSTNAME") : Env("LOCAL_HOSTNAME")) {
    config.local_hostname = v;
  }
  for (auto [name, out] : {std::pair{"MOONCAKE_GLOBAL_SEGMENT_SIZE", &config.global_segment_size},
                           std::pair{"MOONCAKE_LOCAL_BUFFER_SIZE", &config.local_buffer_size}}) {
    if (const char* v = Env(name)) {
      absl::StatusOr<uint64_t> parsed = ParseByteSize(v);
      if (!parsed.ok()) return Invalid(fmt::format("{}: {}", name, parsed.status().message()));
      *out = *parsed;
    }
  }
  return config;
}

namespace {

// The host of "host", "host:port", "[v6]:port", "http://host:port/..." or "etcd://host:port,...".
std::string HostOf(std::string_view address) {
  if (size_t scheme = address.find("://"); scheme != std::string_view::npos) {
    address.remove_prefix(scheme + 3);
  }
  address = address.substr(0, address.find_first_of(",/"));
  if (!address.empty() && address.front() == '[') {
    return std::string(address.substr(1, address.find(']') - 1));
  }
  if (std::count(address.begin(), address.end(), ':') == 1)
    address = address.substr(0, address.find(':'));
  return std::string(address);
}

// Whether `host` names only this host's loopback: a loopback literal, or a name whose every
// address is one. Names that do not resolve count as not loopback (they may resolve elsewhere).
bool OnlyLoopback(const std::string& host) {
  if (host == "localhost") return true;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (host.empty() || getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return false;
  bool any = false, all_loopback = true;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    any = true;
    if (a->ai_family == AF_INET) {
      const uint32_t ip = ntohl(reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr.s_addr);
      all_loopback &= (ip >> 24) == 127;
    } else if (a->ai_family == AF_INET6) {
      all_loopback &= IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
    }
  }
  freeaddrinfo(found);
  return any && all_loopback;
}

}  // namespace

std::optional<std::string> UnreachableHostnameWarning(const ClientConfig& config) {
  const std::string local = HostOf(config.local_hostname);
  if (!OnlyLoopback(local)) return std::nullopt;
  const std::string master = HostOf(config.master_server_address);
  if (master.empty() || OnlyLoopback(master)) return std::nullopt;  // a single-host cluster
  return fmt::format(
      "local_hostname '{}' names only this host's loopback, but the master ({}) is on another "
      "host: clients there cannot reach this segment. Set local_hostname to an address they can "
      "reach (this host's IP or a name that resolves to it everywhere).",
      config.local_hostname, config.master_server_address);
}

absl::Status ValidateConfig(const ClientConfig& config) {
  if (config.protocol != "tcp" && config.protocol != "rdma") {
    return Invalid(
        fmt::format("unknown protocol '{}' (expected \"tcp\" or \"rdma\")", config.protocol));
  }
  if (config.local_hostname.empty()) return Invalid("local_hostname is empty");
  if (config.master_server_address.empty()) return Invalid("master_server_address is empty");
  if (config.metadata_server.empty()) return Invalid("metadata_server is empty");
  if (config.heartbeat_interval <= absl::ZeroDuration()) {
    return Invalid("the heartbeat interval must be positive");
  }
  return absl::OkStatus();
}

}  // namespace mooncake::client
