// Anonymous, page-aligned memory mapped on construction and unmapped on destruction. The pages are
// not touched until used, so a large mapping costs nothing until written.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <utility>

namespace mooncake {

class MappedMemory {
 public:
  MappedMemory() = default;
  // data() is null if the mapping failed (errno says why).
  explicit MappedMemory(size_t size) : size_(size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~MappedMemory() {
    if (data_ != nullptr) munmap(data_, size_);
  }
  MappedMemory(MappedMemory&& other) noexcept
      : size_(std::exchange(other.size_, 0)), data_(std::exchange(other.data_, nullptr)) {}
  MappedMemory& operator=(MappedMemory&& other) noexcept {
    std::swap(size_, other.size_);
    std::swap(data_, other.data_);
    return *this;
  }

  char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  size_t size_ = 0;
  char* data_ = nullptr;
};

}  // namespace mooncake
