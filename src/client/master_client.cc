#include "client/master_client.h"

#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "common/tenant.h"
#include "fmt/format.h"
#include "http/etcd_leader.h"
#include "http/fast_json.h"
#include "http/json_body.h"

namespace mooncake::client {
namespace {

using nlohmann::json;

absl::Status Malformed(std::string_view method, std::string_view what) {
  return MakeError(ErrorCode::RPC_FAIL,
                   fmt::format("malformed {} reply from the master: {}", method, what));
}

// The status of one batch result: OK for code 0, otherwise the code and message it carries.
absl::Status ResultStatus(const simdjson::dom::element& result) {
  int64_t value = 0;
  if (result["code"].get_int64().get(value) != simdjson::SUCCESS) {
    return MakeError(ErrorCode::RPC_FAIL, "batch result without a code");
  }
  if (value == 0) return absl::OkStatus();
  std::string_view message;
  if (result["message"].get_string().get(message) != simdjson::SUCCESS) {
    message = ErrorCodeName(static_cast<ErrorCode>(value));
  }
  return MakeError(
      IsKnownErrorCode(value) ? static_cast<ErrorCode>(value) : ErrorCode::INTERNAL_ERROR, message);
}

bool ReadUint(const json& object, const char* field, uint64_t* out) {
  auto it = object.find(field);
  if (it == object.end() || !it->is_number_unsigned()) return false;
  *out = it->get<uint64_t>();
  return true;
}

bool ReadUint(const simdjson::dom::element& object, const char* field, uint64_t* out) {
  return object[field].get_uint64().get(*out) == simdjson::SUCCESS;
}

absl::StatusOr<std::vector<Replica>> ReadReplicas(const simdjson::dom::element& object) {
  simdjson::dom::array items;
  if (object["replicas"].get_array().get(items) != simdjson::SUCCESS) {
    return Malformed("replica", "no replicas array");
  }
  std::vector<Replica> replicas;
  replicas.reserve(items.size());
  for (simdjson::dom::element r : items) {
    Replica replica;
    std::string_view segment;
    if (r["segment"].get_string().get(segment) != simdjson::SUCCESS ||
        !ReadUint(r, "address", &replica.address) || !ReadUint(r, "size", &replica.size)) {
      return Malformed("replica", simdjson::minify(r));
    }
    replica.segment = std::string(segment);
    if (simdjson::dom::element incarnation;
        r["incarnation"].get(incarnation) == simdjson::SUCCESS &&
        !ReadUint(r, "incarnation", &replica.incarnation)) {
      return Malformed("replica", simdjson::minify(r));
    }
    replicas.push_back(std::move(replica));
  }
  return replicas;
}

// Appends `"name":[...]` with `values` as JSON strings; false if one is not UTF-8.
bool AppendStrings(std::string& body, std::string_view name, Keys values) {
  fmt::format_to(std::back_inserter(body), "\"{}\":[", name);
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) body += ',';
    if (!http::AppendJsonString(body, values[i])) return false;
  }
  body += ']';
  return true;
}

// The answer's body parsed as a JSON object (RPC_FAIL otherwise).
absl::StatusOr<json> ParseObject(std::string_view method, const absl::StatusOr<std::string>& text) {
  if (!text.ok()) return text.status();
  json reply = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!reply.is_object()) return Malformed(method, "not a JSON object");
  return reply;
}

