#include "http/etcd_client.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "http/httplib_config.h"

namespace mooncake::http {
namespace {

using nlohmann::json;

// gRPC status codes etcd answers with that mean "this member cannot serve now, ask another".
constexpr int kGrpcDeadlineExceeded = 4;
constexpr int kGrpcUnavailable = 14;
constexpr int kGrpcNotFound = 5;
constexpr size_t kMaxAnswerBytes = 16u << 20;

void SetTimeouts(httplib::Client& http, absl::Duration timeout) {
  const int64_t micros = std::max<int64_t>(absl::ToInt64Microseconds(timeout), 1000);
  http.set_connection_timeout(static_cast<time_t>(micros / 1000000),
                              static_cast<time_t>(micros % 1000000));
  http.set_read_timeout(static_cast<time_t>(micros / 1000000),
                        static_cast<time_t>(micros % 1000000));
  http.set_write_timeout(static_cast<time_t>(micros / 1000000),
                         static_cast<time_t>(micros % 1000000));
}

absl::Status Malformed(std::string_view what, std::string_view detail) {
  return MakeError(ErrorCode::ETCD_OPERATION_ERROR,
                   fmt::format("malformed answer from etcd ({}): {}", what, detail));
}

// An int64 field of an etcd answer: the gateway writes 64-bit integers as strings, and leaves
// out fields whose value is 0.
absl::Status ReadInt64(const json& object, const char* name, int64_t* out) {
  *out = 0;
  auto it = object.find(name);
  if (it == object.end()) return absl::OkStatus();
  if (it->is_number_integer()) {
    *out = it->get<int64_t>();
    return absl::OkStatus();
  }
  if (it->is_string() && absl::SimpleAtoi(it->get_ref<const std::string&>(), out)) {
    return absl::OkStatus();
  }
  return Malformed(name, "not an integer");
}

absl::StatusOr<std::string> ReadBytes(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end()) return std::string();
  if (!it->is_string()) return Malformed(name, "not a string");
  std::string decoded;
  if (!absl::Base64Unescape(it->get_ref<const std::string&>(), &decoded)) {
    return Malformed(name, "not base64");
  }
  return decoded;
}

std::string Encode(std::string_view bytes) { return absl::Base64Escape(AsAbsl(bytes)); }

// The exclusive end of the range of keys that start with `prefix` (etcd's "range_end").
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

absl::StatusOr<std::vector<EtcdKeyValue>> ParseKvs(const json& answer) {
  std::vector<EtcdKeyValue> out;
  auto it = answer.find("kvs");
  if (it == answer.end()) return out;
  if (!it->is_array()) return Malformed("kvs", "not an array");
  for (const json& kv : *it) {
    absl::StatusOr<EtcdKeyValue> parsed = ParseEtcdKeyValue(kv);
    if (!parsed.ok()) return parsed.status();
    out.push_back(*std::move(parsed));
  }
  return out;
}

}  // namespace

absl::StatusOr<EtcdKeyValue> ParseEtcdKeyValue(const json& kv) {
  if (!kv.is_object()) return Malformed("kv", "not an object");
  EtcdKeyValue out;
  absl::StatusOr<std::string> key = ReadBytes(kv, "key");
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> value = ReadBytes(kv, "value");
  if (!value.ok()) return value.status();
  out.key = *std::move(key);
  out.value = *std::move(value);
  if (absl::Status s = ReadInt64(kv, "create_revision", &out.create_revision); !s.ok()) return s;
  if (absl::Status s = ReadInt64(kv, "mod_revision", &out.mod_revision); !s.ok()) return s;
  if (absl::Status s = ReadInt64(kv, "lease", &out.lease); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(std::string_view endpoints,
                                                               EtcdOptions options) {
  std::unique_ptr<EtcdClient> client(new EtcdClient(options));
  for (absl::string_view item : absl::StrSplit(AsAbsl(endpoints), absl::ByAnyChar(",;"))) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty()) continue;
    absl::StatusOr<std::pair<std::unique_ptr<HttpClient>, std::string>> parsed =
        HttpClient::ForUrl(std::string(item));
    if (!parsed.ok() || !parsed->second.empty()) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("etcd endpoint '{}' is not host:port", item));
    }
    Endpoint endpoint;
    endpoint.host = parsed->first->host();
    endpoint.port = parsed->first->port();
    client->names_.push_back(fmt::format("{}:{}", endpoint.host, endpoint.port));
    client->endpoints_.push_back(std::move(endpoint));
  }
  if (client->endpoints_.empty()) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("no etcd endpoint in '{}'", endpoints));
  }
  return client;
}

