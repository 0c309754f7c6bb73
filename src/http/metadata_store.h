// The key-value table behind the metadata service: opaque values under byte-string keys, bounded
// per value and in total.
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace mooncake::http {

struct MetadataStoreOptions {
  size_t max_key_bytes = 4096;
  size_t max_value_bytes = 16u << 20;
  size_t max_total_bytes = 1u << 30;  // keys plus values
};

class MetadataStore {
 public:
  explicit MetadataStore(MetadataStoreOptions options = {}) : options_(options) {}

  // The value under `key`; OBJECT_NOT_FOUND if there is none.
  absl::StatusOr<std::string> Get(std::string_view key) const;

  // Stores `value` under `key`, replacing any previous value. INVALID_KEY for an empty or overlong
  // key; BUFFER_OVERFLOW for a value over max_value_bytes; NO_AVAILABLE_HANDLE when the table would
  // grow past max_total_bytes (the previous value, if any, is kept).
  absl::Status Put(std::string_view key, std::string_view value);

  // Removes `key`; OBJECT_NOT_FOUND if it was absent.
  absl::Status Delete(std::string_view key);

  size_t key_count() const;
  size_t total_bytes() const;
  const MetadataStoreOptions& options() const { return options_; }

  // INVALID_KEY unless `key` is 1..max_key_bytes bytes long.
  absl::Status ValidateKey(std::string_view key) const;

 private:
  const MetadataStoreOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> values_ ABSL_GUARDED_BY(mu_);
  size_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mooncake::http
