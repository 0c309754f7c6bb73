# Sourced by scripts that run a local mooncake cluster on 127.0.0.1: start services, find their
# addresses, stop everything on exit. REQUIRES: $mooncake is the binary.

cluster_work=$(mktemp -d)
cluster_pids=()

cluster_cleanup() {
  for p in "${cluster_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$cluster_work"
}
trap cluster_cleanup EXIT

# start_service NAME PATTERN COMMAND...: runs COMMAND in the background and waits for PATTERN in
# its output ($cluster_work/NAME.log).
start_service() {
  local name=$1 pattern=$2
  shift 2
  "$@" >"$cluster_work/$name.log" 2>&1 &
  cluster_pids+=($!)
  for _ in $(seq 200); do
    grep -q "$pattern" "$cluster_work/$name.log" && return 0
    kill -0 "${cluster_pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$cluster_work/$name.log" >&2
  echo "$name did not start" >&2
  exit 1
}

# start_cluster STORES SEGMENT_SIZE: metadata, master and STORES stores, each its own process.
# Sets $metadata (URL), $rpc and $admin (host:port of the master's RPC and admin ports).
start_cluster() {
  local stores=$1 size=$2
  start_service metadata 'listening on' "$mooncake" metadata --host 127.0.0.1 --port 0
  metadata=$(grep -o 'http://[^ ]*' "$cluster_work/metadata.log" | head -n 1)
  start_service master 'listening' "$mooncake" master --rpc_address 127.0.0.1 --port 0 \
    --metrics_port 0
  rpc=$(grep -o 'rpc=[0-9.]*:[0-9]*' "$cluster_work/master.log" | head -n 1 | cut -d= -f2)
  admin=$(grep -o 'metrics=[0-9.]*:[0-9]*' "$cluster_work/master.log" | head -n 1 | cut -d= -f2)
  for i in $(seq "$stores"); do
    cat >"$cluster_work/store$i.json" <<JSON
{"local_hostname": "127.0.0.1", "metadata_server": "$metadata",
 "master_server_address": "$rpc", "protocol": "tcp", "global_segment_size": "$size"}
JSON
    start_service "store$i" 'serving segment' "$mooncake" store --config "$cluster_work/store$i.json" \
      --listen-address 127.0.0.1 --http-host 127.0.0.1 --http-port 0
  done
  # A store faults its segment in after it mounts (as a long-running one has): measure it warm.
  for i in $(seq "$stores"); do wait_until_warm "$cluster_work/store$i.log"; done
}

# wait_until_warm LOG...: waits (up to 60 s) until a store's log says its segment is faulted in.
wait_until_warm() {
  for _ in $(seq 600); do
    grep -q 'faulted in' "$@" && return 0
    sleep 0.1
  done
}

# stop_cluster: SIGTERM in reverse start order (stores unmount first); fails if any exits non-zero.
stop_cluster() {
  for ((i = ${#cluster_pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${cluster_pids[$i]}"
    wait "${cluster_pids[$i]}"
  done
  cluster_pids=()
}