absl::StatusOr<HttpResult> EtcdClient::Post(size_t index, std::string_view path,
                                            const std::string& body) const {
  // cpp-httplib 0.11 cannot read a chunked body followed by trailer fields (it reports a read
  // error), and etcd's gateway sends a trailer with every error answer. So the status and the
  // body are taken as they arrive, and a read error after a complete JSON body is no error.
  const Endpoint& endpoint = endpoints_[index];
  httplib::Client http(endpoint.host, endpoint.port);
  SetTimeouts(http, options_.timeout);
  HttpResult result;
  httplib::Request request;
  request.method = "POST";
  request.path = std::string(path);
  request.body = body;
  request.set_header("Content-Type", "application/json");
  request.response_handler = [&result](const httplib::Response& response) {
    result.status = response.status;
    return true;
  };
  request.content_receiver = [&result](const char* data, size_t length, uint64_t, uint64_t) {
    result.body.append(data, length);
    return result.body.size() <= kMaxAnswerBytes;
  };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  if (!http.send(request, response, error)) {
    const bool complete =
        error == httplib::Error::Read && result.status != 0 && json::accept(result.body);
    if (!complete) {
      return MakeError(
          ErrorCode::ETCD_OPERATION_ERROR,
          fmt::format("etcd at {}: {}", names_[index],
                      result.body.size() > kMaxAnswerBytes ? std::string("an answer over 16 MiB")
                                                           : httplib::to_string(error)));
    }
  }
  return result;
}

absl::StatusOr<json> EtcdClient::Call(std::string_view path, const json& request) {
  const std::string body = request.dump();
  absl::Status last = MakeError(ErrorCode::ETCD_OPERATION_ERROR, "no etcd endpoint");
  // While etcd's members elect a raft leader (about a second after the leader member dies) the
  // live ones answer 503 "leader changed" or "no leader". A round in which a member answered so is
  // tried again after a pause, at most kElectionRounds times (0.1 + 0.2 + 0.4 s); a round in which
  // no member answered at all (etcd down) is not.
  constexpr int kElectionRounds = 3;
  for (int round = 0;; ++round) {
    bool electing = false;
    const size_t first = current_.load(std::memory_order_relaxed);
    for (size_t attempt = 0; attempt < endpoints_.size(); ++attempt) {
      const size_t index = (first + attempt) % endpoints_.size();
      absl::StatusOr<HttpResult> result = Post(index, path, body);
      if (!result.ok()) {
        last = result.status();
        continue;
      }
      json answer = json::parse(result->body, nullptr, /*allow_exceptions=*/false);
      if (answer.is_discarded() || !answer.is_object()) {
        last = Malformed(
            path, fmt::format("{} from {}: not a JSON object", result->status, names_[index]));
        continue;
      }
      if (result->status == 200) {
        current_.store(index, std::memory_order_relaxed);
        return answer;
      }
      // {"error": "...", "message": "...", "code": <gRPC code>}
      int64_t code = 0;
      (void)ReadInt64(answer, "code", &code);
      std::string message = answer.contains("message") && answer["message"].is_string()
                                ? answer["message"].get<std::string>()
                                : result->body.substr(0, 200);
      last = MakeError(code == kGrpcNotFound && absl::StrContains(message, "lease")
                           ? ErrorCode::LEASE_EXPIRED
                           : ErrorCode::ETCD_OPERATION_ERROR,
                       fmt::format("etcd at {} ({}): {}", names_[index], result->status, message));
      if (code != kGrpcUnavailable && code != kGrpcDeadlineExceeded && result->status < 500) {
        current_.store(index, std::memory_order_relaxed);
        return last;  // an answer about the request itself: another member would say the same
      }
      electing = true;
    }
    if (!electing || round >= kElectionRounds) return last;
    absl::SleepFor(absl::Milliseconds(100) * (1 << round));
  }
}

