// The client's calls: its start and close, the puts, and the rest (exists, sizes, removes,
// segments). The gets are in client_reads.cc, the segment's lifecycle in client_segment.cc.
#include "client/client.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "absl/strings/str_format.h"
#include "client/client_internal.h"
#include "client/client_metrics.h"
#include "client/staging_buffer.h"
#include "common/error_code.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/random.h"
#include "common/strings.h"
#include "common/tenant.h"
#include "common/units.h"
#include "engine/transfer_engine.h"

namespace mooncake::client {
namespace {

using engine::TransferOp;
using engine::TransferRequest;
using internal::CountMismatch;
using internal::OnePartEach;
using internal::TotalSize;

// A random (version 4) UUID.
std::string RandomUuid() {
  std::array<uint8_t, 16> bytes{};
  RandomBytes(bytes.data(), bytes.size());
  bytes[6] = static_cast<uint8_t>((bytes[6] & 0x0f) | 0x40);
  bytes[8] = static_cast<uint8_t>((bytes[8] & 0x3f) | 0x80);
  std::string uuid;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) uuid += '-';
    absl::StrAppendFormat(&uuid, "%02x", bytes[i]);
  }
  return uuid;
}

// Appends the writes of `parts`, in order, to bytes [0, size) of the object at `replica`. (Reads go
// through Client::Scatter and ReadPieces.)
void AddWrites(const std::vector<Slice>& parts, engine::SegmentId segment, const Replica& replica,
               uint64_t size, bool unregistered, std::vector<TransferRequest>* requests) {
  uint64_t offset = 0;
  for (const Slice& part : parts) {
    if (offset == size) break;
    const uint64_t length = std::min(part.size, size - offset);
    if (length == 0) continue;
    requests->push_back(TransferRequest{TransferOp::kWrite, part.data, segment,
                                        replica.address + offset, length, replica.incarnation,
                                        unregistered});
    offset += length;
  }
}

}  // namespace

Client::Client(ClientConfig config) : config_(std::move(config)) {}

absl::Status Client::Closed() {
  return MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "the client is closed");
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(ClientConfig config) {
  if (absl::Status valid = ValidateConfig(config); !valid.ok()) return valid;
  if (std::optional<std::string> warning = UnreachableHostnameWarning(config)) {
    spdlog::warn("{}", *warning);
  }
  if (config.client_id.empty()) config.client_id = RandomUuid();
  std::unique_ptr<Client> client(new Client(std::move(config)));
  if (absl::Status started = client->Start(); !started.ok()) {
    (void)client->Close();
    return started;
  }
  return client;
}

absl::Status Client::Start() {
  if (absl::Status valid = ValidateTenantId(config_.tenant_id); !valid.ok()) return valid;
  http::HttpClientOptions http;
  http.timeout = config_.rpc_timeout;
  http.auth = config_.auth;
  absl::StatusOr<std::unique_ptr<MasterClient>> master =
      MasterClient::Create(config_.master_server_address, config_.client_id, http);
  if (!master.ok()) return master.status();
  master_ = *std::move(master);
  master_->SetTenant(config_.tenant_id);
  // Fail early, with a clear message, when the master is not there.
  absl::StatusOr<HeartbeatReply> hello = master_->Heartbeat();
  if (!hello.ok()) {
    return MakeError(ErrorCodeOf(hello.status()),
                     fmt::format("master at {} does not answer: {}", config_.master_server_address,
                                 hello.status().message()));
  }
  epoch_ = hello->epoch;
  heartbeat_interval_ = HeartbeatIntervalFor(*hello);

  engine::EngineConfig engine_config;
  engine_config.local_hostname = config_.local_hostname;
  engine_config.metadata_server = config_.metadata_server;
  engine_config.protocol = config_.protocol;
  engine_config.device_name = config_.device_name;
  engine_config.listen_address = config_.listen_address;
  engine_config.enable_shm = config_.enable_shm;
  engine_config.auth = config_.auth;
  engine_config.verbs = config_.verbs;
  absl::StatusOr<std::unique_ptr<engine::TransferEngine>> engine =
      engine::TransferEngine::Create(std::move(engine_config));
  if (!engine.ok()) return engine.status();
  engine_ = *std::move(engine);
  segment_name_ = engine_->segment_name();

  if (config_.local_buffer_size > 0) {
    local_buffer_ = MappedMemory(config_.local_buffer_size);
    char* buffer = local_buffer_.data();
    if (buffer == nullptr) {
      return MakeError(ErrorCode::INTERNAL_ERROR,
                       fmt::format("cannot map a local buffer of {}: {}",
                                   FormatByteSize(config_.local_buffer_size), strerror(errno)));
    }
    if (absl::Status s = engine_->RegisterMemory(buffer, config_.local_buffer_size); !s.ok()) {
      return s;
    }
    staging_ =
        std::make_unique<StagingBuffer>(static_cast<char*>(buffer), config_.local_buffer_size);
  }
  if (config_.global_segment_size > 0) {
    absl::StatusOr<void*> segment = engine_->AllocateSharedMemory(config_.global_segment_size);
    if (!segment.ok()) return segment.status();
    segment_ = *segment;
    if (absl::Status s = engine_->RegisterMemory(segment_, config_.global_segment_size); !s.ok()) {
      return s;
    }
    if (absl::Status s = Mount(); !s.ok()) return s;
  }
  RegisterClientMetrics();
  if (segment_ != nullptr) RegisterSegmentMetrics();
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  if (segment_ != nullptr) index_sync_ = std::thread([this] { IndexSyncLoop(); });
  if (segment_ != nullptr && config_.prefault_segment) {
    prefault_ = std::thread([this] { Prefault(); });
  }
  return absl::OkStatus();
}

