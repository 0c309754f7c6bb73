// How a client is configured: the keys of SPEC.md §2 (a store's JSON config, SGLang's config file
// and extra-config), the environment of SPEC.md §3, and the knobs that only the C++ API offers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "engine/rdma/verbs.h"
#include "nlohmann/json.hpp"

namespace mooncake::client {

struct ClientConfig {
  // "host" (the data endpoint takes a free port in 12300-14300) or "host:port". Also the name
  // peers use to reach this client's segment, so it must resolve for them.
  std::string local_hostname = "localhost";
  // "P2PHANDSHAKE" (peers ask each other's data endpoint), "http://host:port/metadata" or
  // "etcd://host:port[,host:port...]" (descriptors kept in etcd).
  std::string metadata_server = "P2PHANDSHAKE";
  // "host:port" of the master's RPC port ("http://host:port" is accepted too).
  std::string master_server_address = "127.0.0.1:50051";
  std::string protocol = "tcp";  // "tcp" or "rdma"
  std::string device_name;       // rdma: "mlx5_0,mlx5_1"; empty = every device found
  // Bytes this client contributes to the pool (0: none). The segment lives in shared memory, so
  // processes on the same host copy to and from it directly.
  uint64_t global_segment_size = 16u << 20;
  // Staging memory of the copying calls (Put/Get of values that are not in registered memory).
  // 0: copying puts fail, and so do copying gets where RDMA is in use (otherwise a copying get
  // reads straight into the value); the zero-copy calls need none.
  uint64_t local_buffer_size = 16u << 20;

  // Beyond SPEC.md: offered by the C++ API and the store's flags.
  std::string listen_address = "0.0.0.0";  // where the data endpoint listens
  bool enable_shm = true;                  // copy through shared memory to same-host peers
  // Once mounted, fault in every page of the segment, in the background: the first writes into
  // it then run as fast as later ones (on a virtual machine a page's first touch can cost as much
  // as copying it several times). The segment's size is resident from then on. `mooncake store`
  // sets it; a client that contributes memory of its own (an inference process) does not.
  bool prefault_segment = false;
  absl::Duration heartbeat_interval = absl::Seconds(2);
  absl::Duration rpc_timeout = absl::Seconds(10);  // per master call
  std::string client_id;                           // empty: a random UUID
  // The namespace of this client's objects (common/tenant.h): config key `tenant_id`, the
  // environment's MOONCAKE_TENANT_ID (ConfigFromEnvironment), the wheel's `tenant_id`.
  std::string tenant_id = "default";
  // The cluster's auth token (SPEC.md §8): config key `auth_token_file`, or the environment's
  // MOONCAKE_AUTH_TOKEN. Off: nothing is proven, and this client's own data endpoint and shared
  // memory are open to anyone who can reach them.
  AuthToken auth;
  // The verbs implementation for protocol rdma; null means libibverbs. Tests put a software
  // stand-in for a NIC here (EngineConfig::verbs).
  std::shared_ptr<engine::rdma::Verbs> verbs;
};

// Reads the keys of SPEC.md §2 from `json` on top of `base`. Sizes may be integers or strings with
// a unit ("4gb", "512MB"). Also accepted: the names of the Python `setup(config)` dict
// (`master_server_addr`, `rdma_devices`). Keys this function does not know are listed in
// `ignored` (when not null) and otherwise left alone: SGLang's extra-config carries keys of its
// own. INVALID_PARAMS naming the key for a value of the wrong type or an unparsable size.
absl::StatusOr<ClientConfig> ConfigFromJson(const nlohmann::json& json, ClientConfig base = {},
                                            std::vector<std::string>* ignored = nullptr);

// Reads a JSON config file (SPEC.md §2). INVALID_PARAMS naming the file if it cannot be read or
// is not a JSON object.
absl::StatusOr<ClientConfig> ConfigFromFile(const std::string& path, ClientConfig base = {},
                                            std::vector<std::string>* ignored = nullptr);

// The SGLang way (SPEC.md §3): the file named by SGLANG_HICACHE_MOONCAKE_CONFIG_PATH if set,
// otherwise MOONCAKE_MASTER (required), MOONCAKE_TE_META_DATA_SERVER, MOONCAKE_PROTOCOL,
// MOONCAKE_DEVICE, MOONCAKE_GLOBAL_SEGMENT_SIZE, MOONCAKE_LOCAL_BUFFER_SIZE,
// MOONCAKE_LOCAL_HOSTNAME (or LOCAL_HOSTNAME), MOONCAKE_TENANT_ID, with SPEC.md's defaults for the
// unset ones.
absl::StatusOr<ClientConfig> ConfigFromEnvironment();

// MOONCAKE_AUTH_TOKEN, if set (the wheel and SGLang pass the token this way). Off when unset;
// INVALID_PARAMS for a malformed token.
absl::StatusOr<AuthToken> AuthTokenFromEnvironment();

// INVALID_PARAMS unless the fields make sense together (known protocol, non-empty addresses).
// A warning when peers on other hosts cannot reach this client: its local_hostname names only
// this host's loopback (localhost, 127.x, ::1, or a name resolving to nothing else, as Debian maps
// the host name to 127.0.1.1) while its master is on another host. nullopt when all is well.
std::optional<std::string> UnreachableHostnameWarning(const ClientConfig& config);

absl::Status ValidateConfig(const ClientConfig& config);

}  // namespace mooncake::client
