# Sourced by the benchmark scripts: the limits of this machine that mooncake's figures are compared
# with, measured in the same run. REQUIRES: $build (the build directory).
py=/usr/bin/python3

# iperf3_gbs SECONDS: single-stream TCP bandwidth on 127.0.0.1, in GB/s.
iperf3_gbs() {
  local seconds=$1 port out
  out=$(mktemp)
  port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  local server=$!
  for _ in $(seq 50); do
    iperf3 -c 127.0.0.1 -p "$port" -t "$seconds" -J >"$out" 2>/dev/null && break
    sleep 0.1
  done
  wait "$server" 2>/dev/null || true
  $py -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/8e9)' "$out"
  rm -f "$out"
}

# memcpy_gbs BLOCK_BYTES SECONDS: single-thread memcpy bandwidth, in GB/s.
memcpy_gbs() {
  "$build/tests/memcpy_baseline" "$1" "$2" |
    $py -c 'import json,sys; print(json.load(sys.stdin)["gb_per_s"])'
}

# pingpong_p50_us REQUEST_BYTES RESPONSE_BYTES: p50 of a blocking two-process ping-pong on
# 127.0.0.1 with these sizes, in microseconds: the median of three runs. (On a virtual machine a
# run whose two processes share a CPU wakes its peer without an interrupt between CPUs and
# measures ~7 us instead of ~60; one such run alone is not the machine's floor.)
pingpong_p50_us() {
  for _ in 1 2 3; do "$build/tests/loopback_pingpong" 20000 "$1" "$2"; done |
    $py -c 'import json,sys; p=sorted(json.loads(l)["p50_us"] for l in sys.stdin); print(p[1])'
}

# redis_p50_us: Redis's GET and SET of 4 KiB values, one client, p50 in microseconds, as
# "GET SET". Starts its own redis-server on a free port of 127.0.0.1 and stops it.
redis_p50_us() {
  local port dir
  port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  dir=$(mktemp -d)
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$dir" \
    >"$dir/log" 2>&1 &
  local server=$!
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -d 4096 -c 1 -n 20000 --csv |
    $py -c '
import csv, sys
rows = {r["test"]: float(r["p50_latency_ms"]) * 1000 for r in csv.DictReader(sys.stdin)}
print(rows["GET"], rows["SET"])'
  kill "$server"
  wait "$server" 2>/dev/null || true
  rm -rf "$dir"
}
