#!/usr/bin/env bash
# The monitoring that packaging/ ships: the alert rules pass `promtool check rules` and their unit
# tests (tests/packaging/mooncake-alerts-test.yml); every query of the Grafana dashboard is valid
# PromQL; and every series the rules and the dashboard name is served by a real cluster (metadata
# service, master, a store) from its start.
#
#   observability_test.sh MOONCAKE_BINARY SOURCE_DIR PROMTOOL
set -euo pipefail

mooncake=$1
source_dir=$2
promtool=$(realpath -m "$3")
rules=$source_dir/packaging/prometheus/mooncake-alerts.yml
dashboard=$source_dir/packaging/grafana/mooncake-dashboard.json
python=/usr/bin/python3

if [ ! -x "$promtool" ]; then
  echo "no promtool at $promtool: scripts/install-deps.sh unpacks Debian's prometheus package there" >&2
  exit 1
fi
# shellcheck source=../../scripts/lib/cluster.sh
. "$source_dir/scripts/lib/cluster.sh"

echo "== alert rules"
"$promtool" check rules "$rules"
(cd "$source_dir/tests/packaging" && "$promtool" test rules mooncake-alerts-test.yml)

echo "== the dashboard's queries"
# Each query becomes a recording rule, Grafana's variables replaced by what they stand for, so
# that promtool parses it.
"$python" - "$dashboard" >"$cluster_work/dashboard-rules.yml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
assert exprs, "the dashboard has no query"
print("groups:\n  - name: dashboard\n    rules:")
for i, e in enumerate(exprs):
    e = e.replace("$__rate_interval", "5m")
    for var in ("master_job", "store_job", "client_job", "metadata_job", "master", "store"):
        e = e.replace("$" + var, ".*")
    assert "$" not in e, f"an unknown variable in {e}"
    print(f"      - record: dashboard:query{i}\n        expr: {json.dumps(e)}")
PY
"$promtool" check rules "$cluster_work/dashboard-rules.yml"

echo "== every series they name is served"
start_cluster 1 64MiB
metadata_port=${metadata#http://127.0.0.1:}
metadata_port=${metadata_port%%/*}
store_http=$(grep -o 'http=127.0.0.1:[0-9]*' "$cluster_work/store1.log" | head -n 1 | cut -d: -f2)
for target in "$admin" "127.0.0.1:$metadata_port" "127.0.0.1:$store_http"; do
  curl -fsS "http://$target/metrics"
done >"$cluster_work/served.txt"
"$python" - "$rules" "$dashboard" "$cluster_work/served.txt" <<'PY'
import re, sys
served = set()
for line in open(sys.argv[3]):
    if line and not line.startswith("#"):
        served.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
named = set()
for path in sys.argv[1:3]:
    named |= set(re.findall(r"\b(?:mooncake|process)_[a-z0-9_]+", open(path).read()))
missing = sorted(n for n in named if n not in served)
print(f"{len(named)} series named, {len(served)} served")
if missing:
    sys.exit("named by the rules or the dashboard but served by no process: " + ", ".join(missing))
PY
stop_cluster
echo "observability: ok"
