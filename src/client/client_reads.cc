// The client's gets: the master's replica lists with their leases (Locate), the reads of the
// closest replica and the fallback to the next (ReadPieces), the zero-copy calls, the calls that
// read into memory an allocator gives, and the copying calls staged through the local buffer.
// (The puts and the rest are in client.cc, the segment's lifecycle in client_segment.cc.)
#include <algorithm>
#include <cstring>

#include "client/client.h"
#include "client/client_internal.h"
#include "client/client_metrics.h"
#include "client/staging_buffer.h"
#include "common/error_code.h"
#include "common/units.h"
#include "engine/transfer_engine.h"

namespace mooncake::client {
namespace {

using engine::TransferOp;
using engine::TransferRequest;
using internal::CountMismatch;
using internal::OnePartEach;
using internal::TotalSize;

absl::Status NoRoomForValue(uint64_t size) {
  return MakeError(ErrorCode::BUFFER_OVERFLOW,
                   fmt::format("no memory could be had for the value ({})", FormatByteSize(size)));
}

}  // namespace

struct Client::Located {
  uint64_t size = 0;
  absl::Time deadline;            // the lease's end: data read later is discarded
  std::vector<Replica> replicas;  // closest first
  std::string key;
  uint32_t lease_id = 0;  // released once the read is done
};

std::vector<absl::StatusOr<Client::Located>> Client::Locate(absl::Span<const std::string> keys) {
  const absl::Time asked = absl::Now();
  std::vector<absl::StatusOr<ReplicaList>> lists = master_->GetReplicaList(keys);
  std::vector<absl::StatusOr<Located>> located;
  located.reserve(keys.size());
  for (absl::StatusOr<ReplicaList>& list : lists) {
    if (!list.ok()) {
      located.push_back(list.status());
      continue;
    }
    if (list->replicas.empty()) {
      located.push_back(MakeError(ErrorCode::INVALID_REPLICA, "the master listed no replica"));
      continue;
    }
    Located where{list->size, asked + list->lease, std::move(list->replicas),
                  std::string(keys[located.size()]), list->lease_id};
    if (where.replicas.size() > 1) {
      // Closest first; each replica's distance is looked up once.
      std::vector<std::pair<int, Replica>> ranked;
      for (Replica& replica : where.replicas) {
        const int distance = Distance(replica.segment);
        ranked.emplace_back(distance, std::move(replica));
      }
      std::stable_sort(ranked.begin(), ranked.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t r = 0; r < ranked.size(); ++r) where.replicas[r] = std::move(ranked[r].second);
    }
    located.push_back(std::move(where));
  }
  return located;
}

absl::StatusOr<std::vector<Client::Piece>> Client::Scatter(const std::vector<Slice>& parts,
                                                           uint64_t size) const {
  const uint64_t room = TotalSize(parts);
  if (room < size) {
    return MakeError(
        ErrorCode::BUFFER_OVERFLOW,
        fmt::format("the object is {} bytes but the buffer holds only {}", size, room));
  }
  std::vector<Piece> pieces;
  uint64_t offset = 0;
  for (const Slice& part : parts) {
    if (part.size > 0 && !engine_->IsRegistered(part.data, part.size)) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       "the destination buffer is not in registered memory");
    }
    const uint64_t length = std::min(part.size, size - offset);
    if (length > 0) pieces.push_back({offset, Slice{part.data, length}});
    offset += length;
  }
  return pieces;
}

