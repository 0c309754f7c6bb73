#include "master/index_staging.h"

#include <iterator>

#include "common/error_code.h"
#include "common/strings.h"

namespace mooncake::master {

absl::StatusOr<uint64_t> IndexStaging::Stage(std::string_view client_id, std::string_view name,
                                             bool first, std::vector<IndexEntry> entries,
                                             int64_t now_us) {
  uint64_t bytes = 0;
  for (const IndexEntry& entry : entries) bytes += entry.key.size() + sizeof(IndexEntry);
  absl::MutexLock lock(&mu_);
  // Stagings whose owner went quiet (it died, or moved to another master) are dropped.
  for (auto it = staged_.begin(); it != staged_.end();) {
    if (now_us - it->second.updated_us > absl::ToInt64Microseconds(kIdle)) {
      bytes_ -= it->second.bytes;
      staged_.erase(it++);
    } else {
      ++it;
    }
  }
  Staged& staging = staged_[std::make_pair(std::string(client_id), std::string(name))];
  if (first) {
    bytes_ -= staging.bytes;
    staging = Staged{};
  }
  if (bytes_ + bytes > kMaxBytes) {
    return MakeError(ErrorCode::BUFFER_OVERFLOW,
                     fmt::format("segment '{}': the master holds {} bytes of staged index, at most "
                                 "{}: try again later",
                                 name, bytes_, kMaxBytes));
  }
  bytes_ += bytes;
  staging.bytes += bytes;
  staging.updated_us = now_us;
  staging.entries.reserve(staging.entries.size() + entries.size());
  std::move(entries.begin(), entries.end(), std::back_inserter(staging.entries));
  return staging.entries.size();
}

absl::StatusOr<std::vector<IndexEntry>> IndexStaging::Take(std::string_view client_id,
                                                           std::string_view name, uint64_t count,
                                                           std::vector<IndexEntry> last) {
  absl::MutexLock lock(&mu_);
  auto it = staged_.find(std::make_pair(std::string(client_id), std::string(name)));
  const uint64_t held = it == staged_.end() ? 0 : it->second.entries.size();
  if (held != count) {
    return MakeError(ErrorCode::OBJECT_NOT_FOUND,
                     fmt::format("segment '{}': the mount counts {} staged index entries, this "
                                 "master holds {}: stage them again",
                                 name, count, held));
  }
  std::vector<IndexEntry> all = std::move(it->second.entries);
  all.reserve(all.size() + last.size());
  std::move(last.begin(), last.end(), std::back_inserter(all));
  bytes_ -= it->second.bytes;
  staged_.erase(it);
  return all;
}

}  // namespace mooncake::master