absl::Status Client::Close() {
  absl::WriterMutexLock lock(&state_mu_);
  if (closed_) return absl::OkStatus();
  closed_ = true;
  stop_heartbeat_.Notify();
  if (heartbeat_.joinable()) heartbeat_.join();
  absl::Status status;
  if (segment_ != nullptr && master_ != nullptr) {
    // Also ends the index fetch the master is holding open. Under index_mu_: no mount after.
    absl::MutexLock index_lock(&index_mu_);
    status = master_->UnmountSegment(segment_name_);
    // Not mounted (any more): the master forgot it (restart, or declared us dead); that is fine.
    if (ErrorCodeOf(status) == ErrorCode::SEGMENT_NOT_FOUND) status = absl::OkStatus();
    if (!status.ok()) spdlog::warn("unmounting segment {}: {}", segment_name_, status.message());
  }
  if (index_sync_.joinable()) index_sync_.join();
  if (prefault_.joinable()) prefault_.join();
  if (segment_ != nullptr) UnregisterSegmentMetrics();
  engine_.reset();     // stops serving peers before the memory goes
  segment_ = nullptr;  // the engine owned the segment's shared memory: unmapped with it
  staging_.reset();
  local_buffer_ = MappedMemory();
  return status;
}

Client::~Client() { (void)Close(); }

absl::Status Client::HealthCheck() {
  absl::ReaderMutexLock lock(&state_mu_);
  if (closed_) return Closed();
  return master_->Heartbeat().status();
}

absl::Status Client::RegisterBuffer(void* addr, size_t size) {
  absl::ReaderMutexLock lock(&state_mu_);
  if (closed_) return Closed();
  return engine_->RegisterMemory(addr, size);
}

absl::Status Client::UnregisterBuffer(void* addr) {
  absl::ReaderMutexLock lock(&state_mu_);
  if (closed_) return Closed();
  if ((addr == local_buffer_.data() && addr != nullptr) ||
      (addr == segment_ && segment_ != nullptr)) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     "that memory belongs to the client itself; it cannot be unregistered");
  }
  return engine_->UnregisterMemory(addr);
}

int Client::Distance(const std::string& segment) {
  if (segment == segment_name_) return 0;
  absl::StatusOr<engine::SegmentId> id = engine_->OpenSegment(segment);
  if (!id.ok()) return 3;
  const std::string transport = engine_->TransportFor(*id);
  if (transport == "memcpy") return 0;
  if (transport == "shm") return 1;
  return 2;
}

// ---- puts ----

