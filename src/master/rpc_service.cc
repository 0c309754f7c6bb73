#include "master/rpc_service.h"

#include <algorithm>
#include <deque>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "common/tenant.h"
#include "http/fast_json.h"
#include "http/json_body.h"

namespace mooncake::master {
namespace {

using nlohmann::json;

absl::Status FieldError(std::string_view field, std::string_view expected) {
  return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("'{}' must be {}", field, expected));
}

absl::Status RequireObject(const json& body) {
  if (!body.is_object()) {
    return MakeError(ErrorCode::INVALID_PARAMS, "request body must be a JSON object");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> StringField(const json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || !it->is_string()) return FieldError(field, "a string");
  return it->get<std::string>();
}

absl::StatusOr<uint64_t> UintField(const json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || !it->is_number_unsigned()) {
    return FieldError(field, "a non-negative integer");
  }
  return it->get<uint64_t>();
}

absl::StatusOr<bool> BoolField(const json& body, std::string_view field, bool fallback) {
  auto it = body.find(field);
  if (it == body.end()) return fallback;
  if (!it->is_boolean()) return FieldError(field, "true or false");
  return it->get<bool>();
}

// A JSON array of strings, at most `limit` long.
absl::StatusOr<std::vector<std::string>> StringList(const json& body, std::string_view field,
                                                    size_t limit) {
  auto it = body.find(field);
  if (it == body.end()) return FieldError(field, "an array of strings");
  if (absl::Status bounded = http::CheckBatch(*it, field, limit); !bounded.ok()) return bounded;
  std::vector<std::string> out;
  out.reserve(it->size());
  for (const json& item : *it) {
    if (!item.is_string()) return FieldError(field, "an array of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

absl::StatusOr<ReplicateConfig> ParseReplicateConfig(const json& body) {
  ReplicateConfig config;
  auto it = body.find("config");
  if (it == body.end() || it->is_null()) return config;
  if (!it->is_object()) return FieldError("config", "an object");
  const json& c = *it;
  if (c.contains("replica_num")) {
    absl::StatusOr<uint64_t> n = UintField(c, "replica_num");
    if (!n.ok()) return n.status();
    if (*n > UINT32_MAX) return FieldError("replica_num", "at most 4294967295");
    config.replica_num = static_cast<uint32_t>(*n);
  }
  absl::StatusOr<bool> soft = BoolField(c, "with_soft_pin", false);
  absl::StatusOr<bool> hard = BoolField(c, "with_hard_pin", false);
  if (!soft.ok()) return soft.status();
  if (!hard.ok()) return hard.status();
  config.with_soft_pin = *soft;
  config.with_hard_pin = *hard;
  absl::StatusOr<bool> upsert = BoolField(c, "upsert", false);
  if (!upsert.ok()) return upsert.status();
  config.upsert = *upsert;
  if (c.contains("soft_pin_action")) {
    absl::StatusOr<std::string> action = StringField(c, "soft_pin_action");
    if (!action.ok()) return action.status();
    if (*action == "preserve") {
      config.soft_pin_action = SoftPinAction::kPreserve;
    } else if (*action == "enable") {
      config.soft_pin_action = SoftPinAction::kEnable;
    } else if (*action == "disable") {
      config.soft_pin_action = SoftPinAction::kDisable;
    } else {
      return FieldError("soft_pin_action", "\"preserve\", \"enable\" or \"disable\"");
    }
  }
  if (c.contains("soft_pin_ttl_ms") && !c["soft_pin_ttl_ms"].is_null()) {
    absl::StatusOr<uint64_t> ttl = UintField(c, "soft_pin_ttl_ms");
    if (!ttl.ok()) return ttl.status();
    // Beyond a century is forever for a cache; capping keeps the deadline arithmetic in range.
    config.soft_pin_ttl = absl::Milliseconds(std::min<uint64_t>(*ttl, uint64_t{1} << 41));
  }
  if (c.contains("preferred_segments")) {
    absl::StatusOr<std::vector<std::string>> preferred = StringList(c, "preferred_segments", 64);
    if (!preferred.ok()) return preferred.status();
    config.preferred_segments = *std::move(preferred);
  }
  if (c.contains("preferred_segment")) {
    absl::StatusOr<std::string> one = StringField(c, "preferred_segment");
    if (!one.ok()) return one.status();
    if (!one->empty()) config.preferred_segments.insert(config.preferred_segments.begin(), *one);
  }
  return config;
}

// The tenant a request names: its "tenant_id" member, absent (or null) for the default tenant.
absl::StatusOr<std::string> TenantIn(const json& body) {
  auto it = body.find("tenant_id");
  if (it == body.end() || it->is_null()) return std::string(kDefaultTenant);
  if (!it->is_string()) return FieldError("tenant_id", "a string");
  if (absl::Status valid = ValidateTenantId(it->get_ref<const std::string&>()); !valid.ok()) {
    return valid;
  }
  return it->get<std::string>();
}

// The keys of `tenant` as the master keeps them (common/tenant.h): the default tenant's as they
// are, another's rewritten into `owned` (a deque: the views of earlier keys stay valid). A key of
// the default tenant may not begin with NUL, which begins the keys of every other tenant.
absl::Status QualifyKeys(std::string_view tenant, std::vector<std::string_view>& keys,
                         std::deque<std::string>& owned) {
  if (tenant == kDefaultTenant) {
    for (std::string_view key : keys) {
      if (!key.empty() && key.front() == '\0') {
        return MakeError(ErrorCode::INVALID_KEY, "a key may not begin with a NUL character");
      }
    }
    return absl::OkStatus();
  }
  for (std::string_view& key : keys) key = owned.emplace_back(QualifyKey(tenant, key));
  return absl::OkStatus();
}

// An owner's index, as MountSegment carries it: [[key, offset, size, put_id], ...].
absl::StatusOr<std::vector<IndexEntry>> ParseIndex(const json& index) {
  if (!index.is_array()) return FieldError("index", "an array of [key, offset, size, put_id]");
  std::vector<IndexEntry> out;
  out.reserve(index.size());
  for (const json& item : index) {
    if (!item.is_array() || item.size() != 4 || !item[0].is_string() ||
        !item[1].is_number_unsigned() || !item[2].is_number_unsigned() ||
        !item[3].is_number_unsigned()) {
      return FieldError(fmt::format("index[{}]", out.size()),
                        "[key, offset, size, put_id]: a string and three non-negative integers");
    }
    out.push_back(IndexEntry{item[0].get<std::string>(), item[1].get<uint64_t>(),
                             item[2].get<uint64_t>(), item[3].get<uint64_t>()});
  }
  return out;
}

json ChangesJson(const std::vector<IndexChange>& changes) {
  json out = json::array();
  for (const IndexChange& change : changes) {
    if (change.add) {
      out.push_back(json::array({change.seq, "add", change.entry.key, change.entry.offset,
                                 change.entry.size, change.entry.put_id}));
    } else {
      out.push_back(json::array({change.seq, "drop", change.entry.offset}));
    }
  }
  return out;
}

json ErrorEntry(const absl::Status& status) {
  return json{{"code", static_cast<int>(ErrorCodeOf(status))},
              {"message", std::string(status.message())}};
}

// `value` as a JSON string, quoted and escaped.
std::string JsonString(std::string_view value) { return http::DumpJson(json(value)); }

// `value` as a JSON string: as it is when it needs no escape, else escaped (leniently, for text
// that is not UTF-8, as DumpJson does).
void AppendString(std::string& out, std::string_view value) {
  if (!http::AppendJsonString(out, value)) out += JsonString(value);
}

// The per-key answers are written as text straight into the answer (KeyResults), not built as
// JSON documents or strings per key: a batch of 128 keys would otherwise cost several hundred
// allocations, most of the master's time for a batch call.
void AppendLocations(std::string& out, const ReplicaLocations& locations, uint64_t size) {
  out += '[';
  for (size_t i = 0; i < locations.size(); ++i) {
    const ReplicaLocation& location = locations[i];
    absl::StrAppend(&out, i == 0 ? "{\"address\":" : ",{\"address\":", location.address,
                    ",\"incarnation\":", location.incarnation, ",\"segment\":");
    AppendString(out, location.segment);
    absl::StrAppend(&out, ",\"size\":", size, "}");
  }
  out += ']';
}

void AppendReplicaList(std::string& out, const ReplicaList& list) {
  absl::StrAppend(&out, "\"lease_id\":", list.lease_id,
                  ",\"lease_ms\":", absl::ToInt64Milliseconds(list.lease), ",\"replicas\":");
  AppendLocations(out, list.replicas, list.size);
  absl::StrAppend(&out, ",\"size\":", list.size);
}

// A per-key call's request. The members every call shares, and the leases it releases, are read
// with simdjson (fast_json.h: the keys of a batch are most of a body); any other member is kept in
// `rest` as nlohmann JSON for the call's own parser. The keys are views of the parsed document
// (or of `owned`, for another tenant's): no key is copied.
struct Request {
  http::FastJsonDocument document;
  std::string client_id;
  std::string tenant = std::string(kDefaultTenant);
  std::vector<std::string_view> keys;
  std::vector<LeaseRelease> releases;
  std::deque<std::string> owned;
  // PutStart's sizes: "sizes" (one per key) or "size" (every key's), read with the keys since a
  // batch has as many; checked by PutStart.
  struct Sizes {
    bool given = false;
    bool valid = false;  // "sizes": an array of uint64; "size": a uint64
    std::vector<uint64_t> values;
  };
  Sizes sizes, size;
  bool batch = false;
  json rest = json::object();
};

// Reads "sizes" (an array) or "size" (one number) into `out`; what is wrong is left to its user.
void ReadSizes(simdjson::dom::element value, bool array, Request::Sizes& out) {
  out = Request::Sizes{};
  out.given = true;
  uint64_t n = 0;
  if (!array) {
    out.valid = value.get_uint64().get(n) == simdjson::SUCCESS;
    if (out.valid) out.values.push_back(n);
    return;
  }
  simdjson::dom::array items;
  if (value.get_array().get(items) != simdjson::SUCCESS) return;
  out.values.reserve(items.size());
  out.valid = true;
  for (simdjson::dom::element item : items) {
    out.valid = out.valid && item.get_uint64().get(n) == simdjson::SUCCESS;
    out.values.push_back(n);
  }
}

// An array of strings of at most `limit` entries, into `out` (views of the document).
absl::Status ReadStrings(simdjson::dom::element value, std::string_view field, size_t limit,
                         std::vector<std::string_view>& out) {
  simdjson::dom::array items;
  if (value.get_array().get(items) != simdjson::SUCCESS) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("'{}' must be an array", field));
  }
  if (absl::Status bounded = http::CheckBatchSize(items.size(), field, limit); !bounded.ok()) {
    return bounded;
  }
  out.clear();
  out.reserve(items.size());
  for (simdjson::dom::element item : items) {
    std::string_view text;
    if (item.get_string().get(text) != simdjson::SUCCESS) {
      return FieldError(field, "an array of strings");
    }
    out.emplace_back(text);
  }
  return absl::OkStatus();
}

// "release_leases": {"keys": [...], "lease_ids": [...]} (the ids GetReplicaList answered).
absl::Status ReadReleases(simdjson::dom::element value, size_t limit,
                          std::vector<LeaseRelease>& out) {
  simdjson::dom::object releases;
  if (value.get_object().get(releases) != simdjson::SUCCESS) {
    return FieldError("release_leases", "an object");
  }
  std::vector<std::string_view> keys;
  simdjson::dom::element keys_value, ids_value;
  if (releases["keys"].get(keys_value) != simdjson::SUCCESS) {
    return FieldError("keys", "an array of strings");
  }
  if (absl::Status s = ReadStrings(keys_value, "keys", limit, keys); !s.ok()) return s;
  simdjson::dom::array ids;
  if (releases["lease_ids"].get(ids_value) != simdjson::SUCCESS ||
      ids_value.get_array().get(ids) != simdjson::SUCCESS || ids.size() != keys.size()) {
    return FieldError("release_leases.lease_ids", "an array as long as release_leases.keys");
  }
  out.clear();
  out.reserve(keys.size());
  size_t i = 0;
  for (simdjson::dom::element id : ids) {
    uint64_t lease_id = 0;
    if (id.get_uint64().get(lease_id) != simdjson::SUCCESS || lease_id > UINT32_MAX) {
      return FieldError("release_leases.lease_ids", "32-bit unsigned integers");
    }
    out.push_back(LeaseRelease{keys[i++], static_cast<uint32_t>(lease_id)});
  }
  return absl::OkStatus();
}

absl::Status ParseRequest(std::string_view text, bool with_client, bool batch, size_t limit,
                          Request& request) {
  if (absl::Status parsed = request.document.Parse(text); !parsed.ok()) return parsed;
  simdjson::dom::object body;
  if (request.document.root().get_object().get(body) != simdjson::SUCCESS) {
    return MakeError(ErrorCode::INVALID_PARAMS, "request body must be a JSON object");
  }
  request.batch = batch;
  bool have_client = false, have_keys = false;
  // A member given twice counts as its last, as nlohmann reads it.
  for (simdjson::dom::key_value_pair member : body) {
    const std::string_view name = member.key;
    if (with_client && name == "client_id") {
      std::string_view client;
      if (member.value.get_string().get(client) != simdjson::SUCCESS) {
        return FieldError("client_id", "a string");
      }
      request.client_id = std::string(client);
      have_client = true;
    } else if (batch && name == "keys") {
      if (absl::Status s = ReadStrings(member.value, "keys", limit, request.keys); !s.ok()) {
        return s;
      }
      have_keys = true;
    } else if (!batch && name == "key") {
      std::string_view key;
      if (member.value.get_string().get(key) != simdjson::SUCCESS) {
        return FieldError("key", "a string");
      }
      request.keys.assign(1, key);
      have_keys = true;
    } else if (name == "tenant_id") {
      std::string_view tenant;
      if (member.value.is_null()) {
        tenant = kDefaultTenant;
      } else if (member.value.get_string().get(tenant) != simdjson::SUCCESS) {
        return FieldError("tenant_id", "a string");
      }
      if (absl::Status valid = ValidateTenantId(tenant); !valid.ok()) return valid;
      request.tenant = std::string(tenant);
    } else if (name == "release_leases") {
      if (absl::Status s = ReadReleases(member.value, limit, request.releases); !s.ok()) return s;
    } else if (name == "sizes" || name == "size") {
      ReadSizes(member.value, name == "sizes", name == "sizes" ? request.sizes : request.size);
    } else {
      // Small members (config, force): their text again, for nlohmann.
      request.rest[std::string(name)] = json::parse(simdjson::minify(member.value));
    }
  }
  if (with_client && !have_client) return FieldError("client_id", "a string");
  if (!have_keys)
    return batch ? FieldError("keys", "an array of strings") : FieldError("key", "a string");
  if (absl::Status s = QualifyKeys(request.tenant, request.keys, request.owned); !s.ok()) return s;
  if (request.tenant != kDefaultTenant) {
    for (LeaseRelease& release : request.releases) {
      release.key = request.owned.emplace_back(QualifyKey(request.tenant, release.key));
    }
  }
  return absl::OkStatus();
}

// Leases a client's reads no longer need, which any call may carry:
// "release_leases": {"keys": [...], "lease_ids": [...]} (the ids GetReplicaList answered).
absl::Status ReleaseLeasesIn(MasterService& service, const json& body, size_t limit) {
  auto it = body.find("release_leases");
  if (it == body.end()) return absl::OkStatus();
  absl::StatusOr<std::string> tenant = TenantIn(body);
  if (!tenant.ok()) return tenant.status();
  if (!it->is_object()) return FieldError("release_leases", "an object");
  absl::StatusOr<std::vector<std::string>> keys = StringList(*it, "keys", limit);
  if (!keys.ok()) return keys.status();
  auto ids = it->find("lease_ids");
  if (ids == it->end() || !ids->is_array() || ids->size() != keys->size()) {
    return FieldError("release_leases.lease_ids", "an array as long as release_leases.keys");
  }
  std::vector<LeaseRelease> releases;
  releases.reserve(keys->size());
  for (size_t i = 0; i < keys->size(); ++i) {
    const json& id = (*ids)[i];
    if (!id.is_number_unsigned() || id.get<uint64_t>() > UINT32_MAX) {
      return FieldError("release_leases.lease_ids", "32-bit unsigned integers");
    }
    (*keys)[i] = QualifyKey(*tenant, (*keys)[i]);
    releases.push_back(LeaseRelease{(*keys)[i], id.get<uint32_t>()});
  }
  service.ReleaseLeases(releases);
  return absl::OkStatus();
}

// The answer of a per-key call, written as its results are made, in key order. The batch route
// answers {"results":[{"code":0,...members...}, {"code":N,"message":...}, ...]}; the single-key
// route answers the members of its one result as an object, or its error.
class KeyResults {
 public:
  explicit KeyResults(size_t keys) { out_.reserve(32 + 64 * keys); }

  // A successful result; `members` appends its members (without braces; none is fine).
  template <typename F>
  void Ok(F&& members) {
    out_ += count_++ == 0 ? "{\"code\":0" : ",{\"code\":0";
    const size_t mark = out_.size();
    out_ += ',';
    members(out_);
    if (out_.size() == mark + 1) out_.pop_back();
    if (count_ == 1) first_members_ = {mark + 1, std::max(mark + 1, out_.size())};
    out_ += '}';
  }
  void Error(const absl::Status& status) {
    if (count_++ > 0) out_ += ',';
    out_ += http::DumpJson(ErrorEntry(status));
    if (count_ == 1) first_error_ = status;
  }
  // Each value: members(out, value) if it is one, its status if not.
  template <typename T, typename Members>
  void AddEach(const std::vector<absl::StatusOr<T>>& values, Members members) {
    for (const absl::StatusOr<T>& value : values) {
      if (value.ok()) {
        Ok([&](std::string& out) { members(out, *value); });
      } else {
        Error(value.status());
      }
    }
  }
  void AddEach(const std::vector<absl::Status>& statuses) {
    for (const absl::Status& status : statuses) {
      if (status.ok()) {
        Ok([](std::string&) {});
      } else {
        Error(status);
      }
    }
  }

  http::HttpResponse Batch() {
    std::string body;
    body.reserve(out_.size() + 14);
    body += "{\"results\":[";
    body += out_;
    body += "]}";
    return http::HttpResponse{200, "application/json", std::move(body)};
  }
  // REQUIRES: a result was added.
  http::HttpResponse Single() {
    if (!first_error_.ok()) return http::HttpResponse::FromStatus(first_error_);
    std::string body = "{";
    body.append(out_, first_members_.first, first_members_.second - first_members_.first);
    body += '}';
    return http::HttpResponse{200, "application/json", std::move(body)};
  }

 private:
  std::string out_;
  size_t count_ = 0;
  absl::Status first_error_;
  std::pair<size_t, size_t> first_members_;  // where the first result's members are in out_
};

// Registers the single-key and batch routes of one per-key call. `run` handles a batch and adds
// one result per key to `out`; an error it returns (a malformed request) fails the call as a
// whole.
using BatchRunner =
    std::function<absl::Status(const json& body, const Request& request, KeyResults& out)>;

void RegisterPerKey(http::HttpServer& server, MasterService& service, const std::string& method,
                    bool with_client, BatchRunner run) {
  const size_t limit = service.config().max_batch_keys;
  auto route = [&service, run, with_client, limit](bool batch) {
    return [&service, run, with_client, limit, batch](const http::HttpRequest& http) {
      Request request;
      if (absl::Status s = ParseRequest(http.body, with_client, batch, limit, request); !s.ok()) {
        return http::HttpResponse::FromStatus(s);
      }
      if (!request.releases.empty()) service.ReleaseLeases(request.releases);
      KeyResults results(request.keys.size());
      if (absl::Status s = run(request.rest, request, results); !s.ok()) {
        return http::HttpResponse::FromStatus(s);
      }
      return batch ? results.Batch() : results.Single();
    };
  };
  server.Route("POST", "/v1/" + method, route(false));
  server.Route("POST", "/v1/Batch" + method, route(true));
}

}  // namespace

void RegisterRpcRoutes(http::HttpServer& server, MasterService& service) {
  server.RouteJson(
      "POST", "/v1/MountSegment", [&service](const json& body) -> absl::StatusOr<json> {
        if (absl::Status object = RequireObject(body); !object.ok()) return object;
        absl::StatusOr<std::string> client = StringField(body, "client_id");
        if (!client.ok()) return client.status();
        auto segment = body.find("segment");
        if (segment == body.end() || !segment->is_object())
          return FieldError("segment", "an object");
        absl::StatusOr<std::string> name = StringField(*segment, "name");
        absl::StatusOr<uint64_t> base = UintField(*segment, "base");
        absl::StatusOr<uint64_t> size = UintField(*segment, "size");
        absl::StatusOr<uint64_t> incarnation = segment->contains("incarnation")
                                                   ? UintField(*segment, "incarnation")
                                                   : absl::StatusOr<uint64_t>(0);
        for (const absl::Status& s :
             {name.status(), base.status(), size.status(), incarnation.status()}) {
          if (!s.ok()) return s;
        }
        if (auto index = body.find("index"); index != body.end()) {
          // The owner keeps an index of its objects (loss-free recovery).
          absl::StatusOr<std::vector<IndexEntry>> entries = ParseIndex(*index);
          if (!entries.ok()) return entries.status();
          absl::StatusOr<uint64_t> staged =
              body.contains("staged") ? UintField(body, "staged") : absl::StatusOr<uint64_t>(0);
          if (!staged.ok()) return staged.status();
          absl::StatusOr<uint64_t> mount_id = service.MountIndexedSegment(
              *client, *name, *base, *size, *incarnation, *std::move(entries), *staged);
          if (!mount_id.ok()) return mount_id.status();
          return json{{"mount_id", *mount_id}};
        }
        absl::Status mounted = service.MountSegment(*client, *name, *base, *size, *incarnation);
        if (!mounted.ok()) return mounted;
        return json::object();
      });
  server.RouteJson(
      "POST", "/v1/StageSegmentIndex", [&service](const json& body) -> absl::StatusOr<json> {
        if (absl::Status object = RequireObject(body); !object.ok()) return object;
        absl::StatusOr<std::string> client = StringField(body, "client_id");
        absl::StatusOr<std::string> name = StringField(body, "segment");
        absl::StatusOr<bool> first = BoolField(body, "first", false);
        for (const absl::Status& s : {client.status(), name.status(), first.status()}) {
          if (!s.ok()) return s;
        }
        auto index = body.find("index");
        if (index == body.end())
          return FieldError("index", "an array of [key, offset, size, put_id]");
        absl::StatusOr<std::vector<IndexEntry>> entries = ParseIndex(*index);
        if (!entries.ok()) return entries.status();
        absl::StatusOr<uint64_t> staged =
            service.StageSegmentIndex(*client, *name, *first, *std::move(entries));
        if (!staged.ok()) return staged.status();
        return json{{"staged", *staged}};
      });
  server.RouteJson(
      "POST", "/v1/SyncSegmentIndex", [&service](const json& body) -> absl::StatusOr<json> {
        if (absl::Status object = RequireObject(body); !object.ok()) return object;
        absl::StatusOr<std::string> client = StringField(body, "client_id");
        absl::StatusOr<std::string> name = StringField(body, "segment");
        absl::StatusOr<uint64_t> mount_id = UintField(body, "mount_id");
        absl::StatusOr<uint64_t> acked = UintField(body, "acked");
        absl::StatusOr<uint64_t> wait_ms =
            body.contains("wait_ms") ? UintField(body, "wait_ms") : absl::StatusOr<uint64_t>(0);
        for (const absl::Status& s : {client.status(), name.status(), mount_id.status(),
                                      acked.status(), wait_ms.status()}) {
          if (!s.ok()) return s;
        }
        if (*wait_ms > 10000) return FieldError("wait_ms", "at most 10000");
        absl::StatusOr<IndexSync> sync = service.SyncIndex(
            *client, *name, *mount_id, *acked, absl::Milliseconds(static_cast<int64_t>(*wait_ms)));
        if (!sync.ok()) return sync.status();
        return json{{"mount_id", sync->mount_id}, {"changes", ChangesJson(sync->changes)}};
      });
  server.RouteJson("POST", "/v1/UnmountSegment",
                   [&service](const json& body) -> absl::StatusOr<json> {
                     if (absl::Status object = RequireObject(body); !object.ok()) return object;
                     absl::StatusOr<std::string> client = StringField(body, "client_id");
                     absl::StatusOr<std::string> name = StringField(body, "name");
                     if (!client.ok()) return client.status();
                     if (!name.ok()) return name.status();
                     absl::Status gone = service.UnmountSegment(*client, *name);
                     if (!gone.ok()) return gone;
                     return json::object();
                   });
  server.RouteJson("POST", "/v1/Heartbeat", [&service](const json& body) -> absl::StatusOr<json> {
    if (absl::Status object = RequireObject(body); !object.ok()) return object;
    absl::StatusOr<std::string> client = StringField(body, "client_id");
    if (!client.ok()) return client.status();
    if (client->empty() || client->size() > 256) return FieldError("client_id", "1 to 256 bytes");
    std::vector<std::string> segments;
    if (body.contains("segments")) {
      absl::StatusOr<std::vector<std::string>> listed = StringList(body, "segments", 64);
      if (!listed.ok()) return listed.status();
      segments = *std::move(listed);
    }
    if (absl::Status s = ReleaseLeasesIn(service, body, service.config().max_batch_keys); !s.ok()) {
      return s;
    }
    HeartbeatResult result = service.Heartbeat(*client, segments);
    // The liveness TTL lets every client heartbeat often enough for this master's setting.
    return json{
        {"remount", result.remount},
        {"epoch", result.epoch},
        {"client_live_ttl_ms", absl::ToInt64Milliseconds(service.config().client_live_ttl)}};
  });
  server.RouteJson("POST", "/v1/ListSegments", [&service](const json&) -> absl::StatusOr<json> {
    json segments = json::array();
    for (const SegmentInfo& info : service.ListSegments()) {
      segments.push_back({{"name", info.name},
                          {"base", info.base},
                          {"size", info.size},
                          {"used", info.used},
                          {"client_id", info.client_id},
                          {"incarnation", info.incarnation}});
    }
    return json{{"segments", std::move(segments)}};
  });
  server.RouteJson(
      "POST", "/v1/RemoveByRegex", [&service](const json& body) -> absl::StatusOr<json> {
        if (absl::Status object = RequireObject(body); !object.ok()) return object;
        absl::StatusOr<std::string> regex = StringField(body, "regex");
        if (!regex.ok()) return regex.status();
        absl::StatusOr<std::string> tenant = TenantIn(body);
        if (!tenant.ok()) return tenant.status();
        if (absl::Status s = ReleaseLeasesIn(service, body, service.config().max_batch_keys);
            !s.ok()) {
          return s;
        }
        absl::StatusOr<uint64_t> removed = service.RemoveByRegex(*regex, *tenant);
        if (!removed.ok()) return removed.status();
        return json{{"removed", *removed}};
      });
  server.RouteJson("POST", "/v1/RemoveAll", [&service](const json& body) -> absl::StatusOr<json> {
    if (!body.is_object()) return json{{"removed", service.RemoveAll()}};
    absl::StatusOr<std::string> tenant = TenantIn(body);
    if (!tenant.ok()) return tenant.status();
    if (absl::Status s = ReleaseLeasesIn(service, body, service.config().max_batch_keys); !s.ok()) {
      return s;
    }
    return json{{"removed", service.RemoveAll(*tenant)}};
  });

  RegisterPerKey(
      server, service, "PutStart", /*with_client=*/true,
      [&service](const json& body, const Request& request, KeyResults& out) -> absl::Status {
        absl::StatusOr<ReplicateConfig> config = ParseReplicateConfig(body);
        if (!config.ok()) return config.status();
        // Sizes: "sizes", one per key, or "size" for every key.
        const Request::Sizes& sizes = request.sizes;
        if (sizes.given && (sizes.values.size() != request.keys.size() ||
                            (!sizes.valid && sizes.values.empty()))) {
          return FieldError("sizes", "an array as long as 'keys'");
        }
        std::vector<PutItem> items;
        items.reserve(request.keys.size());
        for (size_t i = 0; i < request.keys.size(); ++i) {
          if (sizes.given ? !sizes.valid : !request.size.valid) {
            return sizes.given ? FieldError("sizes", "an array of non-negative integers")
                               : FieldError("size", "a non-negative integer");
          }
          items.push_back(PutItem{std::string(request.keys[i]),
                                  sizes.given ? sizes.values[i] : request.size.values[0]});
        }
        std::vector<absl::StatusOr<ReplicaLocations>> placed =
            service.PutStart(request.client_id, items, *config);
        for (size_t i = 0; i < placed.size(); ++i) {
          if (!placed[i].ok()) {
            out.Error(placed[i].status());
            continue;
          }
          // The size of each replica is the object's.
          out.Ok([&](std::string& members) {
            members += "\"replicas\":";
            AppendLocations(members, *placed[i], items[i].size);
          });
        }
        return absl::OkStatus();
      });
  RegisterPerKey(server, service, "PutEnd", true,
                 [&service](const json&, const Request& request, KeyResults& out) {
                   out.AddEach(service.PutEnd(request.client_id, request.keys));
                   return absl::OkStatus();
                 });
  RegisterPerKey(server, service, "PutRevoke", true,
                 [&service](const json&, const Request& request, KeyResults& out) {
                   out.AddEach(service.PutRevoke(request.client_id, request.keys));
                   return absl::OkStatus();
                 });
  RegisterPerKey(server, service, "GetReplicaList", false,
                 [&service](const json&, const Request& request, KeyResults& out) {
                   out.AddEach(service.GetReplicaList(request.keys), AppendReplicaList);
                   return absl::OkStatus();
                 });
  RegisterPerKey(server, service, "ExistKey", false,
                 [&service](const json&, const Request& request, KeyResults& out) {
                   out.AddEach(service.ExistKey(request.keys), [](std::string& members, bool yes) {
                     members += yes ? "\"exists\":true" : "\"exists\":false";
                   });
                   return absl::OkStatus();
                 });
  RegisterPerKey(server, service, "GetSize", false,
                 [&service](const json&, const Request& request, KeyResults& out) {
                   out.AddEach(service.GetSize(request.keys), [](std::string& members, uint64_t n) {
                     absl::StrAppend(&members, "\"size\":", n);
                   });
                   return absl::OkStatus();
                 });
  RegisterPerKey(server, service, "Remove", false,
                 [&service](const json& body, const Request& request, KeyResults& out) {
                   absl::StatusOr<bool> force = BoolField(body, "force", false);
                   if (!force.ok()) return force.status();
                   out.AddEach(service.Remove(request.keys, *force));
                   return absl::OkStatus();
                 });
}

}  // namespace mooncake::master
