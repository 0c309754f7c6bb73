#!/usr/bin/env bash
# Control-plane figures next to the limits of this machine, measured in one run, against a cluster
# of separate processes on 127.0.0.1 (metadata, master, one store), with the targets of the
# control-plane fast path (docs/performance.md):
#   - the floor: a blocking two-process ping-pong with a batch call's sizes, and Redis GET/SET 4 KiB,
#   - `mooncake bench master`, batches of 128, one thread and four,
#   - through the wheel: batch_is_exist of 128 keys, single 4 KiB get and put, batch_is_exist then
#     batch_get_into against batch_get_into alone, and four processes' batch_is_exist at once,
#   - `mooncake bench store`: the copying calls' batches of 32 x 1 MiB and 4 MiB against the same
#     keys one by one and against the zero-copy batch,
#   - across two network namespaces: batch_put_from against batch_get_into of 128 x 1 MiB and
#     4 MiB, and against iperf3 one stream over the same link.
#   scripts/bench-control.sh [seconds per run, default 3]      (after scripts/wheel.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}
venv=${MOONCAKE_VENV:-$build/venv}
seconds=${1:-3}
mooncake="$build/src/mooncake"
source "$root/scripts/lib/cluster.sh"
source "$root/scripts/lib/limits.sh"
for tool in redis-server redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "$tool missing: run scripts/install-deps.sh" >&2; exit 1; }
done

# batch_put_from and batch_get_into of 128 x 1 MiB and 128 x 4 MiB through the wheel, and iperf3
# one stream, between two network namespaces (metadata, master, store and client each a host of
# its own, as tests/scripts/netns_test.sh makes them): TCP carries the bytes, since a client takes
# shared memory only to a store of its own host. Prints the wheel's JSON lines, then iperf3's GB/s;
# nothing when namespaces cannot be made here.
netns_figures() (
  source "$root/tests/scripts/netns_lib.sh" >&2
  host meta 1
  host master 2
  host store 3
  host cl 4
  local metadata="http://$subnet.1:8080/metadata" master="$subnet.2:50051"
  start meta listening "$mooncake" metadata --port 8080 >&2
  start master listening "$mooncake" master >&2
  cat >"$work/store.json" <<JSON
{"local_hostname": "$subnet.3", "metadata_server": "$metadata",
 "master_server_address": "$master", "protocol": "tcp", "global_segment_size": "2gb"}
JSON
  start store serving "$mooncake" store --config "$work/store.json" >&2
  wait_until_warm "$work/store.out" "$work/store.err"  # lib/cluster.sh: measure the store warm
  ip netns exec "${tag}cl" "$venv/bin/python" "$root/tests/bench/python_store_bench.py" \
    "$master" "$metadata" "$seconds" 1048576:128 4194304:128
  # The server serves until the end (cleanup stops it); a client whose test did not run gets an
  # error in its JSON instead of the sums, and tries again.
  ip netns exec "${tag}store" iperf3 -s --forceflush -B "$subnet.3" -p 5201 \
    >"$work/iperf3.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q 'Server listening' "$work/iperf3.out" && break
    sleep 0.05
  done
  local out="$work/iperf3.json"
  for _ in $(seq 20); do
    ip netns exec "${tag}cl" iperf3 -c "$subnet.3" -p 5201 -t "$seconds" -J >"$out" 2>/dev/null
    grep -q '"sum_received"' "$out" && break
    sleep 0.1
  done
  $py -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/8e9)' "$out"
)

netns=$(netns_figures) || netns=""
pingpong=$(pingpong_p50_us 9216 64)
redis=$(redis_p50_us)
start_cluster 1 1GiB
python=$("$venv/bin/python" "$root/tests/bench/python_control_bench.py" "$rpc" "$metadata" 2000)
pids=()
for i in 1 2 3 4; do
  "$venv/bin/python" "$root/tests/bench/python_control_bench.py" "$rpc" "$metadata" "$seconds" \
    exists >"$cluster_work/exists$i.json" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
concurrent=$(cat "$cluster_work"/exists*.json)
# The copying calls against the zero-copy ones and against themselves one key at a time.
store=$("$mooncake" bench store --master "$rpc" --metadata "$metadata" --sizes 1MiB,4MiB \
  --batch 1,32 --ops get,put --paths zero-copy,copy --duration "${seconds}s" | tail -n 1)
stop_cluster

# `mooncake bench master` against a master of its own (its objects take the space of the segments
# it mounts, and their bytes are never written).
start_service master-bench 'listening' "$mooncake" master --rpc_address 127.0.0.1 --port 0 \
  --metrics_port 0