std::vector<absl::Status> Client::PutLocked(absl::Span<const std::string> keys,
                                            absl::Span<const std::vector<Slice>> parts,
                                            const ReplicateConfig& config, bool upsert,
                                            bool unregistered) {
  std::vector<absl::Status> results(keys.size());
  if (parts.size() != keys.size()) {
    return CountMismatch<absl::Status>(keys.size(), parts.size(), "values");
  }
  // Keys that pass the local checks go to the master.
  std::vector<size_t> asked;
  std::vector<std::string> asked_keys;
  std::vector<uint64_t> sizes;
  asked.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint64_t size = TotalSize(parts[i]);
    if (size == 0) {
      results[i] =
          MakeError(ErrorCode::INVALID_PARAMS, fmt::format("the value of '{}' is empty", keys[i]));
      continue;
    }
    for (const Slice& part : parts[i]) {
      if (!unregistered && part.size > 0 && !engine_->IsRegistered(part.data, part.size)) {
        results[i] =
            MakeError(ErrorCode::INVALID_PARAMS,
                      fmt::format("the value of '{}' at {} ({} bytes) is not in registered memory",
                                  keys[i], part.data, part.size));
        break;
      }
    }
    if (!results[i].ok()) continue;
    asked.push_back(i);
    asked_keys.push_back(keys[i]);
    sizes.push_back(size);
  }
  if (asked.empty()) return results;

  ReplicateConfig placement = config;
  if (config.prefer_alloc_in_same_node && segment_ != nullptr) {
    placement.preferred_segments.insert(placement.preferred_segments.begin(), segment_name_);
  }
  std::vector<absl::StatusOr<std::vector<Replica>>> started =
      master_->PutStart(asked_keys, sizes, placement, upsert);

  // One transfer batch writes every replica of every key.
  std::vector<TransferRequest> requests;
  std::vector<size_t> first_request(asked.size() + 1, 0);
  std::vector<bool> writing(asked.size(), false);
  for (size_t a = 0; a < asked.size(); ++a) {
    first_request[a] = requests.size();
    const size_t i = asked[a];
    if (!started[a].ok()) {
      // Stored already: objects are immutable, and the caller's value is (by contract) the same.
      if (ErrorCodeOf(started[a].status()) != ErrorCode::OBJECT_ALREADY_EXISTS) {
        results[i] = started[a].status();
      }
      continue;
    }
    writing[a] = true;
    if (started[a]->empty()) {
      results[i] = MakeError(ErrorCode::INVALID_REPLICA, "the master placed no replica");
    }
    for (const Replica& replica : *started[a]) {
      absl::StatusOr<engine::SegmentId> segment = engine_->OpenSegment(replica.segment);
      if (!segment.ok() || replica.size < sizes[a]) {
        results[i] = segment.ok() ? MakeError(ErrorCode::INVALID_REPLICA, "replica too small")
                                  : segment.status();
        requests.resize(first_request[a]);
        break;
      }
      AddWrites(parts[i], *segment, replica, sizes[a], unregistered, &requests);
    }
  }
  first_request[asked.size()] = requests.size();

  std::vector<absl::Status> statuses;
  if (!requests.empty()) statuses = engine_->Submit(requests)->Wait();
  std::vector<std::string> ended, revoked;
  std::vector<size_t> ended_index;
  for (size_t a = 0; a < asked.size(); ++a) {
    if (!writing[a]) continue;
    const size_t i = asked[a];
    for (size_t r = first_request[a]; r < first_request[a + 1] && results[i].ok(); ++r) {
      if (!statuses[r].ok()) results[i] = statuses[r];
    }
    if (results[i].ok()) {
      ended.push_back(keys[i]);
      ended_index.push_back(i);
    } else {
      revoked.push_back(keys[i]);
    }
  }
  if (!revoked.empty()) {
    std::vector<absl::Status> revokes = master_->PutRevoke(revoked);
    for (size_t k = 0; k < revokes.size(); ++k) {
      if (!revokes[k].ok()) {
        spdlog::warn("revoking the failed put of '{}': {} (the master reclaims it later)",
                     revoked[k], revokes[k].message());
      }
    }
  }
  if (!ended.empty()) {
    std::vector<absl::Status> ends = master_->PutEnd(ended);
    for (size_t k = 0; k < ends.size(); ++k) results[ended_index[k]] = ends[k];
  }
  return results;
}

std::vector<absl::Status> Client::BatchPutParts(absl::Span<const std::string> keys,
                                                absl::Span<const std::vector<Slice>> parts,
                                                const ReplicateConfig& config) {
  CallRecord record(ClientOp::kPut);
  absl::ReaderMutexLock lock(&state_mu_);
  std::vector<absl::Status> results = closed_ ? std::vector<absl::Status>(keys.size(), Closed())
                                              : PutLocked(keys, parts, config, /*upsert=*/false);
  record.Keys(results, [&](size_t i) { return TotalSize(parts[i]); });
  return results;
}

std::vector<absl::Status> Client::BatchPutFrom(absl::Span<const std::string> keys,
                                               absl::Span<const Slice> values,
                                               const ReplicateConfig& config) {
  return BatchPutParts(keys, OnePartEach(values), config);  // PutLocked checks the counts
}

