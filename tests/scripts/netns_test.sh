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
source "$(dirname "$0")/netns_lib.sh"

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
