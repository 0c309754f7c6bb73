// A client of etcd's v3 API through its JSON gateway (etcd 3.4 and later: POST /v3/kv/range,
// /v3/kv/put, /v3/kv/txn, /v3/kv/deleterange, /v3/lease/*, and the streaming /v3/watch), on our
// own HTTP client: no etcd client library. Keys and values travel base64-encoded; this class
// takes and returns them as plain bytes.
//
// Several endpoints may be given ("h1:2379,h2:2379", ';' also separates, "http://" optional): a
// call goes to the endpoint that answered last and moves on to the next one when an endpoint
// cannot be reached, so one dead member of an etcd cluster costs one failed attempt, not the call.
// Answers are checked field by field: a malformed answer is an ETCD_OPERATION_ERROR naming what
// was wrong, never a crash.
//
// Thread safety: thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "http/client.h"
#include "nlohmann/json.hpp"

namespace mooncake::http {

struct EtcdKeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;  // 0: none
};

struct EtcdEvent {
  bool deleted = false;  // else: put
  EtcdKeyValue kv;       // after a delete, only key and mod_revision
};

struct EtcdOptions {
  // Per attempt on one endpoint: connecting, and each read or write.
  absl::Duration timeout = absl::Seconds(1);
};

class EtcdClient {
 public:
  // `endpoints`: "host:port" items separated by ',' or ';', each optionally "http://host:port".
  // INVALID_PARAMS for an empty list or a malformed item.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(std::string_view endpoints,
                                                            EtcdOptions options = {});

  // The endpoints as parsed, "host:port" each.
  const std::vector<std::string>& endpoints() const { return names_; }

  // A lease of at least `ttl` (etcd rounds up to whole seconds); returns its id.
  absl::StatusOr<int64_t> LeaseGrant(absl::Duration ttl);
  // Renews the lease; returns the TTL etcd granted. LEASE_EXPIRED if etcd no longer has it.
  absl::StatusOr<absl::Duration> LeaseKeepAlive(int64_t lease);
  absl::Status LeaseRevoke(int64_t lease);

  // The key's current value (nullopt if absent). `revision`, if given, receives the store
  // revision the answer describes.
  absl::StatusOr<std::optional<EtcdKeyValue>> Get(std::string_view key,
                                                  int64_t* revision = nullptr);
  // Every key starting with `prefix`, in key order.
  absl::StatusOr<std::vector<EtcdKeyValue>> GetPrefix(std::string_view prefix);
  // Sets the key (attached to `lease` unless 0); returns the new revision.
  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value, int64_t lease = 0);
  // Deletes the key; true if it existed.
  absl::StatusOr<bool> Delete(std::string_view key);

  struct CreateResult {
    bool created = false;
    EtcdKeyValue kv;  // what the key holds now: ours if created, the holder's if not
  };
  // Creates the key only if it does not exist (one transaction).
  absl::StatusOr<CreateResult> CreateIfAbsent(std::string_view key, std::string_view value,
                                              int64_t lease);
  // Deletes the key only if it is the one created at `create_revision`; true if deleted.
  absl::StatusOr<bool> DeleteIfCreatedAt(std::string_view key, int64_t create_revision);

  // The changes to `key` from `start_revision` on, as soon as there is at least one, or an empty
  // list when `timeout` passes first. ETCD_OPERATION_ERROR if no endpoint takes the watch or the
  // revision was compacted away.
  absl::StatusOr<std::vector<EtcdEvent>> Watch(std::string_view key, int64_t start_revision,
                                               absl::Duration timeout);

 private:
  struct Endpoint {
    std::string host;
    int port = 0;
  };

  explicit EtcdClient(EtcdOptions options) : options_(options) {}

  // POSTs `request` to `path` on the first endpoint that answers; the parsed 200 answer, or the
  // error etcd gave. Every call may be sent twice (to a second endpoint after the first took it
  // but did not answer): each operation here is written so that a repeat is harmless.
  absl::StatusOr<nlohmann::json> Call(std::string_view path, const nlohmann::json& request);
  // One POST to one endpoint.
  absl::StatusOr<HttpResult> Post(size_t index, std::string_view path,
                                  const std::string& body) const;

  const EtcdOptions options_;
  std::vector<Endpoint> endpoints_;
  std::vector<std::string> names_;
  std::atomic<size_t> current_{0};
};

// Parses one key-value object of an etcd answer (exposed for the fuzzer and tests).
absl::StatusOr<EtcdKeyValue> ParseEtcdKeyValue(const nlohmann::json& kv);

}  // namespace mooncake::http