bench_rpc=$(grep -o 'rpc=[0-9.]*:[0-9]*' "$cluster_work/master-bench.log" | head -n 1 | cut -d= -f2)
master() {
  "$mooncake" bench master --master "$bench_rpc" --threads "$1" --batch 128 \
    --duration "${seconds}s" | tail -n 1
}
master1=$(master 1)
master4=$(master 4)
stop_cluster

$py - "$pingpong" "$redis" "$master1" "$master4" "$python" "$concurrent" "$store" "$netns" <<'PY'
import json, sys
pingpong = float(sys.argv[1])
redis_get, redis_set = (float(x) for x in sys.argv[2].split())
def phases(text):
    return {p["op"]: p for p in json.loads(text)["phases"]}
m1, m4 = phases(sys.argv[3]), phases(sys.argv[4])
py = {r["op"]: r for r in map(json.loads, sys.argv[5].splitlines())}
concurrent = sum(json.loads(l)["keys_per_s"] for l in sys.argv[6].splitlines())

rows = []
def row(name, value, unit, target, ok):
    rows.append((name, value, unit, target, "yes" if ok else "NO"))
exist = py["batch_is_exist"]["p50_us"]
row("python batch_is_exist 128 p50", exist, "us", f"<= 60 and <= 0.95 x ping-pong ({pingpong:.0f})",
    exist <= 60 and exist <= 0.95 * pingpong)
row("python batch_is_exist 128, 4 procs", concurrent / 1e6, "M keys/s", ">= 1.5", concurrent >= 1.5e6)
e1 = m1["ExistKey"]["p50_us"]
row("bench master ExistKey 1 thread p50", e1, "us", "<= 40", e1 <= 40)
for phase, target in (("ExistKey", 2.0), ("GetReplicaList", 1.0), ("PutStart+PutEnd", 0.5)):
    rate = m4[phase]["keys_per_s"] / 1e6
    row(f"bench master {phase} 4 threads", rate, "M keys/s", f">= {target}", rate >= target)
get, put = py["get"]["p50_us"], py["put"]["p50_us"]
row("python get 4 KiB p50", get, "us", f"<= Redis GET ({redis_get:.0f})", get <= redis_get)
row("python put 4 KiB p50", put, "us", f"<= 1.5 x Redis SET ({redis_set:.0f})", put <= 1.5 * redis_set)
both, alone = py["batch_is_exist+batch_get_into"]["p50_us"], py["batch_get_into"]["p50_us"]
row("exists+get / get, 128 x 4 KiB", both / alone, "x", f"<= 1.2 (get alone {alone:.0f} us)",
    both <= 1.2 * alone)

cases = {(c["op"], c["path"], c["size"], c["batch"]): c["gb_per_s"]
         for c in json.loads(sys.argv[7])["cases"]}
for op in ("get", "put"):
    for size, name in ((1 << 20, "1 MiB"), (4 << 20, "4 MiB")):
        batch = cases[(op, "copy", size, 32)]
        one = cases[(op, "copy", size, 1)]
        zero = cases[(op, "zero-copy", size, 32)]
        row(f"copy {op} 32 x {name} / one by one", batch / one, "x", ">= 1.0", batch >= one)
        row(f"copy {op} 32 x {name} / zero-copy", batch / zero, "x",
            f">= 0.7 (zero-copy {zero:.1f} GB/s)", batch >= 0.7 * zero)

netns = sys.argv[8].splitlines()
if netns:
    iperf = float(netns[-1])
    wheel = {(r["op"], r["size"]): r["gb_per_s"] for r in map(json.loads, netns[:-1])}
    for size, name in ((1 << 20, "1 MiB"), (4 << 20, "4 MiB")):
        put, get = wheel[("put", size)], wheel[("get", size)]
        row(f"netns put/get 128 x {name}", put / get, "x",
            f">= 0.9 (put {put:.2f}, get {get:.2f} GB/s)", put >= 0.9 * get)
        row(f"netns put 128 x {name} / iperf3", put / iperf, "x",
            f">= 1.0 (iperf3 one stream {iperf:.2f} GB/s)", put >= iperf)
else:
    rows.append(("netns put/get: no network namespaces here", 0.0, "", "", "skipped"))

print(f"{'figure':<40} {'value':>10} {'unit':<9} {'target':<40} met")
for name, value, unit, target, ok in rows:
    print(f"{name:<40} {value:10.2f} {unit:<9} {target:<40} {ok}")
PY
