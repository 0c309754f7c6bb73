#include "http/etcd_leader.h"

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "fmt/format.h"

namespace mooncake::http {
namespace {

// "host:port" with a port in range, printable and short.
bool IsAddress(std::string_view value) {
  if (value.empty() || value.size() > 256) return false;
  for (char c : value) {
    if (c <= ' ' || c > '~') return false;
  }
  const size_t colon = value.rfind(':');
  int port = 0;
  return colon != std::string_view::npos && colon > 0 &&
         absl::SimpleAtoi(AsAbsl(value.substr(colon + 1)), &port) && port > 0 && port <= 65535;
}

}  // namespace

std::string LeaderKey(std::string_view cluster_id) {
  return fmt::format("mooncake/{}/master/leader", cluster_id);
}

absl::StatusOr<std::optional<LeaderInfo>> ReadLeader(EtcdClient& etcd, std::string_view key) {
  absl::StatusOr<std::optional<EtcdKeyValue>> kv = etcd.Get(key);
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) return std::optional<LeaderInfo>();
  if (!IsAddress((*kv)->value) || (*kv)->create_revision <= 0) {
    return MakeError(ErrorCode::ETCD_OPERATION_ERROR,
                     fmt::format("etcd key {} holds '{}', not a master's host:port", key,
                                 absl::CHexEscape((*kv)->value.substr(0, 64))));
  }
  return std::optional<LeaderInfo>(
      LeaderInfo{(*kv)->value, static_cast<uint64_t>((*kv)->create_revision)});
}

}  // namespace mooncake::http
