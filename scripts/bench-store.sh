#!/usr/bin/env bash
# Store figures next to the limits of this machine, measured in one run, against a cluster of
# separate processes on 127.0.0.1 (metadata, master, one store):
#   - iperf3 single-stream TCP bandwidth and single-thread memcpy of 1 MiB (the limits),
#   - batch_get_into / batch_put_from of 32 x 1 MiB through TCP and through shared memory,
#   - single 4 KiB get and put latency (p50, p99) through TCP and through shared memory.
#   scripts/bench-store.sh [seconds per run, default 3]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}
seconds=${1:-3}
"$root/scripts/build.sh" >/dev/null
mooncake="$build/src/mooncake"
source "$root/scripts/lib/cluster.sh"
source "$root/scripts/lib/limits.sh"

start_cluster 1 2GiB
iperf=$(iperf3_gbs "$seconds")
memcpy=$(memcpy_gbs 1048576 "$seconds")
bench() {
  "$mooncake" bench store --master "$rpc" --metadata "$metadata" --paths zero-copy \
    --duration "${seconds}s" "$@" | tail -n 1
}
tcp_bulk=$(bench --transport tcp --sizes 1MiB --batch 32)
shm_bulk=$(bench --transport auto --sizes 1MiB --batch 32)
tcp_small=$(bench --transport tcp --sizes 4KiB --batch 1)
shm_small=$(bench --transport auto --sizes 4KiB --batch 1)
stop_cluster

$py - "$iperf" "$memcpy" "$tcp_bulk" "$shm_bulk" "$tcp_small" "$shm_small" <<'PY'
import json, sys
iperf, memcpy = float(sys.argv[1]), float(sys.argv[2])
tcp_bulk, shm_bulk, tcp_small, shm_small = (json.loads(a) for a in sys.argv[3:7])
def case(run, op):
    return next(c for c in run["cases"] if c["op"] == op)
print(f"{'run':<44} {'GB/s':>8} {'p50 us':>8} {'p99 us':>8} {'vs limit':>9}")
print(f"{'iperf3 single stream (limit)':<44} {iperf:8.3f} {'-':>8} {'-':>8} {'1.00':>9}")
print(f"{'memcpy 1 MiB, one thread (limit)':<44} {memcpy:8.3f} {'-':>8} {'-':>8} {'1.00':>9}")
for name, run, limit in (("tcp", tcp_bulk, iperf), ("shm", shm_bulk, memcpy)):
    assert run["transport"] == name, f"expected {name}, the bench reached the store by {run['transport']}"
    for op, call in (("get", "batch_get_into"), ("put", "batch_put_from")):
        c = case(run, op)
        label = f"{call} 32 x 1 MiB, {name}"
        print(f"{label:<44} {c['gb_per_s']:8.3f} {c['p50_us']:8.1f} {c['p99_us']:8.1f} "
              f"{c['gb_per_s'] / limit:8.2f}x")
for name, run in (("tcp", tcp_small), ("shm", shm_small)):
    for op in ("get", "put"):
        c = case(run, op)
        label = f"{op} 4 KiB, one at a time, {name}"
        print(f"{label:<44} {'-':>8} {c['p50_us']:8.1f} {c['p99_us']:8.1f} {'-':>9}")
PY
