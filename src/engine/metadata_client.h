// Where transfer engines publish their segment descriptors and find their peers': the HTTP
// metadata service ("http://host:port/metadata", `mooncake metadata` or the master's embedded one)
// or etcd ("etcd://h1:2379,h2:2379", ',' or ';' between endpoints, no metadata service at all).
//
// In etcd a descriptor is attached to a lease of its publisher, renewed by KeepAlive(): the
// descriptor of a process that died goes away by itself once the lease ran out, where the HTTP
// service keeps it until its owner deletes it.
//
// Thread safety: thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth.h"

namespace mooncake::engine {

class MetadataClient {
 public:
  // `url`: "http://host:port[/path]" (path defaults to /metadata), "host:port[/path]" (HTTP), or
  // "etcd://endpoints". INVALID_PARAMS naming what is wrong otherwise. `lease_ttl` is how long an
  // etcd-held descriptor outlives the last KeepAlive(); `auth` is sent to the HTTP service.
  static absl::StatusOr<std::unique_ptr<MetadataClient>> Create(std::string_view url,
                                                                const AuthToken& auth,
                                                                absl::Duration lease_ttl);
  virtual ~MetadataClient() = default;

  // The value under `key`, or nullopt if there is none. RPC_FAIL / ETCD_OPERATION_ERROR when the
  // service cannot be asked.
  virtual absl::StatusOr<std::optional<std::string>> Get(const std::string& key) = 0;
  virtual absl::Status Put(const std::string& key, const std::string& value) = 0;
  virtual absl::Status Delete(const std::string& key) = 0;
  // Keeps what this client put alive (etcd: renews the lease; if etcd lost it, what was under it
  // is gone and the next Put takes a new one). An error only when the service cannot be asked.
  virtual absl::Status KeepAlive() = 0;
  // "http://host:port/path" or "etcd://endpoints", for messages.
  virtual std::string Describe() const = 0;
};

}  // namespace mooncake::engine
