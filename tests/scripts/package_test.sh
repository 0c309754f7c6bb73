#!/usr/bin/env bash
# Builds the .deb and .rpm from a configured build directory, installs the .deb with dpkg into a
# scratch root, runs the installed mooncake, and checks the .rpm's file list.
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$build" && cpack -G "DEB;RPM" -B "$work/out" >"$work/cpack.log" 2>&1) || {
  cat "$work/cpack.log"; echo "FAIL: cpack"; exit 1; }
deb=$(ls "$work"/out/*.deb)
rpm=$(ls "$work"/out/*.rpm)
echo "built: $(basename "$deb") $(basename "$rpm")"

# A scratch root with its own dpkg database, seeded with the host's package list (the package
# depends on no other package: the binary is static; checked below).
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
cp /var/lib/dpkg/status "$root/var/lib/dpkg/status"
touch "$root/var/lib/dpkg/available"
dpkg --root="$root" --force-script-chrootless --force-not-root -i "$deb" >"$work/dpkg.log" 2>&1 || {
  cat "$work/dpkg.log"; echo "FAIL: dpkg -i"; exit 1; }
grep -q '^Status: install ok installed' <<<"$(dpkg --root="$root" -s mooncake)" || {
  echo "FAIL: dpkg does not list mooncake as installed"; exit 1; }

for f in usr/bin/mooncake usr/bin/mooncake_master etc/mooncake/store.json \
         etc/mooncake/master.env etc/mooncake/metadata.env usr/lib/systemd/system/mooncake-metadata.service usr/lib/systemd/system/mooncake-master.service \
         usr/lib/systemd/system/mooncake-store.service; do
  [ -e "$root/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
grep -q 'ExecStart=/usr/bin/mooncake store --config /etc/mooncake/store.json' \
  "$root/usr/lib/systemd/system/mooncake-store.service" || { echo "FAIL: store unit"; exit 1; }
# The binary is static, so neither package asks for a C library (or anything else) of the host.
if grep -Eq '^ *(Pre-)?Depends:' <<<"$(dpkg-deb -I "$deb")"; then
  dpkg-deb -I "$deb"; echo "FAIL: the deb depends on other packages"; exit 1
fi
if grep -Eq '^lib|\.so' <<<"$(rpm -qp --requires "$rpm" 2>/dev/null)"; then
  rpm -qp --requires "$rpm"; echo "FAIL: the rpm requires shared libraries"; exit 1
fi
# The units: restarted without a start limit to trip over, and hardened to an exposure of at most
# 4 on systemd-analyze's scale of 10 (checked offline: no systemd needs to run here).
for unit in "$root"/usr/lib/systemd/system/mooncake-*.service; do
  name=$(basename "$unit")
  grep -qx 'StartLimitIntervalSec=0' "$unit" && grep -qE '^RestartSec=[1-9]' "$unit" || {
    echo "FAIL: $name can trip over a start limit or restarts at once"; exit 1; }
  if command -v systemd-analyze >/dev/null; then
    exposure=$(systemd-analyze security --offline=true "$unit" 2>&1 |
      sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    [ -n "$exposure" ] || { systemd-analyze security --offline=true "$unit"; echo "FAIL: no rating for $name"; exit 1; }
    awk -v e="$exposure" 'BEGIN { exit !(e <= 4.0) }' || {
      systemd-analyze security --offline=true "$unit" | grep '✗'
      echo "FAIL: $name is rated $exposure exposed (at most 4)"; exit 1; }
    echo "$name: exposure $exposure"
  fi
done
dpkg-deb -e "$deb" "$work/control"
for f in store.json master.env metadata.env; do
  grep -qx "/etc/mooncake/$f" "$work/control/conffiles" || { echo "FAIL: conffiles: $f"; exit 1; }
done
# The master and metadata units take their flags from the installed files, and those flags start
# the services (on free ports here).
for service in master metadata; do
  unit="$root/usr/lib/systemd/system/mooncake-$service.service"
  var="MOONCAKE_${service^^}_ARGS"
  grep -qx "EnvironmentFile=-/etc/mooncake/$service.env" "$unit" &&
    grep -qx "ExecStart=/usr/bin/mooncake $service \$$var" "$unit" || {
    echo "FAIL: $service unit does not read /etc/mooncake/$service.env"; exit 1; }
  args=$(set -a; source "$root/etc/mooncake/$service.env"; echo "${!var}" | sed -E 's/--port=[0-9]+//')
  ports=(--port=0)
  if [[ $service == master ]]; then ports+=(--metrics_port=0); fi
  # shellcheck disable=SC2086  # split like systemd splits $VAR
  "$root/usr/bin/mooncake" "$service" $args "${ports[@]}" >"$work/$service.out" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do grep -q listening "$work/$service.out" && break; sleep 0.1; done
  kill -TERM "$pid"; wait "$pid" || true
  grep -q listening "$work/$service.out" || {
    cat "$work/$service.out"; echo "FAIL: $service does not start with $service.env's flags"; exit 1; }
done

version=$("$root/usr/bin/mooncake" --version | head -n 1)
echo "installed: $version"
[[ "$version" =~ ^mooncake\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "FAIL: --version: $version"; exit 1; }
grep -q master <<<"$("$root/usr/bin/mooncake_master" --help)" || { echo "FAIL: mooncake_master alias"; exit 1; }

files=$(rpm -qlp "$rpm" 2>/dev/null)
for f in /usr/bin/mooncake /usr/bin/mooncake_master /etc/mooncake/store.json \
         /etc/mooncake/master.env /etc/mooncake/metadata.env /usr/lib/systemd/system/mooncake-metadata.service /usr/lib/systemd/system/mooncake-master.service \
         /usr/lib/systemd/system/mooncake-store.service; do
  grep -qx "$f" <<<"$files" || { echo "FAIL: $f missing from the rpm"; echo "$files"; exit 1; }
done
for f in store.json master.env metadata.env; do
  grep -qx "/etc/mooncake/$f" <<<"$(rpm -qp --configfiles "$rpm" 2>/dev/null)" || {
    echo "FAIL: $f is not a config file in the rpm"; exit 1; }
done
# What a distribution's tools ask of a package: a license, a copyright file, a changelog, a real
# description and home page in the rpm, and lintian with no error.
for f in usr/share/doc/mooncake/copyright usr/share/doc/mooncake/changelog.gz \
         usr/share/doc/mooncake/LICENSE usr/lib/systemd/system-preset/80-mooncake.preset \
         usr/share/mooncake/prometheus/mooncake-alerts.yml \
         usr/share/mooncake/grafana/mooncake-dashboard.json; do
  [ -s "$root/$f" ] || { echo "FAIL: $f missing or empty"; exit 1; }
done
info=$(rpm -qip "$rpm" 2>/dev/null)
grep -q '^URL *: ' <<<"$info" && grep -q 'pools DRAM across servers' <<<"$info" || {
  echo "FAIL: the rpm's description or URL:"; echo "$info"; exit 1; }
if command -v lintian >/dev/null; then
  lint=$(lintian "$deb" 2>/dev/null || true)
  if grep -q '^E:' <<<"$lint"; then echo "$lint"; echo "FAIL: lintian reports errors"; exit 1; fi
  echo "lintian: $(grep -c '^W:' <<<"$lint" || true) warnings, no error"
fi
echo "ok: deb installs and runs; rpm lists $(echo "$files" | wc -l) files"
