#!/usr/bin/env bash
# The main job: install what is needed, build, and run mooncake locally.
#
# Today this starts `mooncake metadata` on 127.0.0.1, shows it storing, returning and deleting a
# segment descriptor, prints its metrics, and stops it. (When the master, store and bench land, this
# becomes an all-in-one local cluster plus the built-in bench.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
mooncake="$build/src/mooncake"
"$mooncake" --version

log=$(mktemp)
"$mooncake" metadata --host 127.0.0.1 --port 0 >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  grep -q 'listening on' "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "mooncake metadata exited" >&2; exit 1; }
  sleep 0.1
done
url=$(grep -o 'http://[^ ]*' "$log" | head -n 1)
echo "== mooncake metadata is up at $url"

key="mooncake/ram/$(hostname):12345"
query="key=$(printf '%s' "$key" | sed 's#/#%2F#g; s#:#%3A#g')"
descriptor='{"name":"demo:12345","protocol":"tcp","buffers":[{"addr":4096,"length":1048576}]}'
echo "== PUT $key"
curl -sS -X PUT --data-binary "$descriptor" "$url?$query"; echo
echo "== GET $key"
curl -sS "$url?$query"; echo
echo "== DELETE $key"
curl -sS -X DELETE "$url?$query"; echo
echo "== GET $key again (expect 404 with a JSON error)"
curl -sS -w ' [HTTP %{http_code}]' "$url?$query"; echo
echo "== GET ${url%/metadata}/health"
curl -sS "${url%/metadata}/health"; echo
echo "== request counters from ${url%/metadata}/metrics"
curl -sS "${url%/metadata}/metrics" | grep '^mooncake_http_requests_total'

kill -TERM "$pid"
wait "$pid"
echo "== mooncake metadata stopped cleanly (exit $?)"
trap 'rm -f "$log"' EXIT