std::vector<absl::Status> Client::ReadPieces(absl::Span<const absl::StatusOr<Located>> located,
                                             absl::Span<const std::vector<Piece>> pieces,
                                             bool unregistered) {
  const size_t n = located.size();
  std::vector<absl::Status> results(n);
  std::vector<size_t> attempt(n, 0);
  std::vector<size_t> pending;
  for (size_t i = 0; i < n; ++i) {
    if (!located[i].ok()) {
      results[i] = located[i].status();
    } else if (!pieces[i].empty()) {
      pending.push_back(i);
    }
  }
  // Round r reads each pending object from its r-th closest replica.
  while (!pending.empty()) {
    std::vector<TransferRequest> requests;
    std::vector<size_t> first_request;
    std::vector<size_t> reading;
    for (size_t i : pending) {
      const Located& where = *located[i];
      while (attempt[i] < where.replicas.size()) {
        const Replica& replica = where.replicas[attempt[i]];
        absl::StatusOr<engine::SegmentId> segment = engine_->OpenSegment(replica.segment);
        if (segment.ok() && replica.size >= where.size) {
          first_request.push_back(requests.size());
          reading.push_back(i);
          for (const Piece& piece : pieces[i]) {
            requests.push_back(TransferRequest{TransferOp::kRead, piece.dst.data, *segment,
                                               replica.address + piece.offset, piece.dst.size,
                                               replica.incarnation, unregistered});
          }
          break;
        }
        results[i] = segment.ok() ? MakeError(ErrorCode::INVALID_REPLICA, "replica too small")
                                  : segment.status();
        ++attempt[i];
      }
    }
    if (reading.empty()) break;
    first_request.push_back(requests.size());
    std::vector<absl::Status> statuses = engine_->Submit(requests)->Wait();
    const absl::Time now = absl::Now();
    std::vector<size_t> retry;
    for (size_t k = 0; k < reading.size(); ++k) {
      const size_t i = reading[k];
      absl::Status status;
      for (size_t r = first_request[k]; r < first_request[k + 1] && status.ok(); ++r) {
        status = statuses[r];
      }
      if (status.ok()) {
        results[i] = now <= located[i]->deadline
                         ? absl::OkStatus()
                         : MakeError(ErrorCode::LEASE_EXPIRED,
                                     "the read finished after the lease ended; data discarded");
        continue;
      }
      results[i] = status;
      if (++attempt[i] < located[i]->replicas.size()) retry.push_back(i);
    }
    pending = std::move(retry);
  }
  return results;
}

std::vector<absl::StatusOr<uint64_t>> Client::Read(
    absl::Span<const absl::StatusOr<Located>> located, absl::Span<const std::vector<Slice>> parts) {
  std::vector<absl::StatusOr<Located>> valid(located.begin(), located.end());
  std::vector<std::vector<Piece>> pieces(located.size());
  for (size_t i = 0; i < located.size(); ++i) {
    if (!located[i].ok()) continue;
    absl::StatusOr<std::vector<Piece>> scattered = Scatter(parts[i], located[i]->size);
    if (scattered.ok()) {
      pieces[i] = *std::move(scattered);
    } else {
      valid[i] = scattered.status();
    }
  }
  std::vector<absl::Status> read = ReadPieces(valid, pieces);
  ReleaseLeases(located);
  std::vector<absl::StatusOr<uint64_t>> results;
  results.reserve(located.size());
  for (size_t i = 0; i < located.size(); ++i) {
    results.push_back(read[i].ok() ? absl::StatusOr<uint64_t>(located[i]->size) : read[i]);
  }
  return results;
}

void Client::ReleaseLeases(absl::Span<const absl::StatusOr<Located>> located) {
  std::vector<std::pair<std::string, uint32_t>> leases;
  leases.reserve(located.size());
  for (const absl::StatusOr<Located>& where : located) {
    if (where.ok() && where->lease_id != 0) leases.emplace_back(where->key, where->lease_id);
  }
  if (!leases.empty()) master_->ReleaseLeases(std::move(leases));
}

bool Client::DestinationOk(const Range& range) const {
  if (range.buffer == nullptr) return engine_->IsRegistered(range.dst.data, range.dst.size);
  std::optional<engine::BufferInfo> buffer = engine_->RegisteredBufferAt(range.buffer);
  return buffer && engine::RangeWithin(reinterpret_cast<uint64_t>(range.dst.data), range.dst.size,
                                       buffer->addr, buffer->length);
}

std::vector<std::vector<absl::StatusOr<uint64_t>>> Client::BatchGetRanges(
    absl::Span<const std::string> keys, absl::Span<const std::vector<Range>> ranges) {
  CallRecord record(ClientOp::kGet);
  std::vector<std::vector<absl::StatusOr<uint64_t>>> results = BatchGetRangesImpl(keys, ranges);
  for (const std::vector<absl::StatusOr<uint64_t>>& key : results) {
    absl::Status first_error;
    uint64_t bytes = 0;
    for (const absl::StatusOr<uint64_t>& range : key) {
      if (range.ok()) {
        bytes += *range;
      } else if (first_error.ok()) {
        first_error = range.status();
      }
    }
    record.Key(first_error, bytes);
  }
  return results;
}

