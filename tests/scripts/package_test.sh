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

# A scratch root with its own dpkg database, seeded with the host's package list so that the
# package's dependency on libc6 is satisfied the way it would be on a real Debian host.
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
cp /var/lib/dpkg/status "$root/var/lib/dpkg/status"
touch "$root/var/lib/dpkg/available"
dpkg --root="$root" --force-script-chrootless --force-not-root -i "$deb" >"$work/dpkg.log" 2>&1 || {
  cat "$work/dpkg.log"; echo "FAIL: dpkg -i"; exit 1; }
grep -q '^Status: install ok installed' <<<"$(dpkg --root="$root" -s mooncake)" || {
  echo "FAIL: dpkg does not list mooncake as installed"; exit 1; }

for f in usr/bin/mooncake usr/bin/mooncake_master etc/mooncake/store.json \
         usr/lib/systemd/system/mooncake-metadata.service usr/lib/systemd/system/mooncake-master.service \
         usr/lib/systemd/system/mooncake-store.service; do
  [ -e "$root/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
grep -q 'ExecStart=/usr/bin/mooncake store --config /etc/mooncake/store.json' \
  "$root/usr/lib/systemd/system/mooncake-store.service" || { echo "FAIL: store unit"; exit 1; }
grep -q 'Depends: libc6' <<<"$(dpkg-deb -I "$deb")" || { echo "FAIL: deb does not depend on libc6"; exit 1; }
dpkg-deb -e "$deb" "$work/control"
grep -qx '/etc/mooncake/store.json' "$work/control/conffiles" || { echo "FAIL: conffiles"; exit 1; }

version=$("$root/usr/bin/mooncake" --version | head -n 1)
echo "installed: $version"
[[ "$version" =~ ^mooncake\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "FAIL: --version: $version"; exit 1; }
grep -q master <<<"$("$root/usr/bin/mooncake_master" --help)" || { echo "FAIL: mooncake_master alias"; exit 1; }

files=$(rpm -qlp "$rpm" 2>/dev/null)
for f in /usr/bin/mooncake /usr/bin/mooncake_master /etc/mooncake/store.json \
         /usr/lib/systemd/system/mooncake-metadata.service /usr/lib/systemd/system/mooncake-master.service \
         /usr/lib/systemd/system/mooncake-store.service; do
  grep -qx "$f" <<<"$files" || { echo "FAIL: $f missing from the rpm"; echo "$files"; exit 1; }
done
grep -qx /etc/mooncake/store.json <<<"$(rpm -qp --configfiles "$rpm" 2>/dev/null)" || {
  echo "FAIL: store.json is not a config file in the rpm"; exit 1; }
echo "ok: deb installs and runs; rpm lists $(echo "$files" | wc -l) files"
