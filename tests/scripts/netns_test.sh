#!/bin/bash
# Multi-host on one machine: metadata, master, two stores and a client program, each in a network
# namespace of its own, joined by a bridge that lives in a namespace of its own too (so the host's
# firewall rules do not apply). TCP really crosses "hosts", and shared memory must not be chosen.
# Everything created here is removed on exit. Skipped (exit 77) where the kernel refuses.
#
#   netns_test.sh MOONCAKE_BINARY STORE_CLIENT_CHECK
set -euo pipefail

MOONCAKE=$1
CHECK=$2
SKIP=77

id=$$
tag="mc$((id % 100000))"
subnet="10.$((200 + id % 50)).$((id / 50 % 250))"
work=$(mktemp -d)
namespaces=()
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: network namespaces need root"
  exit $SKIP
fi
if ! ip netns add "${tag}sw" 2>"$work/err"; then
  echo "SKIP: the kernel refuses network namespaces: $(cat "$work/err")"
  exit $SKIP
fi
namespaces+=("${tag}sw")
if ! ip -n "${tag}sw" link add br0 type bridge 2>"$work/err"; then
  echo "SKIP: the kernel refuses a bridge: $(cat "$work/err")"
  exit $SKIP
fi
ip -n "${tag}sw" link set br0 up

# host NAME INDEX: a namespace with address $subnet.INDEX, plugged into the bridge.
host() {
  local ns="${tag}$1" index=$2
  ip netns add "$ns"
  namespaces+=("$ns")
  ip link add "${tag}h$index" type veth peer name "${tag}p$index"
  ip link set "${tag}h$index" netns "$ns"
  ip link set "${tag}p$index" netns "${tag}sw"
  ip -n "${tag}sw" link set "${tag}p$index" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$subnet.$index/24" dev "${tag}h$index"
  ip -n "$ns" link set "${tag}h$index" up
}

# start NAME NEEDLE COMMAND...: runs COMMAND in namespace NAME, waits for NEEDLE on its stdout.
start() {
  local name=$1 ns="${tag}$1" needle=$2
  shift 2
  ip netns exec "$ns" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  local pid=$!
  for _ in $(seq 1 400); do
    if grep -q "$needle" "$work/$name.out"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "FAIL: $name did not start"
  cat "$work/$name.err"
  exit 1
}

host meta 1
host master 2
host s1 3
host s2 4
host cl 5

metadata="http://$subnet.1:8080/metadata"
master="$subnet.2:50051"
start meta listening "$MOONCAKE" metadata --port 8080
start master listening "$MOONCAKE" master --client_live_ttl_sec 5
for i in 1 2; do
  cat >"$work/s$i.json" <<JSON
{"local_hostname": "$subnet.$((2 + i))", "metadata_server": "$metadata",
 "master_server_address": "$master", "protocol": "tcp", "global_segment_size": "256mb"}
JSON
  start "s$i" serving "$MOONCAKE" store --config "$work/s$i.json"
done

status=0
echo "== client program in its own namespace (expects TCP to both stores)"
ip netns exec "${tag}cl" "$CHECK" --master "$master" --metadata "$metadata" \
  --local-hostname "$subnet.5" --expect-transport tcp --stores 2 || status=1

echo "== bench store --validate across the namespaces"
if ! ip netns exec "${tag}cl" "$MOONCAKE" bench store --validate --master "$master" \
  --metadata "$metadata" --local-hostname "$subnet.5" --validate-size 16MiB >"$work/validate.out"; then
  status=1
fi
cat "$work/validate.out"
if ! grep -q '"ok":true' "$work/validate.out" || [[ $(grep -c ' tcp ' "$work/validate.out") -ne 2 ]]; then
  echo "FAIL: validation did not pass over tcp for both segments"
  status=1
fi
exit $status
