# Network namespaces as hosts, for the multi-host tests: sourced by netns_test.sh and
# netns_ha_test.sh. Sets `tag`, `subnet` and `work`; `host NAME INDEX` makes a namespace with
# address $subnet.INDEX plugged into a bridge, `start NAME NEEDLE COMMAND...` runs COMMAND there
# and waits for NEEDLE on its stdout ($work/NAME.out). Everything made is removed on exit; where
# the kernel refuses, the test is skipped (exit 77).
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