json ConfigJson(const ReplicateConfig& config, bool upsert) {
  std::vector<std::string> preferred;
  if (!config.preferred_segment.empty()) preferred.push_back(config.preferred_segment);
  preferred.insert(preferred.end(), config.preferred_segments.begin(),
                   config.preferred_segments.end());
  json out{{"replica_num", config.replica_num},
           {"with_soft_pin", config.with_soft_pin},
           {"with_hard_pin", config.with_hard_pin},
           {"preferred_segments", std::move(preferred)}};
  if (config.soft_pin_ttl) out["soft_pin_ttl_ms"] = absl::ToInt64Milliseconds(*config.soft_pin_ttl);
  if (upsert) {
    out["upsert"] = true;
    static constexpr const char* kActions[] = {"preserve", "enable", "disable"};
    out["soft_pin_action"] = kActions[static_cast<int>(config.soft_pin_action)];
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MasterClient>> MasterClient::Create(
    const std::string& address, std::string client_id, http::HttpClientOptions options) {
  absl::string_view etcd = AsAbsl(address);
  if (absl::ConsumePrefix(&etcd, "etcd://")) {
    // etcd://h1:2379,h2:2379[/cluster_id]
    std::string cluster = "mooncake_cluster";
    if (size_t slash = etcd.find('/'); slash != absl::string_view::npos) {
      cluster = std::string(etcd.substr(slash + 1));
      etcd = etcd.substr(0, slash);
      if (cluster.empty() || cluster.size() > 128 ||
          cluster.find_first_of("/ \t\n") != std::string::npos) {
        return MakeError(ErrorCode::INVALID_PARAMS,
                         fmt::format("master address '{}': bad cluster id '{}'", address, cluster));
      }
    }
    absl::StatusOr<std::unique_ptr<http::EtcdClient>> etcd_client =
        http::EtcdClient::Create(std::string(etcd));
    if (!etcd_client.ok()) {
      return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("master address '{}': {}", address,
                                                              etcd_client.status().message()));
    }
    std::unique_ptr<MasterClient> client(
        new MasterClient(nullptr, address, std::move(client_id), std::move(options)));
    client->etcd_ = *std::move(etcd_client);
    client->leader_key_ = http::LeaderKey(cluster);
    if (absl::Status found = client->Resolve(0); !found.ok()) return found;
    return client;
  }
  auto client = http::HttpClient::ForUrl(address, options);
  if (!client.ok()) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("master address '{}' is not host:port: {}", address,
                                 client.status().message()));
  }
  return std::unique_ptr<MasterClient>(
      new MasterClient(std::move(client->first), address, std::move(client_id), options));
}

absl::StatusOr<std::shared_ptr<http::HttpClient>> MasterClient::Current() {
  {
    absl::MutexLock lock(&http_mu_);
    if (http_ != nullptr) return http_;
  }
  if (absl::Status found = Resolve(0); !found.ok()) return found;
  absl::MutexLock lock(&http_mu_);
  return http_;
}

