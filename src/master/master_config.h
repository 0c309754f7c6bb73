// Everything the master is configured with. Parsed and validated in src/cmd (flags of SPEC.md §1);
// the defaults here are the SPEC defaults.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace mooncake::master {

enum class AllocationStrategy { kRandom, kFreeRatioFirst };

struct MasterConfig {
  absl::Duration default_kv_lease_ttl = absl::Milliseconds(10000);
  absl::Duration default_kv_soft_pin_ttl = absl::Milliseconds(1800000);
  // The longest soft pin a client may ask for (its own soft_pin_ttl is cut to this).
  absl::Duration max_kv_soft_pin_ttl = absl::InfiniteDuration();
  bool allow_evict_soft_pinned_objects = true;
  double eviction_ratio = 0.05;
  double eviction_high_watermark_ratio = 0.90;
  absl::Duration client_live_ttl = absl::Seconds(10);
  absl::Duration put_start_discard_timeout = absl::Seconds(30);
  absl::Duration put_start_release_timeout = absl::Seconds(600);
  AllocationStrategy allocation_strategy = AllocationStrategy::kRandom;
  // How long a put's end (or a remove) waits for the segments' owners to acknowledge the change
  // to their index (loss-free recovery); an owner behind by more is not waited for.
  absl::Duration index_ack_timeout = absl::Seconds(1);
  // How long that wait, and an owner's fetch of its changes, poll before they sleep
  // (--rpc_spin_us, as the RPC workers; 0: never).
  absl::Duration index_wait_spin = absl::Microseconds(300);
  // How often the maintenance thread checks liveness, stale puts and the watermark.
  absl::Duration maintenance_interval = absl::Milliseconds(200);

  // Limits on what one request may ask for.
  uint32_t max_replicas = 16;
  size_t max_key_bytes = 4096;
  size_t max_batch_keys = 16384;
  uint64_t max_object_bytes = uint64_t{1} << 40;
  uint64_t allocation_alignment = 64;
  uint64_t seed = 0;  // 0: random; otherwise placement choices are reproducible
};

}  // namespace mooncake::master