absl::Status Client::PutFrom(const std::string& key, Slice value, const ReplicateConfig& config) {
  return BatchPutFrom({&key, 1}, {&value, 1}, config)[0];
}

std::vector<absl::Status> Client::BatchPut(absl::Span<const std::string> keys,
                                           absl::Span<const std::string_view> values,
                                           const ReplicateConfig& config) {
  CallRecord record(ClientOp::kPut);
  std::vector<absl::Status> results = PutCopies(keys, values, config, /*upsert=*/false);
  record.Keys(results, [&](size_t i) { return values[i].size(); });
  return results;
}

std::vector<absl::Status> Client::BatchUpsert(absl::Span<const std::string> keys,
                                              absl::Span<const std::string_view> values,
                                              const ReplicateConfig& config) {
  CallRecord record(ClientOp::kUpsert);
  std::vector<absl::Status> results = PutCopies(keys, values, config, /*upsert=*/true);
  record.Keys(results, [&](size_t i) { return values[i].size(); });
  return results;
}

absl::Status Client::Upsert(const std::string& key, std::string_view value,
                            const ReplicateConfig& config) {
  return BatchUpsert({&key, 1}, {&value, 1}, config)[0];
}

std::vector<absl::Status> Client::BatchUpsertFrom(absl::Span<const std::string> keys,
                                                  absl::Span<const Slice> values,
                                                  const ReplicateConfig& config) {
  CallRecord record(ClientOp::kUpsert);
  absl::ReaderMutexLock lock(&state_mu_);
  std::vector<absl::Status> results =
      closed_ ? std::vector<absl::Status>(keys.size(), Closed())
              : PutLocked(keys, OnePartEach(values), config, /*upsert=*/true);
  record.Keys(results, [&](size_t i) { return values[i].size; });
  return results;
}

std::vector<absl::Status> Client::PutCopies(absl::Span<const std::string> keys,
                                            absl::Span<const std::string_view> values,
                                            const ReplicateConfig& config, bool upsert) {
  absl::ReaderMutexLock lock(&state_mu_);
  if (closed_) return std::vector<absl::Status>(keys.size(), Closed());
  std::vector<absl::Status> results(keys.size());
  if (values.size() != keys.size()) {
    return CountMismatch<absl::Status>(keys.size(), values.size(), "values");
  }
  if (!staging_) {
    // SPEC.md §5: with local_buffer_size 0 a copying put fails and stores nothing.
    return std::vector<absl::Status>(
        keys.size(),
        MakeError(ErrorCode::INVALID_PARAMS,
                  "local_buffer_size is 0, so copying puts are refused; use the zero-copy calls "
                  "on registered memory"));
  }
  if (!engine_->LocalNeedsRegistration()) {
    // Each value is written from where it is: one copy, and values larger than the local buffer
    // go too. (The transfers only read that memory.)
    std::vector<std::vector<Slice>> parts(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      parts[i].push_back(Slice{const_cast<char*>(values[i].data()), values[i].size()});
    }
    return PutLocked(keys, parts, config, upsert, /*unregistered=*/true);
  }
  // Stage as many values as fit, put them as one batch, release, go on.
  size_t next = 0;
  while (next < keys.size()) {
    std::vector<size_t> group;
    std::vector<StagingBuffer::Block> blocks;
    std::vector<std::vector<Slice>> parts;
    for (; next < keys.size(); ++next) {
      const uint64_t size = values[next].size();
      if (size == 0) {
        results[next] = MakeError(ErrorCode::INVALID_PARAMS,
                                  fmt::format("the value of '{}' is empty", keys[next]));
        continue;
      }
      if (!staging_->Fits(size)) {
        results[next] = MakeError(
            ErrorCode::BUFFER_OVERFLOW,
            fmt::format("the value of '{}' ({}) is larger than the local buffer ({})", keys[next],
                        FormatByteSize(size), FormatByteSize(staging_->capacity())));
        continue;
      }
      std::optional<StagingBuffer::Block> block =
          blocks.empty() ? staging_->Acquire(size) : staging_->TryAcquire(size);
      if (!block) break;
      std::memcpy(block->data, values[next].data(), size);
      blocks.push_back(*block);
      group.push_back(next);
      parts.push_back({Slice{block->data, size}});
    }
    if (group.empty()) continue;
    std::vector<std::string> group_keys;
    group_keys.reserve(group.size());
    for (size_t i : group) group_keys.push_back(keys[i]);
    std::vector<absl::Status> put = PutLocked(group_keys, parts, config, upsert);
    for (size_t k = 0; k < group.size(); ++k) results[group[k]] = put[k];
    for (const StagingBuffer::Block& block : blocks) staging_->Release(block);
  }
  return results;
}

