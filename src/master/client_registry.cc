#include "master/client_registry.h"

#include "common/strings.h"

namespace mooncake::master {

bool ClientRegistry::Touch(std::string_view client_id, int64_t now_us) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = last_seen_us_.try_emplace(std::string(client_id), now_us);
  if (!inserted) it->second = std::max(it->second, now_us);
  return inserted;
}

std::vector<std::string> ClientRegistry::TakeSilentSince(int64_t deadline_us) {
  std::vector<std::string> dead;
  absl::MutexLock lock(&mu_);
  for (auto it = last_seen_us_.begin(); it != last_seen_us_.end();) {
    if (it->second < deadline_us) {
      dead.push_back(it->first);
      last_seen_us_.erase(it++);
    } else {
      ++it;
    }
  }
  return dead;
}

size_t ClientRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return last_seen_us_.size();
}

}  // namespace mooncake::master
