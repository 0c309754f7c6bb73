#!/usr/bin/env bash
# Transfer engine figures next to the limits of this machine, measured in one run:
#   - iperf3 single-stream TCP bandwidth on 127.0.0.1 (the bandwidth limit),
#   - a bare loopback ping-pong with the sizes of a 4 KiB READ (the latency limit),
#   - single-thread memcpy of 1 MiB and 4 MiB blocks (the shared-memory limit),
#   - mooncake's TCP transport: READ and WRITE of 1 MiB and 4 MiB blocks (batches of 32, 2 threads,
#     then one connection), and 4 KiB READ latency (one request at a time),
#   - mooncake's shared-memory transport: READ and WRITE of 1 MiB and 4 MiB blocks, one thread.
#   scripts/bench-transfer.sh [seconds per run, default 5]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}
seconds=${1:-5}
"$root/scripts/build.sh" >/dev/null
mooncake="$build/src/mooncake"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

source "$root/scripts/lib/limits.sh"
iperf_gbs=$(iperf3_gbs "$seconds")
floor=$("$build/tests/loopback_pingpong" 40000)
floor_p50=$($py -c 'import json,sys; print(json.loads(sys.argv[1])["p50_us"])' "$floor")

"$mooncake" bench transfer --mode target --local-hostname 127.0.0.1 --buffer-size 1GiB >"$work/target.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'target ready' "$work/target.log" && break; sleep 0.1; done
segment=$(grep -o 'segment=[^ ]*' "$work/target.log" | cut -d= -f2)

run() { "$mooncake" bench transfer --target "$segment" --duration "${seconds}s" "$@" 2>/dev/null | tail -n 1; }
printf '%-34s %10s %10s %10s\n' "run" "GB/s" "p50 us" "vs limit"
printf '%-34s %10.3f %10s %10s\n' "iperf3 single stream (limit)" "$iperf_gbs" "-" "1.00"
printf '%-34s %10s %10.1f %10s\n' "bare loopback ping-pong (limit)" "-" "$floor_p50" "1.00"
for op in read write; do
  for block in 1MiB 4MiB; do
    json=$(run --op "$op" --block-size "$block" --batch-size 32 --threads 2)
    $py - "$json" "$iperf_gbs" "tcp $op $block x32, 2 threads" <<'PY'
import json, sys
j = json.loads(sys.argv[1]); limit = float(sys.argv[2])
print(f"{sys.argv[3]:<34} {j['gb_per_s']:10.3f} {j['p50_us']:10.1f} {j['gb_per_s'] / limit:10.2f}x")
PY
  done
done
# Like for like with iperf3's single stream: one connection, one thread.
for op in read write; do
  json=$(run --op "$op" --block-size 1MiB --batch-size 32 --threads 1 --connections 1)
  $py - "$json" "$iperf_gbs" "tcp $op 1MiB x32, 1 connection" <<'PY'
import json, sys
j = json.loads(sys.argv[1]); limit = float(sys.argv[2])
print(f"{sys.argv[3]:<34} {j['gb_per_s']:10.3f} {j['p50_us']:10.1f} {j['gb_per_s'] / limit:10.2f}x")
PY
done
for op in read write; do
  for block in 1048576 4194304; do
    limit=$(memcpy_gbs "$block" "$seconds")
    json=$(run --protocol shm --op "$op" --block-size "$block" --batch-size 32 --threads 1)
    $py - "$json" "$limit" "shm $op $((block >> 20))MiB x32, 1 thread" <<'PY'
import json, sys
j = json.loads(sys.argv[1]); limit = float(sys.argv[2])
print(f"{'memcpy ' + str(j['block_size'] >> 20) + 'MiB (limit)':<34} {limit:10.3f} {'-':>10} {1:10.2f}")
print(f"{sys.argv[3]:<34} {j['gb_per_s']:10.3f} {j['p50_us']:10.1f} {j['gb_per_s'] / limit:10.2f}x")
PY
  done
done
json=$(run --op read --block-size 4KiB --batch-size 1 --threads 1)
$py - "$json" "$floor_p50" <<'PY'
import json, sys
j = json.loads(sys.argv[1]); floor = float(sys.argv[2])
print(f"{'tcp read 4KiB x1, 1 thread':<34} {j['gb_per_s']:10.3f} {j['p50_us']:10.1f} {j['p50_us'] / floor:10.2f}x")
PY
