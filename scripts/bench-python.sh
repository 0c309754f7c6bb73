#!/usr/bin/env bash
# Python next to C++ in one run, against one cluster of separate processes on 127.0.0.1 (metadata,
# master, one 2 GiB store): batch_put_from / batch_get_into of 32 x 1 MiB and 128 x 64 KiB through
# the wheel (tests/bench/python_store_bench.py) and the same operations in `mooncake bench store`.
#   scripts/bench-python.sh [seconds per case, default 3]      (after scripts/wheel.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}
venv=${MOONCAKE_VENV:-$build/venv}
seconds=${1:-3}
mooncake="$build/src/mooncake"
py=/usr/bin/python3
source "$root/scripts/lib/cluster.sh"

start_cluster 1 2GiB
cpp() {
  "$mooncake" bench store --master "$rpc" --metadata "$metadata" --paths zero-copy \
    --duration "${seconds}s" --sizes "$1" --batch "$2" | tail -n 1
}
cpp_1m=$(cpp 1MiB 32)
cpp_64k=$(cpp 64KiB 128)
python=$("$venv/bin/python" "$root/tests/bench/python_store_bench.py" "$rpc" "$metadata" "$seconds" \
  1048576:32 65536:128)
stop_cluster

$py - "$cpp_1m" "$cpp_64k" "$python" <<'PY'
import json, sys
cpp = [c for arg in sys.argv[1:3] for c in json.loads(arg)["cases"]]
python = [json.loads(line) for line in sys.argv[3].splitlines()]
names = {"get": "batch_get_into", "put": "batch_put_from"}
print(f"{'operation':<32} {'C++ GB/s':>9} {'Python GB/s':>12} {'Python/C++':>11}")
for p in python:
    c = next(c for c in cpp if (c["op"], c["size"], c["batch"]) == (p["op"], p["size"], p["batch"]))
    label = f"{names[p['op']]} {p['batch']} x {p['size'] >> 10} KiB"
    print(f"{label:<32} {c['gb_per_s']:9.3f} {p['gb_per_s']:12.3f} {p['gb_per_s'] / c['gb_per_s']:10.2f}x")
PY
