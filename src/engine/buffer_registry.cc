#include "engine/buffer_registry.h"

#include "common/error_code.h"
#include "common/strings.h"

namespace mooncake::engine {

absl::Status BufferRegistry::Register(uint64_t addr, uint64_t length, std::string location) {
  if (addr == 0 || length == 0 || addr > UINT64_MAX - length) {
    return MakeError(
        ErrorCode::INVALID_PARAMS,
        fmt::format("cannot register [{:#x}, +{}): empty, null or wrapping", addr, length));
  }
  absl::MutexLock lock(&mu_);
  auto next = buffers_.lower_bound(addr);
  if (next != buffers_.end() && next->first < addr + length) {
    return MakeError(
        ErrorCode::INVALID_PARAMS,
        fmt::format("[{:#x}, +{}) overlaps the buffer at {:#x}", addr, length, next->first));
  }
  if (next != buffers_.begin()) {
    const BufferInfo& prev = std::prev(next)->second;
    if (prev.addr + prev.length > addr) {
      return MakeError(
          ErrorCode::INVALID_PARAMS,
          fmt::format("[{:#x}, +{}) overlaps the buffer at {:#x}", addr, length, prev.addr));
    }
  }
  buffers_.emplace(addr, BufferInfo{addr, length, std::move(location)});
  return absl::OkStatus();
}

absl::Status BufferRegistry::Unregister(uint64_t addr) {
  absl::MutexLock lock(&mu_);
  if (buffers_.erase(addr) == 0) {
    return MakeError(ErrorCode::OBJECT_NOT_FOUND,
                     fmt::format("no buffer is registered at {:#x}", addr));
  }
  return absl::OkStatus();
}

bool BufferRegistry::Contains(uint64_t addr, uint64_t length) const {
  std::optional<BufferInfo> buffer = Find(addr);
  return buffer && RangeWithin(addr, length, buffer->addr, buffer->length);
}

std::optional<BufferInfo> BufferRegistry::Find(uint64_t addr) const {
  absl::ReaderMutexLock lock(&mu_);
  auto next = buffers_.upper_bound(addr);
  if (next == buffers_.begin()) return std::nullopt;
  const BufferInfo& buffer = std::prev(next)->second;
  if (!RangeWithin(addr, 1, buffer.addr, buffer.length)) return std::nullopt;
  return buffer;
}

std::vector<BufferInfo> BufferRegistry::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<BufferInfo> out;
  for (const auto& [addr, info] : buffers_) out.push_back(info);
  return out;
}

}  // namespace mooncake::engine
