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