absl::Status Client::Put(const std::string& key, std::string_view value,
                         const ReplicateConfig& config) {
  return BatchPut({&key, 1}, {&value, 1}, config)[0];
}

absl::Status Client::PutParts(const std::string& key, absl::Span<const std::string_view> parts,
                              const ReplicateConfig& config) {
  std::string joined;
  size_t total = 0;
  for (std::string_view part : parts) total += part.size();
  joined.reserve(total);
  for (std::string_view part : parts) joined.append(part);
  return Put(key, joined, config);
}

// ---- the rest ----

std::vector<absl::StatusOr<bool>> Client::BatchExists(Keys keys) {
  CallRecord record(ClientOp::kExist);
  absl::ReaderMutexLock lock(&state_mu_);
  std::vector<absl::StatusOr<bool>> results =
      closed_ ? std::vector<absl::StatusOr<bool>>(keys.size(), Closed()) : master_->ExistKey(keys);
  for (const absl::StatusOr<bool>& result : results) {
    if (result.ok() && !*result) {
      record.Miss();
    } else {
      record.Key(result.status());
    }
  }
  return results;
}

absl::StatusOr<bool> Client::Exists(const std::string& key) {
  return std::move(BatchExists({&key, 1})[0]);
}

std::vector<absl::StatusOr<uint64_t>> Client::BatchGetSize(absl::Span<const std::string> keys) {
  CallRecord record(ClientOp::kGetSize);
  absl::ReaderMutexLock lock(&state_mu_);
  std::vector<absl::StatusOr<uint64_t>> results =
      closed_ ? std::vector<absl::StatusOr<uint64_t>>(keys.size(), Closed())
              : master_->GetSize(keys);
  record.Keys(results, [](size_t) { return 0; });
  return results;
}

absl::StatusOr<uint64_t> Client::GetSize(const std::string& key) {
  return std::move(BatchGetSize({&key, 1})[0]);
}

std::vector<absl::Status> Client::BatchRemove(absl::Span<const std::string> keys, bool force) {
  CallRecord record(ClientOp::kRemove);
  absl::ReaderMutexLock lock(&state_mu_);
  std::vector<absl::Status> results =
      closed_ ? std::vector<absl::Status>(keys.size(), Closed()) : master_->Remove(keys, force);
  record.Keys(results, [](size_t) { return 0; });
  return results;
}

absl::Status Client::Remove(const std::string& key, bool force) {
  return BatchRemove({&key, 1}, force)[0];
}

absl::StatusOr<uint64_t> Client::RemoveByRegex(const std::string& pattern) {
  CallRecord record(ClientOp::kRemove);  // one call; its keys are those it removed
  absl::ReaderMutexLock lock(&state_mu_);
  absl::StatusOr<uint64_t> removed =
      closed_ ? absl::StatusOr<uint64_t>(Closed()) : master_->RemoveByRegex(pattern);
  record.Removed(removed);
  return removed;
}

absl::StatusOr<uint64_t> Client::RemoveAll() {
  CallRecord record(ClientOp::kRemove);  // one call; its keys are those it removed
  absl::ReaderMutexLock lock(&state_mu_);
  absl::StatusOr<uint64_t> removed =
      closed_ ? absl::StatusOr<uint64_t>(Closed()) : master_->RemoveAll();
  record.Removed(removed);
  return removed;
}

absl::StatusOr<std::vector<SegmentInfo>> Client::ListSegments() {
  absl::ReaderMutexLock lock(&state_mu_);
  if (closed_) return Closed();
  return master_->ListSegments();
}

std::vector<absl::StatusOr<ReplicaList>> Client::BatchGetReplicas(
    absl::Span<const std::string> keys) {
  absl::ReaderMutexLock lock(&state_mu_);
  if (closed_) return std::vector<absl::StatusOr<ReplicaList>>(keys.size(), Closed());
  return master_->GetReplicaList(keys);
}

std::string Client::TransportTo(const std::string& segment) {
  absl::ReaderMutexLock lock(&state_mu_);
  if (closed_) return "";
  absl::StatusOr<engine::SegmentId> id = engine_->OpenSegment(segment);
  return id.ok() ? engine_->TransportFor(*id) : "";
}

}  // namespace mooncake::client