absl::Status MasterClient::Resolve(uint64_t failed_epoch) {
  const absl::Time deadline = absl::Now() + options_.timeout;
  absl::Status last = MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                                fmt::format("no master leads in etcd ({})", leader_key_));
  for (;;) {
    absl::StatusOr<std::optional<http::LeaderInfo>> leader = http::ReadLeader(*etcd_, leader_key_);
    const bool over = absl::Now() >= deadline;
    if (!leader.ok()) {
      last = leader.status();
    } else if (leader->has_value() &&
               ((*leader)->epoch > failed_epoch || (over && (*leader)->epoch == failed_epoch)) &&
               (*leader)->epoch >= newest_epoch_.load(std::memory_order_acquire)) {
      auto http = http::HttpClient::ForUrl((*leader)->address, options_);
      if (!http.ok()) return http.status();
      absl::MutexLock lock(&http_mu_);
      if (leader_epoch_ < (*leader)->epoch || http_ == nullptr) {
        http_ = std::move(http->first);
        leader_epoch_ = (*leader)->epoch;
      }
      return absl::OkStatus();
    }
    if (over) {
      return MakeError(ErrorCodeOf(last),
                       fmt::format("master address {}: {}", address_, last.message()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

absl::StatusOr<json> MasterClient::Call(std::string_view method, const json& request,
                                        bool idempotent) {
  return ParseObject(method, CallText(method, request.dump(), idempotent));
}

absl::StatusOr<std::string> MasterClient::CallText(std::string_view method, std::string_view body,
                                                   bool idempotent) {
  const std::string target = fmt::format("/v1/{}", method);
  for (int attempt = 0;; ++attempt) {
    // The epoch of the master this call goes to, read before the connection: another thread may
    // move the client to a newer leader meanwhile, and waiting for one newer than that would wait
    // in vain (a stale, older epoch here costs only a second try).
    uint64_t leader_epoch = 0;
    {
      absl::MutexLock lock(&http_mu_);
      leader_epoch = leader_epoch_;
    }
    absl::StatusOr<std::shared_ptr<http::HttpClient>> http = Current();
    if (!http.ok()) return http.status();
    http::CallOptions call;
    call.idempotent = idempotent;
    std::string epoch_text;
    if (etcd_ != nullptr) {
      call.capture_header = "X-Mooncake-Epoch";
      call.captured = &epoch_text;
    }
    absl::StatusOr<std::string> reply = (*http)->CallText("POST", target, body, call);
    if (etcd_ == nullptr) return reply;
    uint64_t epoch = 0;
    (void)absl::SimpleAtoi(epoch_text, &epoch);
    const ErrorCode code = reply.ok() ? ErrorCode::OK : ErrorCodeOf(reply.status());
    const bool refused = code == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS;
    const bool unreachable = code == ErrorCode::RPC_FAIL || code == ErrorCode::RPC_TIMEOUT;
    if (!refused && !unreachable) {
      // An answer: taken only from the newest term seen (an older leader's is refused, since a
      // newer one may have changed what it answers about).
      uint64_t newest = newest_epoch_.load(std::memory_order_acquire);
      while (epoch > newest && !newest_epoch_.compare_exchange_weak(newest, epoch)) {
      }
      if (epoch != 0 && epoch >= newest) return reply;
      reply = MakeError(
          ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
          fmt::format("the master answered under epoch {}, older than {}", epoch, newest));
    }
    // Not (or no longer) the leader: find the new one. A refused call was not served and is
    // sent again; one whose answer was lost may have been served, and is sent again only if
    // repeating it is harmless.
    absl::Status found = Resolve(leader_epoch);
    if (!found.ok()) return found;
    if (attempt >= 3 || !(refused || idempotent)) return reply;
  }
}

void MasterClient::ReleaseLease(const std::string& key, uint32_t lease_id) {
  absl::MutexLock lock(&release_mu_);
  releases_.emplace_back(key, lease_id);
}

void MasterClient::ReleaseLeases(std::vector<std::pair<std::string, uint32_t>> leases) {
  absl::MutexLock lock(&release_mu_);
  if (releases_.empty()) {
    releases_ = std::move(leases);
  } else {
    releases_.insert(releases_.end(), std::make_move_iterator(leases.begin()),
                     std::make_move_iterator(leases.end()));
  }
}

void MasterClient::SetTenant(std::string_view tenant) {
  tenant_ = std::string(tenant);
  tenant_member_.clear();
  if (tenant == kDefaultTenant) return;
  tenant_member_ = ",\"tenant_id\":";
  if (!http::AppendJsonString(tenant_member_, tenant)) tenant_member_ += json(tenant).dump();
}

MasterClient::ReleaseTicket MasterClient::AppendReleases(std::string& body) {
  // Small enough to leave a batch call inside the body limit.
  constexpr size_t kMaxReleases = 4096;
  constexpr size_t kMaxReleaseKeyBytes = 256u << 10;
  std::vector<std::pair<std::string, uint32_t>> taken;
  ReleaseTicket ticket;
  {
    absl::MutexLock lock(&release_mu_);
    ticket.before = next_carrier_;
    if (releases_.empty()) return ticket;
    ticket.own = next_carrier_++;
    carrying_.insert(ticket.own);
    carrying_count_.fetch_add(1, std::memory_order_relaxed);
    size_t count = 0, bytes = 0;
    while (count < releases_.size() && count < kMaxReleases &&
           bytes + releases_[count].first.size() <= kMaxReleaseKeyBytes) {
      bytes += releases_[count].first.size();
      ++count;
    }
    if (count == releases_.size()) {
      taken.swap(releases_);  // the usual case: all of them
    } else {
      taken.assign(std::make_move_iterator(releases_.begin()),
                   std::make_move_iterator(releases_.begin() + count));
      releases_.erase(releases_.begin(), releases_.begin() + count);
    }
  }
  // The keys were sent in a call before, so they are UTF-8.
  if (body.back() != '{') body += ',';
  body += "\"release_leases\":{\"keys\":[";
  for (size_t i = 0; i < taken.size(); ++i) {
    if (i > 0) body += ',';
    http::AppendJsonString(body, taken[i].first);
  }
  body += "],\"lease_ids\":[";
  for (size_t i = 0; i < taken.size(); ++i) {
    if (i > 0) body += ',';
    absl::StrAppend(&body, taken[i].second);
  }
  body += "]}";
  return ticket;
}

absl::StatusOr<std::string> MasterClient::CallWithReleases(std::string_view method,
                                                           std::string& body, bool idempotent) {
  const ReleaseTicket ticket = AppendReleases(body);
  body += '}';
  absl::StatusOr<std::string> reply = CallText(method, body, idempotent);
  FinishReleases(ticket);
  return reply;
}

void MasterClient::FinishReleases(const ReleaseTicket& ticket) {
  // The usual case: nothing carried, by this call or any other.
  if (ticket.own == 0 && carrying_count_.load(std::memory_order_acquire) == 0) return;
  absl::MutexLock lock(&release_mu_);
  if (ticket.own != 0) {
    carrying_.erase(ticket.own);
    carrying_count_.fetch_sub(1, std::memory_order_release);
  }
  auto earlier_done = [&]() ABSL_SHARED_LOCKS_REQUIRED(release_mu_) {
    return carrying_.empty() || *carrying_.begin() >= ticket.before;
  };
  release_mu_.AwaitWithTimeout(absl::Condition(&earlier_done), kReleaseWaitLimit);
}

absl::Status MasterClient::MountSegment(const std::string& name, uint64_t base, uint64_t size,
                                        uint64_t incarnation) {
  return Call("MountSegment",
              {{"client_id", client_id_},
               {"segment",
                {{"name", name}, {"base", base}, {"size", size}, {"incarnation", incarnation}}}},
              /*idempotent=*/false)
      .status();
}

absl::StatusOr<uint64_t> MasterClient::MountIndexedSegment(const std::string& name, uint64_t base,
                                                           uint64_t size, uint64_t incarnation,
                                                           const std::vector<IndexEntry>& index) {
  // Parts of at most kMaxIndexEntriesPerCall entries and kMaxKeyBytesPerCall key bytes.
  size_t begin = 0;
  uint64_t staged = 0;
  json part = json::array();
  for (;;) {
    part = json::array();
    size_t key_bytes = 0;
    size_t end = begin;
    while (end < index.size() && end - begin < kMaxIndexEntriesPerCall &&
           (end == begin || key_bytes + index[end].key.size() <= kMaxKeyBytesPerCall)) {
      const IndexEntry& entry = index[end++];
      key_bytes += entry.key.size();
      part.push_back(json::array({entry.key, entry.offset, entry.size, entry.put_id}));
    }
    if (end == index.size()) break;  // the last part goes with the mount
    absl::StatusOr<json> reply = Call("StageSegmentIndex",
                                      {{"client_id", client_id_},
                                       {"segment", name},
                                       {"first", begin == 0},
                                       {"index", std::move(part)}},
                                      /*idempotent=*/false);
    if (!reply.ok()) return reply.status();
    if (!ReadUint(*reply, "staged", &staged) || staged != end) {
      return Malformed("StageSegmentIndex", reply->dump());
    }
    begin = end;
  }
  json request = {
      {"client_id", client_id_},
      {"segment", {{"name", name}, {"base", base}, {"size", size}, {"incarnation", incarnation}}},
      {"index", std::move(part)}};
  if (staged != 0) request["staged"] = staged;
  absl::StatusOr<json> reply = Call("MountSegment", request, /*idempotent=*/false);
  if (!reply.ok()) return reply.status();
  uint64_t mount_id = 0;
  if (!ReadUint(*reply, "mount_id", &mount_id) || mount_id == 0) {
    return Malformed("MountSegment", reply->dump());
  }
  return mount_id;
}

absl::StatusOr<IndexSyncReply> MasterClient::SyncSegmentIndex(const std::string& name,
                                                              uint64_t mount_id, uint64_t acked,
                                                              absl::Duration wait) {
  absl::StatusOr<json> reply = Call("SyncSegmentIndex",
                                    {{"client_id", client_id_},
                                     {"segment", name},
                                     {"mount_id", mount_id},
                                     {"acked", acked},
                                     {"wait_ms", absl::ToInt64Milliseconds(wait)}},
                                    /*idempotent=*/true);
  if (!reply.ok()) return reply.status();
  IndexSyncReply out;
  auto changes = reply->find("changes");
  if (!ReadUint(*reply, "mount_id", &out.mount_id) || changes == reply->end() ||
      !changes->is_array()) {
    return Malformed("SyncSegmentIndex", reply->dump());
  }
  out.changes.reserve(changes->size());
  for (const json& c : *changes) {
    IndexChange change;
    const bool add = c.is_array() && c.size() == 6 && c[1] == "add" && c[2].is_string() &&
                     c[3].is_number_unsigned() && c[4].is_number_unsigned() &&
                     c[5].is_number_unsigned();
    const bool drop = c.is_array() && c.size() == 3 && c[1] == "drop" && c[2].is_number_unsigned();
    if ((!add && !drop) || !c[0].is_number_unsigned()) {
      return Malformed("SyncSegmentIndex", c.dump());
    }
    change.seq = c[0].get<uint64_t>();
    change.add = add;
    if (add) {
      change.entry = IndexEntry{c[2].get<std::string>(), c[3].get<uint64_t>(), c[4].get<uint64_t>(),
                                c[5].get<uint64_t>()};
    } else {
      change.entry.offset = c[2].get<uint64_t>();
    }
    out.changes.push_back(std::move(change));
  }
  return out;
}

absl::Status MasterClient::UnmountSegment(const std::string& name) {
  return Call("UnmountSegment", {{"client_id", client_id_}, {"name", name}}, false).status();
}

absl::StatusOr<HeartbeatReply> MasterClient::Heartbeat(const std::vector<std::string>& segments) {
  std::string body = "{\"client_id\":";
  if (!http::AppendJsonString(body, client_id_) ||
      (!segments.empty() && !AppendStrings(body += ',', "segments", segments))) {
    return MakeError(ErrorCode::INVALID_PARAMS, "a client id or segment name is not UTF-8");
  }
  body += tenant_member_;  // the tenant of the leases it releases
  absl::StatusOr<json> reply =
      ParseObject("Heartbeat", CallWithReleases("Heartbeat", body, /*idempotent=*/true));
  if (!reply.ok()) return reply.status();
  HeartbeatReply out;
  auto remount = reply->find("remount");
  if (remount == reply->end() || !remount->is_boolean() || !ReadUint(*reply, "epoch", &out.epoch)) {
    return Malformed("Heartbeat", reply->dump());
  }
  out.remount = remount->get<bool>();
  if (reply->contains("client_live_ttl_ms")) {
    uint64_t ttl_ms = 0;
    if (!ReadUint(*reply, "client_live_ttl_ms", &ttl_ms) || ttl_ms == 0 || ttl_ms > (1ull << 40)) {
      return Malformed("Heartbeat", reply->dump());
    }
    out.client_live_ttl = absl::Milliseconds(static_cast<int64_t>(ttl_ms));
  }
  return out;
}

absl::StatusOr<std::vector<SegmentInfo>> MasterClient::ListSegments() {
  absl::StatusOr<json> reply = Call("ListSegments", json::object(), true);
  if (!reply.ok()) return reply.status();
  auto it = reply->find("segments");
  if (it == reply->end() || !it->is_array()) return Malformed("ListSegments", "no segments");
  std::vector<SegmentInfo> segments;
  for (const json& s : *it) {
    SegmentInfo info;
    if (!s.is_object() || !s.contains("name") || !s["name"].is_string() ||
        !ReadUint(s, "base", &info.base) || !ReadUint(s, "size", &info.size) ||
        !ReadUint(s, "used", &info.used)) {
      return Malformed("ListSegments", s.dump());
    }
    info.name = s["name"].get<std::string>();
    if (s.contains("client_id") && s["client_id"].is_string()) {
      info.client_id = s["client_id"].get<std::string>();
    }
    segments.push_back(std::move(info));
  }
  return segments;
}

template <typename R>
std::vector<R> MasterClient::Batch(
    std::string_view method, Keys keys, bool idempotent,
    absl::FunctionRef<void(std::string& body, size_t begin, size_t end)> members,
    absl::FunctionRef<R(const simdjson::dom::element&)> parse) {
  std::vector<R> out;
  out.reserve(keys.size());
  size_t begin = 0;
  http::FastJsonDocument answer;
  while (begin < keys.size()) {
    // Stay inside the master's limits: keys per batch, and bytes per body even if every key
    // byte needs a six-byte JSON escape.
    size_t end = begin;
    size_t bytes = 0;
    while (end < keys.size() && end - begin < http::kMaxBatchKeys &&
           (end == begin || bytes + keys[end].size() <= kMaxKeyBytesPerCall)) {
      bytes += keys[end].size();
      ++end;
    }
    const size_t count = end - begin;
    absl::Status failed;
    std::string body = "{";
    body.reserve(bytes + 4 * count + 256);
    if (!AppendStrings(body, "keys", keys.subspan(begin, count))) {
      failed = MakeError(ErrorCode::INVALID_KEY,
                         fmt::format("{}: a key of this call is not UTF-8", method));
    }
    simdjson::dom::array results;
    if (failed.ok()) {
      body += tenant_member_;
      members(body, begin, end);
      absl::StatusOr<std::string> reply = CallWithReleases(method, body, idempotent);
      if (!reply.ok()) {
        failed = reply.status();
      } else if (absl::Status parsed = answer.Parse(*reply); !parsed.ok()) {
        failed = Malformed(method, std::string(parsed.message()));
      } else if (answer.root()["results"].get_array().get(results) != simdjson::SUCCESS ||
                 results.size() != count) {
        failed = Malformed(method, fmt::format("expected {} results", count));
      }
    }
    if (!failed.ok()) {
      out.insert(out.end(), count, R(failed));
    } else {
      for (simdjson::dom::element result : results) {
        out.push_back(result.is_object() ? parse(result)
                                         : R(Malformed(method, "a result is not an object")));
      }
    }
    begin = end;
  }
  return out;
}

std::vector<absl::StatusOr<std::vector<Replica>>> MasterClient::PutStart(
    absl::Span<const std::string> keys, absl::Span<const uint64_t> sizes,
    const ReplicateConfig& config, bool upsert) {
  using Result = absl::StatusOr<std::vector<Replica>>;
  const std::string fixed = fmt::format(",\"client_id\":{},\"config\":{}", json(client_id_).dump(),
                                        ConfigJson(config, upsert).dump());
  return Batch<Result>(
      "BatchPutStart", keys, false,
      [&](std::string& body, size_t b, size_t e) {
        body += fixed;
        body += ",\"sizes\":[";
        for (size_t i = b; i < e; ++i) {
          fmt::format_to(std::back_inserter(body), "{}{}", i == b ? "" : ",", sizes[i]);
        }
        body += ']';
      },
      [](const simdjson::dom::element& r) -> Result {
        absl::Status status = ResultStatus(r);
        if (!status.ok()) return status;
        return ReadReplicas(r);
      });
}

std::vector<absl::Status> MasterClient::PutEnd(absl::Span<const std::string> keys) {
  // Repeating PutEnd is harmless (a complete object answers OK), so retries are safe.
  const std::string client = ",\"client_id\":" + json(client_id_).dump();
  return Batch<absl::Status>(
      "BatchPutEnd", keys, true, [&](std::string& body, size_t, size_t) { body += client; },
      ResultStatus);
}

std::vector<absl::Status> MasterClient::PutRevoke(absl::Span<const std::string> keys) {
  const std::string client = ",\"client_id\":" + json(client_id_).dump();
  return Batch<absl::Status>(
      "BatchPutRevoke", keys, true, [&](std::string& body, size_t, size_t) { body += client; },
      ResultStatus);
}

std::vector<absl::StatusOr<ReplicaList>> MasterClient::GetReplicaList(
    absl::Span<const std::string> keys) {
  using Result = absl::StatusOr<ReplicaList>;
  return Batch<Result>(
      "BatchGetReplicaList", keys, true, [](std::string&, size_t, size_t) {},
      [](const simdjson::dom::element& r) -> Result {
        if (absl::Status status = ResultStatus(r); !status.ok()) return status;
        ReplicaList list;
        uint64_t lease_ms = 0;
        absl::StatusOr<std::vector<Replica>> replicas = ReadReplicas(r);
        if (!replicas.ok() || !ReadUint(r, "size", &list.size) ||
            !ReadUint(r, "lease_ms", &lease_ms)) {
          return Malformed("BatchGetReplicaList", simdjson::minify(r));
        }
        list.lease = absl::Milliseconds(lease_ms);
        list.replicas = *std::move(replicas);
        uint64_t lease_id = 0;
        if (simdjson::dom::element id;
            r["lease_id"].get(id) == simdjson::SUCCESS &&
            (!ReadUint(r, "lease_id", &lease_id) || lease_id > UINT32_MAX)) {
          return Malformed("BatchGetReplicaList", simdjson::minify(r));
        }
        list.lease_id = static_cast<uint32_t>(lease_id);
        return list;
      });
}

std::vector<absl::StatusOr<bool>> MasterClient::ExistKey(Keys keys) {
  using Result = absl::StatusOr<bool>;
  return Batch<Result>(
      "BatchExistKey", keys, true, [](std::string&, size_t, size_t) {},
      [](const simdjson::dom::element& r) -> Result {
        if (absl::Status status = ResultStatus(r); !status.ok()) return status;
        bool exists = false;
        if (r["exists"].get_bool().get(exists) != simdjson::SUCCESS) {
          return Malformed("BatchExistKey", simdjson::minify(r));
        }
        return exists;
      });
}

std::vector<absl::StatusOr<uint64_t>> MasterClient::GetSize(absl::Span<const std::string> keys) {
  using Result = absl::StatusOr<uint64_t>;
  return Batch<Result>(
      "BatchGetSize", keys, true, [](std::string&, size_t, size_t) {},
      [](const simdjson::dom::element& r) -> Result {
        if (absl::Status status = ResultStatus(r); !status.ok()) return status;
        uint64_t size = 0;
        if (!ReadUint(r, "size", &size)) return Malformed("BatchGetSize", simdjson::minify(r));
        return size;
      });
}

std::vector<absl::Status> MasterClient::Remove(absl::Span<const std::string> keys, bool force) {
  return Batch<absl::Status>(
      "BatchRemove", keys, true,
      [&](std::string& body, size_t, size_t) {
        body += force ? ",\"force\":true" : ",\"force\":false";
      },
      ResultStatus);
}

absl::StatusOr<uint64_t> MasterClient::CallRemoved(std::string_view method, const json& request) {
  // With the leases this client's reads no longer need: an object it has just read is otherwise
  // still leased, and skipped.
  std::string body = request.dump();
  body.pop_back();  // the closing brace
  absl::StatusOr<json> reply =
      ParseObject(method, CallWithReleases(method, body, /*idempotent=*/true));
  if (!reply.ok()) return reply.status();
  uint64_t removed = 0;
  if (!ReadUint(*reply, "removed", &removed)) return Malformed(method, reply->dump());
  return removed;
}

absl::StatusOr<uint64_t> MasterClient::RemoveByRegex(const std::string& pattern) {
  json request = {{"regex", pattern}};
  if (!tenant_member_.empty()) request["tenant_id"] = tenant_;
  return CallRemoved("RemoveByRegex", request);
}

absl::StatusOr<uint64_t> MasterClient::RemoveAll() {
  json request = json::object();
  if (!tenant_member_.empty()) request["tenant_id"] = tenant_;
  return CallRemoved("RemoveAll", request);
}

}  // namespace mooncake::client
