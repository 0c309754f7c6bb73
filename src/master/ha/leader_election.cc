#include "master/ha/leader_election.h"

#include <algorithm>

#include "common/error_code.h"
#include "common/logging.h"
#include "common/strings.h"

namespace mooncake::master {
namespace {

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(d));
}

// A steady-clock time as the nanoseconds kept in valid_until_ns_.
int64_t Nanos(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

LeaderElection::LeaderElection(http::EtcdClient* etcd, ElectionOptions options)
    : etcd_(etcd),
      options_(std::move(options)),
      margin_(options_.safety_margin > absl::ZeroDuration()
                  ? options_.safety_margin
                  : std::max(absl::Milliseconds(100), options_.lease_ttl / 10)) {}

LeaderElection::~LeaderElection() { Stop(); }

void LeaderElection::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void LeaderElection::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

uint64_t LeaderElection::epoch() const {
  const uint64_t epoch = epoch_.load(std::memory_order_acquire);
  if (epoch == 0) return 0;
  return Nanos(options_.now()) < valid_until_ns_.load(std::memory_order_acquire) ? epoch : 0;
}

std::optional<LeaderInfo> LeaderElection::leader() const {
  absl::MutexLock lock(&mu_);
  return leader_;
}

bool LeaderElection::WaitUntilLeader(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (epoch() == 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

bool LeaderElection::Sleep(absl::Duration d) { return !stop_.WaitForNotificationWithTimeout(d); }

void LeaderElection::Run() {
  absl::Duration backoff = absl::Milliseconds(50);
  bool warned = false;
  while (!stop_.HasBeenNotified()) {
    const TimePoint sent = options_.now();
    absl::StatusOr<int64_t> lease = etcd_->LeaseGrant(options_.lease_ttl);
    absl::StatusOr<http::EtcdClient::CreateResult> created =
        lease.ok() ? etcd_->CreateIfAbsent(options_.key, options_.value, *lease)
                   : absl::StatusOr<http::EtcdClient::CreateResult>(lease.status());
    if (!created.ok()) {
      if (!warned) spdlog::warn("leader election: {}", created.status().message());
      warned = true;
      if (lease.ok()) (void)etcd_->LeaseRevoke(*lease);
      if (!Sleep(backoff)) return;
      backoff = std::min(backoff * 2, options_.lease_ttl / 2);
      continue;
    }
    if (warned) spdlog::info("leader election: etcd answers again");
    warned = false;
    backoff = absl::Milliseconds(50);
    if (created->created) {
      Lead(*lease, static_cast<uint64_t>(created->kv.create_revision),
           sent + ToChrono(options_.lease_ttl - margin_));
      continue;
    }
    (void)etcd_->LeaseRevoke(*lease);  // campaigns again with a fresh one
    {
      absl::MutexLock lock(&mu_);
      leader_ = LeaderInfo{created->kv.value, static_cast<uint64_t>(created->kv.create_revision)};
    }
    Follow(created->kv);
  }
}

void LeaderElection::Lead(int64_t lease, uint64_t epoch, TimePoint valid_until) {
  options_.on_elected(epoch);  // before anyone sees this process lead
  valid_until_ns_.store(Nanos(valid_until), std::memory_order_release);
  epoch_.store(epoch, std::memory_order_release);
  {
    absl::MutexLock lock(&mu_);
    leader_ = LeaderInfo{options_.value, epoch};
  }
  spdlog::info("leading with epoch {} (etcd key {}, lease TTL {})", epoch, options_.key,
               absl::FormatDuration(options_.lease_ttl));
  std::string why = "stopping";
  while (Sleep(options_.lease_ttl / 3)) {
    // Renew until the lease is renewed or our validity runs out, whichever first.
    bool renewed = false;
    while (!renewed && !stop_.HasBeenNotified()) {
      const TimePoint sent = options_.now();
      if (Nanos(sent) >= valid_until_ns_.load(std::memory_order_acquire)) break;
      absl::StatusOr<absl::Duration> ttl = etcd_->LeaseKeepAlive(lease);
      if (ttl.ok()) {
        valid_until_ns_.store(Nanos(sent + ToChrono(*ttl - margin_)), std::memory_order_release);
        renewed = true;
      } else if (ErrorCodeOf(ttl.status()) == ErrorCode::LEASE_EXPIRED) {
        break;
      } else if (!Sleep(absl::Milliseconds(100))) {
        break;
      }
    }
    if (stop_.HasBeenNotified()) break;
    if (!renewed) {
      why = "its etcd lease could not be renewed in time";
      break;
    }
    // Still ours? (Someone may have deleted the key by hand.)
    absl::StatusOr<std::optional<http::EtcdKeyValue>> held = etcd_->Get(options_.key);
    if (held.ok() &&
        (!held->has_value() || static_cast<uint64_t>((*held)->create_revision) != epoch)) {
      why = "the leader key was removed or replaced";
      break;
    }
  }
  epoch_.store(0, std::memory_order_release);
  spdlog::warn("no longer leading (epoch {}): {}", epoch, why);
  options_.on_deposed(epoch);
  // Resign: another master need not wait for the lease to expire. (Harmless if it already has.)
  (void)etcd_->DeleteIfCreatedAt(options_.key, static_cast<int64_t>(epoch));
  (void)etcd_->LeaseRevoke(lease);
}

void LeaderElection::Follow(const http::EtcdKeyValue& holder) {
  int64_t next = holder.mod_revision + 1;
  const absl::Time deadline = absl::Now() + options_.lease_ttl;
  while (!stop_.HasBeenNotified() && absl::Now() < deadline) {
    absl::StatusOr<std::vector<http::EtcdEvent>> events =
        etcd_->Watch(options_.key, next, std::min(absl::Milliseconds(500), options_.lease_ttl));
    if (!events.ok()) {
      Sleep(absl::Milliseconds(100));
      return;
    }
    for (const http::EtcdEvent& e : *events) {
      if (e.deleted) return;
      next = e.kv.mod_revision + 1;
    }
  }
  // The TTL passed: campaign again anyway, which re-reads the key.
}

}  // namespace mooncake::master