absl::StatusOr<int64_t> EtcdClient::LeaseGrant(absl::Duration ttl) {
  const int64_t seconds =
      std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(ttl, absl::Seconds(1))));
  absl::StatusOr<json> answer = Call("/v3/lease/grant", {{"TTL", std::to_string(seconds)}});
  if (!answer.ok()) return answer.status();
  int64_t id = 0;
  if (absl::Status s = ReadInt64(*answer, "ID", &id); !s.ok()) return s;
  if (id == 0) return Malformed("lease grant", "no lease id");
  return id;
}

absl::StatusOr<absl::Duration> EtcdClient::LeaseKeepAlive(int64_t lease) {
  absl::StatusOr<json> answer = Call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}});
  if (!answer.ok()) return answer.status();
  auto result = answer->find("result");
  if (result == answer->end() || !result->is_object()) {
    return Malformed("lease keepalive", "no result");
  }
  int64_t ttl = 0;
  if (absl::Status s = ReadInt64(*result, "TTL", &ttl); !s.ok()) return s;
  if (ttl <= 0) {
    return MakeError(ErrorCode::LEASE_EXPIRED, fmt::format("etcd lease {:x} has expired", lease));
  }
  return absl::Seconds(ttl);
}

absl::Status EtcdClient::LeaseRevoke(int64_t lease) {
  absl::StatusOr<json> answer = Call("/v3/lease/revoke", {{"ID", std::to_string(lease)}});
  if (!answer.ok() && ErrorCodeOf(answer.status()) != ErrorCode::LEASE_EXPIRED) {
    return answer.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<EtcdKeyValue>> EtcdClient::Get(std::string_view key,
                                                            int64_t* revision) {
  absl::StatusOr<json> answer = Call("/v3/kv/range", {{"key", Encode(key)}});
  if (!answer.ok()) return answer.status();
  if (revision != nullptr) {
    auto header = answer->find("header");
    if (header == answer->end() || !header->is_object()) return Malformed("range", "no header");
    if (absl::Status s = ReadInt64(*header, "revision", revision); !s.ok()) return s;
  }
  absl::StatusOr<std::vector<EtcdKeyValue>> kvs = ParseKvs(*answer);
  if (!kvs.ok()) return kvs.status();
  if (kvs->empty()) return std::optional<EtcdKeyValue>();
  if (kvs->front().key != key) return Malformed("range", "another key answered");
  return std::optional<EtcdKeyValue>(std::move(kvs->front()));
}

absl::StatusOr<std::vector<EtcdKeyValue>> EtcdClient::GetPrefix(std::string_view prefix) {
  absl::StatusOr<json> answer =
      Call("/v3/kv/range", {{"key", Encode(prefix)}, {"range_end", Encode(PrefixEnd(prefix))}});
  if (!answer.ok()) return answer.status();
  return ParseKvs(*answer);
}

absl::StatusOr<int64_t> EtcdClient::Put(std::string_view key, std::string_view value,
                                        int64_t lease) {
  json request = {{"key", Encode(key)}, {"value", Encode(value)}};
  if (lease != 0) request["lease"] = std::to_string(lease);
  absl::StatusOr<json> answer = Call("/v3/kv/put", request);
  if (!answer.ok()) return answer.status();
  auto header = answer->find("header");
  int64_t revision = 0;
  if (header == answer->end() || !header->is_object()) return Malformed("put", "no header");
  if (absl::Status s = ReadInt64(*header, "revision", &revision); !s.ok()) return s;
  return revision;
}

absl::StatusOr<bool> EtcdClient::Delete(std::string_view key) {
  absl::StatusOr<json> answer = Call("/v3/kv/deleterange", {{"key", Encode(key)}});
  if (!answer.ok()) return answer.status();
  int64_t deleted = 0;
  if (absl::Status s = ReadInt64(*answer, "deleted", &deleted); !s.ok()) return s;
  return deleted > 0;
}

absl::StatusOr<EtcdClient::CreateResult> EtcdClient::CreateIfAbsent(std::string_view key,
                                                                    std::string_view value,
                                                                    int64_t lease) {
  const std::string encoded = Encode(key);
  json put = {{"key", encoded}, {"value", Encode(value)}};
  if (lease != 0) put["lease"] = std::to_string(lease);
  const json request = {
      {"compare", json::array({{{"key", encoded},
                                {"target", "CREATE"},
                                {"result", "EQUAL"},
                                {"create_revision", "0"}}})},
      {"success", json::array({{{"requestPut", put}}, {{"requestRange", {{"key", encoded}}}}})},
      {"failure", json::array({{{"requestRange", {{"key", encoded}}}}})}};
  // Repeating the transaction is safe: if an earlier attempt created the key, this one finds it
  // with our value and lease.
  absl::StatusOr<json> answer = Call("/v3/kv/txn", request);
  if (!answer.ok()) return answer.status();
  CreateResult out;
  auto succeeded = answer->find("succeeded");
  if (succeeded != answer->end() && !succeeded->is_boolean()) {
    return Malformed("txn", "succeeded is not a boolean");
  }
  out.created = succeeded != answer->end() && succeeded->get<bool>();
  auto responses = answer->find("responses");
  if (responses == answer->end() || !responses->is_array() || responses->empty()) {
    return Malformed("txn", "no responses");
  }
  const json& last = responses->back();
  auto range = last.is_object() ? last.find("response_range") : last.end();
  if (!last.is_object() || range == last.end() || !range->is_object()) {
    return Malformed("txn", "no range response");
  }
  absl::StatusOr<std::vector<EtcdKeyValue>> kvs = ParseKvs(*range);
  if (!kvs.ok()) return kvs.status();
  if (kvs->empty()) {
    // Created and deleted again between the two operations of the transaction cannot happen
    // (a transaction is atomic); absent after a failed compare means the key vanished since.
    return MakeError(ErrorCode::ETCD_TRANSACTION_FAIL,
                     fmt::format("etcd key '{}' changed during the transaction", key));
  }
  out.kv = std::move(kvs->front());
  if (!out.created && out.kv.value == value && lease != 0 && out.kv.lease == lease) {
    out.created = true;  // an earlier attempt of ours went through
  }
  return out;
}

absl::StatusOr<bool> EtcdClient::DeleteIfCreatedAt(std::string_view key, int64_t create_revision) {
  const std::string encoded = Encode(key);
  const json request = {
      {"compare", json::array({{{"key", encoded},
                                {"target", "CREATE"},
                                {"result", "EQUAL"},
                                {"create_revision", std::to_string(create_revision)}}})},
      {"success", json::array({{{"requestDeleteRange", {{"key", encoded}}}}})}};
  absl::StatusOr<json> answer = Call("/v3/kv/txn", request);
  if (!answer.ok()) return answer.status();
  auto succeeded = answer->find("succeeded");
  return succeeded != answer->end() && succeeded->is_boolean() && succeeded->get<bool>();
}

absl::StatusOr<std::vector<EtcdEvent>> EtcdClient::Watch(std::string_view key,
                                                         int64_t start_revision,
                                                         absl::Duration timeout) {
  const std::string body =
      json{{"create_request",
            {{"key", Encode(key)}, {"start_revision", std::to_string(start_revision)}}}}
          .dump();
  const size_t index = current_.load(std::memory_order_relaxed);
  const Endpoint& endpoint = endpoints_[index];
  httplib::Client http(endpoint.host, endpoint.port);
  SetTimeouts(http, options_.timeout);
  const int64_t wait_us = std::max<int64_t>(absl::ToInt64Microseconds(timeout), 1000);
  http.set_read_timeout(static_cast<time_t>(wait_us / 1000000),
                        static_cast<time_t>(wait_us % 1000000));

  std::vector<EtcdEvent> events;
  absl::Status error;
  std::string pending;
  // The answer is a stream of JSON objects, one per line: {"result": {...}} or {"error": {...}}.
  auto on_line = [&](std::string_view line) -> bool {
    json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (message.is_discarded() || !message.is_object()) {
      error = Malformed("watch", "a line that is not a JSON object");
      return false;
    }
    if (message.contains("error")) {
      error = MakeError(ErrorCode::ETCD_OPERATION_ERROR,
                        fmt::format("etcd watch: {}", message["error"].dump()));
      return false;
    }
    auto result = message.find("result");
    if (result == message.end() || !result->is_object()) {
      error = Malformed("watch", "no result");
      return false;
    }
    int64_t compacted = 0;
    (void)ReadInt64(*result, "compact_revision", &compacted);
    if (compacted != 0 || (result->contains("canceled") && (*result)["canceled"] == true)) {
      error = MakeError(
          ErrorCode::ETCD_OPERATION_ERROR,
          fmt::format(
              "etcd watch of '{}' from revision {} was cancelled{}", key, start_revision,
              compacted != 0 ? fmt::format(" (compacted to {})", compacted) : std::string()));
      return false;
    }
    auto list = result->find("events");
    if (list == result->end()) return true;  // "created", or progress
    if (!list->is_array()) {
      error = Malformed("watch", "events is not an array");
      return false;
    }
    for (const json& e : *list) {
      if (!e.is_object() || !e.contains("kv")) {
        error = Malformed("watch", "an event without kv");
        return false;
      }
      absl::StatusOr<EtcdKeyValue> kv = ParseEtcdKeyValue(e["kv"]);
      if (!kv.ok()) {
        error = kv.status();
        return false;
      }
      EtcdEvent event;
      event.deleted = e.contains("type") && e["type"] == "DELETE";
      event.kv = *std::move(kv);
      events.push_back(std::move(event));
    }
    return events.empty();  // stop reading once something happened
  };
  httplib::Request request;
  request.method = "POST";
  request.path = "/v3/watch";
  request.body = body;
  request.set_header("Content-Type", "application/json");
  request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
    pending.append(data, length);
    if (pending.size() > kMaxAnswerBytes) {
      error = Malformed("watch", "a message over 16 MiB");
      return false;
    }
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      if (!on_line(line)) return false;
    }
    return true;
  };
  httplib::Response response;
  httplib::Error http_error = httplib::Error::Success;
  const bool completed = http.send(request, response, http_error);
  if (!error.ok()) return error;
  if (!events.empty()) return events;
  if (completed && response.status != 200) {
    return MakeError(
        ErrorCode::ETCD_OPERATION_ERROR,
        fmt::format("etcd at {} refused the watch ({})", names_[index], response.status));
  }
  if (http_error == httplib::Error::Connection) {
    // This member is down: the next call (or watch) tries the next one.
    current_.store((index + 1) % endpoints_.size(), std::memory_order_relaxed);
    return MakeError(ErrorCode::ETCD_OPERATION_ERROR,
                     fmt::format("etcd at {} cannot be reached", names_[index]));
  }
  return events;  // the timeout passed with no change
}

}  // namespace mooncake::http
