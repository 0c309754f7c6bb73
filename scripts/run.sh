#!/usr/bin/env bash
# The main job: install what is needed, build, and run mooncake locally on 127.0.0.1.
#
# Until the store service and the client land, this shows each part that is built, and stops
# everything it started:
#   1. `mooncake metadata`: stores, returns and deletes a segment descriptor;
#   2. `mooncake master`, driven by `mooncake bench master` (RPC rates and latencies);
#   3. the transfer engine: `mooncake bench transfer` over TCP and over shared memory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
mooncake="$build/src/mooncake"
"$mooncake" --version

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Starts a service in the background; waits for its ready line, which it prints into $work/NAME.log.
start() {
  local name=$1 pattern=$2
  shift 2
  "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q "$pattern" "$work/$name.log" && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/$name.log" >&2
  echo "$name did not start" >&2
  exit 1
}

echo
echo "== 1. mooncake metadata"
start metadata 'listening on' "$mooncake" metadata --host 127.0.0.1 --port 0
url=$(grep -o 'http://[^ ]*' "$work/metadata.log" | head -n 1)
key="mooncake/segment/$(hostname):12345"
query="key=$(printf '%s' "$key" | sed 's#/#%2F#g; s#:#%3A#g')"
descriptor='{"name":"demo:12345","tcp":{"host":"demo","port":12345},"buffers":[]}'
echo "PUT $key -> $(curl -sS -X PUT --data-binary "$descriptor" "$url?$query")"
echo "GET $key -> $(curl -sS "$url?$query")"
echo "DELETE $key -> $(curl -sS -X DELETE "$url?$query")"
echo "GET again -> $(curl -sS -w ' [HTTP %{http_code}]' "$url?$query")"

echo
echo "== 2. mooncake master"
start master 'listening' "$mooncake" master --rpc_address 127.0.0.1 --port 0 --metrics_port 0
admin=$(grep -o 'metrics=[0-9.]*:[0-9]*' "$work/master.log" | head -n 1 | cut -d= -f2)
rpc=$(grep -o 'rpc=[0-9.]*:[0-9]*' "$work/master.log" | head -n 1 | cut -d= -f2)
echo "segments mounted (GET /get_all_segments): '$(curl -sS "http://$admin/get_all_segments")'"
"$mooncake" bench master --master "$rpc" --duration 1s --threads 2 | grep -v '^{'
echo "-- the master after the bench, which unmounted its segment (so its objects went with it):"
curl -sS "http://$admin/metrics/summary"

echo
echo "== 3. transfer engine"
start target 'target ready' "$mooncake" bench transfer --mode target --local-hostname 127.0.0.1 --buffer-size 256MiB
segment=$(grep -o 'segment=[^ ]*' "$work/target.log" | cut -d= -f2)
for protocol in tcp shm; do
  "$mooncake" bench transfer --target "$segment" --protocol "$protocol" --op read \
    --block-size 1MiB --batch-size 32 --threads 2 --duration 2s 2>/dev/null | head -n 1
done
"$mooncake" bench transfer --target "$segment" --op read --block-size 4KiB --batch-size 1 \
  --duration 2s 2>/dev/null | head -n 1

echo
echo "== stopping"
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do wait "$p"; done
pids=()
echo "all stopped cleanly"
