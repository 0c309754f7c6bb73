#include "http/metadata_store.h"

#include "common/error_code.h"
#include "common/strings.h"

namespace mooncake::http {

absl::Status MetadataStore::ValidateKey(std::string_view key) const {
  if (key.empty()) return MakeError(ErrorCode::INVALID_KEY, "key is empty");
  if (key.size() > options_.max_key_bytes) {
    return MakeError(ErrorCode::INVALID_KEY, fmt::format("key is {} bytes; the limit is {}",
                                                         key.size(), options_.max_key_bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MetadataStore::Get(std::string_view key) const {
  if (absl::Status valid = ValidateKey(key); !valid.ok()) return valid;
  absl::MutexLock lock(&mu_);
  auto it = values_.find(AsAbsl(key));
  if (it == values_.end()) {
    return MakeError(ErrorCode::OBJECT_NOT_FOUND, fmt::format("no metadata under key '{}'", key));
  }
  return it->second;
}

absl::Status MetadataStore::Put(std::string_view key, std::string_view value) {
  if (absl::Status valid = ValidateKey(key); !valid.ok()) return valid;
  if (value.size() > options_.max_value_bytes) {
    return MakeError(
        ErrorCode::BUFFER_OVERFLOW,
        fmt::format("value is {} bytes; the limit is {}", value.size(), options_.max_value_bytes));
  }
  absl::MutexLock lock(&mu_);
  auto it = values_.find(AsAbsl(key));
  const size_t old_bytes = it == values_.end() ? 0 : key.size() + it->second.size();
  const size_t new_total = total_bytes_ - old_bytes + key.size() + value.size();
  if (new_total > options_.max_total_bytes) {
    return MakeError(ErrorCode::NO_AVAILABLE_HANDLE,
                     fmt::format("metadata table is full ({} of {} bytes used)", total_bytes_,
                                 options_.max_total_bytes));
  }
  if (it == values_.end()) {
    values_.emplace(std::string(key), std::string(value));
  } else {
    it->second.assign(value);
  }
  total_bytes_ = new_total;
  return absl::OkStatus();
}

absl::Status MetadataStore::Delete(std::string_view key) {
  if (absl::Status valid = ValidateKey(key); !valid.ok()) return valid;
  absl::MutexLock lock(&mu_);
  auto it = values_.find(AsAbsl(key));
  if (it == values_.end()) {
    return MakeError(ErrorCode::OBJECT_NOT_FOUND, fmt::format("no metadata under key '{}'", key));
  }
  total_bytes_ -= it->first.size() + it->second.size();
  values_.erase(it);
  return absl::OkStatus();
}

size_t MetadataStore::key_count() const {
  absl::MutexLock lock(&mu_);
  return values_.size();
}

size_t MetadataStore::total_bytes() const {
  absl::MutexLock lock(&mu_);
  return total_bytes_;
}

}  // namespace mooncake::http
