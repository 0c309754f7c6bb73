#include "client/client_config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/error_code.h"
#include "common/strings.h"
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
