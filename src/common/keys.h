#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace mooncake {

// The keys of a batch call: views of the caller's strings (std::string or std::string_view), so
// that a call copies no key to pass it on. Like a span, valid only while what it views is.
class Keys {
 public:
  Keys(const std::string* keys, size_t n) : strings_(keys), size_(n) {}
  Keys(const std::string_view* keys, size_t n) : views_(keys), size_(n) {}
  Keys(absl::Span<const std::string> keys) : Keys(keys.data(), keys.size()) {}
  Keys(absl::Span<const std::string_view> keys) : Keys(keys.data(), keys.size()) {}
  Keys(const std::vector<std::string>& keys) : Keys(keys.data(), keys.size()) {}
  Keys(const std::vector<std::string_view>& keys) : Keys(keys.data(), keys.size()) {}
  Keys(std::initializer_list<std::string> keys) : Keys(keys.begin(), keys.size()) {}

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view operator[](size_t i) const {
    return strings_ != nullptr ? std::string_view(strings_[i]) : views_[i];
  }
  // Keys [begin, begin + n).
  Keys subspan(size_t begin, size_t n) const {
    return strings_ != nullptr ? Keys(strings_ + begin, n) : Keys(views_ + begin, n);
  }

 private:
  const std::string* strings_ = nullptr;
  const std::string_view* views_ = nullptr;
  size_t size_ = 0;
};

}  // namespace mooncake