std::vector<std::vector<absl::StatusOr<uint64_t>>> Client::BatchGetRangesImpl(
    absl::Span<const std::string> keys, absl::Span<const std::vector<Range>> ranges) {
  using RangeResults = std::vector<absl::StatusOr<uint64_t>>;
  absl::ReaderMutexLock lock(&state_mu_);
  std::vector<RangeResults> results(keys.size());
  if (closed_ || ranges.size() != keys.size()) {
    const absl::Status error =
        closed_ ? Closed()
                : MakeError(ErrorCode::INVALID_PARAMS,
                            fmt::format("{} keys but {} range lists", keys.size(), ranges.size()));
    for (size_t i = 0; i < keys.size(); ++i) {
      results[i].assign(i < ranges.size() ? std::max<size_t>(1, ranges[i].size()) : 1, error);
    }
    return results;
  }
  std::vector<absl::StatusOr<Located>> located = Locate(keys);
  std::vector<std::vector<Piece>> pieces(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    results[i].assign(ranges[i].size(), uint64_t{0});
    for (size_t r = 0; r < ranges[i].size(); ++r) {
      const Range& range = ranges[i][r];
      if (!located[i].ok()) {
        results[i][r] = located[i].status();
      } else if (range.offset > located[i]->size ||
                 range.dst.size > located[i]->size - range.offset) {
        results[i][r] =
            MakeError(ErrorCode::INVALID_PARAMS,
                      fmt::format("range [{}, +{}) is past the end of '{}' ({} bytes)",
                                  range.offset, range.dst.size, keys[i], located[i]->size));
      } else if (range.dst.size > 0 && !DestinationOk(range)) {
        results[i][r] = MakeError(ErrorCode::INVALID_PARAMS,
                                  "the destination range is not in registered memory");
      } else {
        results[i][r] = range.dst.size;
        if (range.dst.size > 0) pieces[i].push_back({range.offset, range.dst});
      }
    }
  }
  std::vector<absl::Status> read = ReadPieces(located, pieces);
  ReleaseLeases(located);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (read[i].ok()) continue;
    for (absl::StatusOr<uint64_t>& result : results[i]) {
      if (result.ok()) result = read[i];
    }
  }
  return results;
}

std::vector<absl::StatusOr<uint64_t>> Client::GetLocked(
    absl::Span<const std::string> keys, absl::Span<const std::vector<Slice>> parts) {
  if (parts.size() != keys.size()) {
    return CountMismatch<absl::StatusOr<uint64_t>>(keys.size(), parts.size(), "buffers");
  }
  std::vector<absl::StatusOr<Located>> located = Locate(keys);
  return Read(located, parts);
}

std::vector<absl::StatusOr<uint64_t>> Client::BatchGetIntoParts(
    absl::Span<const std::string> keys, absl::Span<const std::vector<Slice>> parts) {
  CallRecord record(ClientOp::kGet);
  absl::ReaderMutexLock lock(&state_mu_);
  std::vector<absl::StatusOr<uint64_t>> results =
      closed_ ? std::vector<absl::StatusOr<uint64_t>>(keys.size(), Closed())
              : GetLocked(keys, parts);
  record.Keys(results, [&](size_t i) { return *results[i]; });
  return results;
}

std::vector<absl::StatusOr<uint64_t>> Client::BatchGetInto(absl::Span<const std::string> keys,
                                                           absl::Span<const Slice> buffers) {
  return BatchGetIntoParts(keys, OnePartEach(buffers));  // GetLocked checks the counts
}

absl::StatusOr<uint64_t> Client::GetInto(const std::string& key, Slice buffer) {
  return BatchGetInto({&key, 1}, {&buffer, 1})[0];
}

std::vector<absl::Status> Client::BatchGetWith(absl::Span<const std::string> keys,
                                               Allocator allocate) {
  CallRecord record(ClientOp::kGet);
  std::vector<uint64_t> sizes(keys.size(), 0);
  std::vector<absl::Status> results = BatchGetWithImpl(keys, [&](size_t i, uint64_t size) {
    sizes[i] = size;
    return allocate(i, size);
  });
  record.Keys(results, [&](size_t i) { return sizes[i]; });
  return results;
}

