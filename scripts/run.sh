#!/usr/bin/env bash
# The main job: install what is needed, build, and run an all-in-one mooncake cluster on 127.0.0.1
# with the built-in benchmark, then stop everything it started.
#
#   1. `mooncake metadata`, `mooncake master` and two `mooncake store` processes (STORE_SIZE each,
#      1 GiB by default), each a separate process as in a real deployment;
#   2. `mooncake bench store --validate`: a pattern written through every segment and read back;
#   3. `mooncake bench store`: put and get throughput and latency percentiles for 4 KiB to 4 MiB
#      values, batches of 1 and 32, zero-copy and copying paths (BENCH_DURATION per case).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}
store_size=${STORE_SIZE:-1GiB}
duration=${BENCH_DURATION:-1s}

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
mooncake="$build/src/mooncake"
"$mooncake" --version

source "$root/scripts/lib/cluster.sh"

echo
echo "== 1. an all-in-one cluster on 127.0.0.1"
start_cluster 2 "$store_size"
for name in metadata master store1 store2; do grep -m1 'listening\|serving' "$cluster_work/$name.log"; done
echo "segments mounted (GET /get_all_segments on the master's admin port):"
curl -sS "http://$admin/get_all_segments" | sed 's/^/  /'

echo
echo "== 2. mooncake bench store --validate"
"$mooncake" bench store --validate --master "$rpc" --metadata "$metadata" | grep -v '^{'

echo
echo "== 3. mooncake bench store ($duration per case; shared memory carries the bytes between"
echo "      processes of one host)"
"$mooncake" bench store --master "$rpc" --metadata "$metadata" --duration "$duration" | grep -v '^{'

echo
echo "== stopping (stores unmount first)"
stop_cluster
echo "all stopped cleanly"
