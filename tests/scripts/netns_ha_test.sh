#!/bin/bash
# A leading master cut off from etcd while its clients still reach it: etcd, two masters elected
# in it, a store and a client, each in a network namespace of its own. A blackhole route in
# etcd's namespace drops everything etcd sends the leader, so the leader's lease renewals go
# unanswered while clients and stores reach it as before. It must stop answering as leader within
# its lease (2 s), before the other master can have been elected, never answer as leader again
# with its old epoch, and the client must carry on through the new leader. Segment descriptors
# live in the same etcd (no metadata service). Skipped (exit 77) where the kernel refuses.
#
#   netns_ha_test.sh MOONCAKE_BINARY STORE_CLIENT_CHECK
set -euo pipefail

MOONCAKE=$1
CHECK=$2
source "$(dirname "$0")/netns_lib.sh"

if [[ ! -x /usr/bin/etcd ]]; then
  echo "SKIP: /usr/bin/etcd is missing (Debian's etcd-server)"
  exit $SKIP
fi

host etcd 1
host ma 2
host mb 3
host s1 4
host cl 5

etcd="$subnet.1:2379"
ip netns exec "${tag}etcd" /usr/bin/etcd --name m0 --data-dir "$work/etcd" \
  --listen-client-urls "http://$etcd" --advertise-client-urls "http://$etcd" \
  --listen-peer-urls "http://$subnet.1:2380" --initial-advertise-peer-urls "http://$subnet.1:2380" \
  --initial-cluster "m0=http://$subnet.1:2380" --log-level error --logger zap \
  >"$work/etcd.out" 2>&1 &
pids+=($!)
for attempt in $(seq 1 300); do
  if ip netns exec "${tag}cl" curl -s -m 1 "http://$etcd/health" | grep -q '"true"'; then break; fi
  if ((attempt == 300)); then
    echo "FAIL: etcd did not start"
    cat "$work/etcd.out"
    exit 1
  fi
  sleep 0.1
done

# code NAME: the HTTP status a call to master NAME's RPC port gets from the client's namespace
# (200 while it leads, 503 while it does not, 000 if unreachable).
code() {
  ip netns exec "${tag}cl" curl -s -o /dev/null -w '%{http_code}' -m 1 -X POST -d '{}' \
    "http://$(addr "$1"):50051/v1/ListSegments" || true
}
addr() { if [[ $1 == ma ]]; then echo "$subnet.2"; else echo "$subnet.3"; fi; }
master() {
  start "$1" listening "$MOONCAKE" master --enable_ha --etcd_endpoints "$etcd" \
    --rpc_address "$(addr "$1")" --port 50051 --client_live_ttl_sec 2
}
wait_code() {  # wait_code NAME CODE: up to 20 s
  for _ in $(seq 1 200); do
    if [[ $(code "$1") == "$2" ]]; then return 0; fi
    sleep 0.1
  done
  echo "FAIL: master $1 never answered $2"
  exit 1
}

master ma
wait_code ma 200
master mb
wait_code mb 503
cat >"$work/s1.json" <<JSON
{"local_hostname": "$subnet.4", "metadata_server": "etcd://$etcd",
 "master_server_address": "etcd://$etcd", "protocol": "tcp", "global_segment_size": "256mb"}
JSON
start s1 serving "$MOONCAKE" store --config "$work/s1.json"

status=0
# check N: the client program from its namespace, through etcd, against the store.
check() {
  ip netns exec "${tag}cl" "$CHECK" --master "etcd://$etcd" --metadata "etcd://$etcd" \
    --local-hostname "$subnet.5" --expect-transport tcp --stores 1 >"$work/check$1.out" 2>&1 ||
    { status=1; tail -30 "$work/check$1.out"; }
}
echo "== client program through the first leader"
check 1

echo "== cutting the leader off from etcd"
ip -n "${tag}etcd" route add blackhole "$subnet.2/32"
cut=$(date +%s%N)
a_last_200=0 b_first_200=0 a_stopped=0
for _ in $(seq 1 400); do
  now=$(date +%s%N)
  a=$(code ma)
  if [[ $a == 200 ]]; then
    a_last_200=$now
  elif [[ $a_stopped == 0 ]]; then
    a_stopped=$now
  fi
  if [[ $b_first_200 == 0 && $(code mb) == 200 ]]; then b_first_200=$(date +%s%N); fi
  if [[ $a_stopped != 0 && $b_first_200 != 0 ]]; then break; fi
  sleep 0.02
done
if [[ $a_stopped == 0 ]]; then
  echo "FAIL: the cut-off leader kept answering as leader"
  exit 1
fi
if [[ $b_first_200 == 0 ]]; then
  echo "FAIL: the other master was never elected"
  exit 1
fi
echo "the cut-off leader refused calls $(((a_stopped - cut) / 1000000)) ms after the cut;" \
  "the other master led $(((b_first_200 - cut) / 1000000)) ms after it"
# Within its 2 s lease (and up to 1 s for probing: each probe is a process start and a call on a
# shared machine); that no answer of it as leader followed one of the new leader is checked next.
if ((a_stopped - cut > 3000000000)); then
  echo "FAIL: the cut-off leader answered as leader past its lease"
  status=1
fi
if ((a_last_200 != 0 && a_last_200 >= b_first_200)); then
  echo "FAIL: both masters answered as leader at once"
  status=1
fi

remounted=0
for _ in $(seq 1 200); do
  if ip netns exec "${tag}cl" curl -s -m 1 -X POST -d '{}' "http://$subnet.3:50051/v1/ListSegments" |
    grep -q "\"name\":\"$subnet.4:"; then
    remounted=$(date +%s%N)
    break
  fi
  sleep 0.1
done
if [[ $remounted == 0 ]]; then
  echo "FAIL: the store did not mount its segment at the new leader"
  exit 1
fi
echo "the store mounted its segment at the new leader $(((remounted - b_first_200) / 1000000)) ms" \
  "after it led"

echo "== client program through the new leader"
check 2

echo "== the cut healed: the old leader follows, it never leads with its old epoch"
ip -n "${tag}etcd" route del blackhole "$subnet.2/32"
for _ in $(seq 1 30); do
  if [[ $(code ma) == 200 ]]; then
    echo "FAIL: the old leader answered as leader after the cut healed"
    status=1
    break
  fi
  sleep 0.1
done
if ! ip netns exec "${tag}cl" curl -s -m 1 -X POST -d '{}' "http://$subnet.2:50051/v1/ListSegments" |
  grep -q "the leader is $subnet.3:50051"; then
  echo "FAIL: the old leader does not name the new one"
  status=1
fi
exit $status