std::vector<absl::Status> Client::BatchGetWithImpl(absl::Span<const std::string> keys,
                                                   Allocator allocate) {
  absl::ReaderMutexLock lock(&state_mu_);
  if (closed_) return std::vector<absl::Status>(keys.size(), Closed());
  std::vector<absl::StatusOr<Located>> located = Locate(keys);
  if (engine_->LocalNeedsRegistration()) return GetStaged(keys, std::move(located), allocate);
  // Each value is read where it will live: one copy, and no local buffer needed.
  std::vector<std::vector<Piece>> pieces(keys.size());
  std::vector<absl::Status> unallocated(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!located[i].ok()) continue;
    const uint64_t size = located[i]->size;
    char* value = allocate(i, size);
    if (value == nullptr) {
      unallocated[i] = NoRoomForValue(size);
    } else if (size > 0) {
      pieces[i].push_back({0, Slice{value, size}});
    }
  }
  std::vector<absl::Status> results = ReadPieces(located, pieces, /*unregistered=*/true);
  ReleaseLeases(located);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!unallocated[i].ok()) results[i] = unallocated[i];
  }
  return results;
}

std::vector<absl::Status> Client::GetStaged(absl::Span<const std::string> keys,
                                            std::vector<absl::StatusOr<Located>> located,
                                            Allocator allocate) {
  std::vector<absl::Status> results(keys.size());
  if (!staging_) {
    absl::Status no_buffer = MakeError(
        ErrorCode::INVALID_PARAMS,
        "local_buffer_size is 0, so copying gets cannot stage their bytes for RDMA; use the "
        "zero-copy calls on registered memory");
    for (size_t i = 0; i < keys.size(); ++i) {
      results[i] = located[i].ok() ? no_buffer : located[i].status();
    }
    ReleaseLeases(located);
    return results;
  }
  size_t next = 0;
  while (next < keys.size()) {
    std::vector<size_t> group;
    std::vector<StagingBuffer::Block> blocks;
    std::vector<absl::StatusOr<Located>> group_located;
    std::vector<std::vector<Slice>> parts;
    for (; next < keys.size(); ++next) {
      if (!located[next].ok()) {
        results[next] = located[next].status();
        continue;
      }
      const uint64_t size = located[next]->size;
      if (!staging_->Fits(size)) {
        results[next] =
            MakeError(ErrorCode::BUFFER_OVERFLOW,
                      fmt::format("'{}' ({}) is larger than the local buffer ({})", keys[next],
                                  FormatByteSize(size), FormatByteSize(staging_->capacity())));
        ReleaseLeases({&located[next], 1});
        continue;
      }
      std::optional<StagingBuffer::Block> block =
          blocks.empty() ? staging_->Acquire(size) : staging_->TryAcquire(size);
      if (!block) break;
      blocks.push_back(*block);
      group.push_back(next);
      group_located.push_back(std::move(located[next]));  // not read again
      parts.push_back({Slice{block->data, size}});
    }
    if (group.empty()) continue;
    std::vector<absl::StatusOr<uint64_t>> read = Read(group_located, parts);
    for (size_t k = 0; k < group.size(); ++k) {
      if (!read[k].ok()) {
        results[group[k]] = read[k].status();
        continue;
      }
      char* value = allocate(group[k], *read[k]);
      if (value == nullptr) {
        results[group[k]] = NoRoomForValue(*read[k]);
      } else if (*read[k] > 0) {
        std::memcpy(value, blocks[k].data, *read[k]);
      }
    }
    for (const StagingBuffer::Block& block : blocks) staging_->Release(block);
  }
  return results;
}

std::vector<absl::StatusOr<std::string>> Client::BatchGet(absl::Span<const std::string> keys) {
  std::vector<std::string> values(keys.size());
  std::vector<absl::Status> read = BatchGetWith(keys, [&](size_t i, uint64_t size) {
    values[i].resize(size);
    return values[i].data();
  });
  std::vector<absl::StatusOr<std::string>> results;
  results.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (read[i].ok()) {
      results.emplace_back(std::move(values[i]));
    } else {
      results.emplace_back(std::move(read[i]));
    }
  }
  return results;
}

absl::StatusOr<std::string> Client::Get(const std::string& key) {
  return std::move(BatchGet({&key, 1})[0]);
}

}  // namespace mooncake::client
