// The key of an object in the master's table, its bytes inside the table's slot when they fit.
//
// A lookup in a table of a million objects misses the TLB on every page it reads: the control
// bytes, the slot, and, for a std::string key longer than its 15 inline bytes, the key's own heap
// block (docs/performance.md, seventh step). SGLang's page keys (a 64-hex-digit hash, the rank and
// K or V: 68 to 70 bytes, a few more with a short tenant's name in front) fit in kInline bytes, so
// their lookup reads two pages instead of three; a longer key keeps its bytes on the heap, as a
// std::string would. The slot is 48 bytes larger than with a std::string key, whose heap block
// for such a key takes 80: the table's memory per object is about the same (depending on how
// full it is).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "common/strings.h"

namespace mooncake::master {

class ObjectKey {
 public:
  static constexpr size_t kInline = 76;  // sizeof(ObjectKey) is 80

  explicit ObjectKey(std::string_view key) : size_(static_cast<uint32_t>(key.size())) {
    if (Inline()) {
      std::memcpy(bytes_, key.data(), key.size());
    } else {
      char* heap = new char[key.size()];
      std::memcpy(heap, key.data(), key.size());
      std::memcpy(bytes_, &heap, sizeof(heap));
    }
  }
  ObjectKey(const ObjectKey& other) : ObjectKey(other.view()) {}
  ObjectKey(ObjectKey&& other) noexcept : size_(other.size_) {
    std::memcpy(bytes_, other.bytes_, Inline() ? size_ : sizeof(char*));
    other.size_ = 0;  // the heap block, if any, is this key's now
  }
  ObjectKey& operator=(const ObjectKey&) = delete;
  ObjectKey& operator=(ObjectKey&&) = delete;
  ~ObjectKey() {
    if (!Inline()) delete[] Heap();
  }

  size_t size() const { return size_; }
  std::string_view view() const { return {Inline() ? bytes_ : Heap(), size_}; }
  operator std::string_view() const { return view(); }  // NOLINT: read as a view everywhere
  absl::string_view lookup() const { return AsAbsl(view()); }

 private:
  bool Inline() const { return size_ <= kInline; }
  char* Heap() const {
    char* heap;
    std::memcpy(&heap, bytes_, sizeof(heap));
    return heap;
  }

  uint32_t size_;
  char bytes_[kInline];
};
static_assert(sizeof(ObjectKey) == 80);

// The table's hash and equality: a key is found by its bytes (absl::string_view), as absl's own
// string hashing finds std::string keys.
struct ObjectKeyHash {
  using is_transparent = void;
  size_t operator()(absl::string_view key) const { return absl::Hash<absl::string_view>()(key); }
  size_t operator()(const ObjectKey& key) const { return (*this)(key.lookup()); }
};
struct ObjectKeyEq {
  using is_transparent = void;
  static absl::string_view Of(absl::string_view key) { return key; }
  static absl::string_view Of(const ObjectKey& key) { return key.lookup(); }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return Of(a) == Of(b);
  }
};

}  // namespace mooncake::master
