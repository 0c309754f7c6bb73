#!/usr/bin/env bash
# The wheel of DIST (scripts/wheel.sh) installs wherever its tag says: its platform tag is
# manylinux_2_N_x86_64 with N the newest glibc version its extension asks for, N is at most 34
# (RHEL 9's glibc; Ubuntu 22.04 has 2.35), and the extension needs no shared library beyond glibc
# and libgcc_s (no libstdc++, abseil, libcrypto or rdma-core of the host) and exports only its
# module's entry point.
#
# Every wheel of DIST is checked (one per CPython: this machine's, and Debian 13's 3.13), and its
# extension must be built for the CPython its tag names.
set -euo pipefail
dist=$1
wheels=$(ls "$dist"/mooncake_transfer_engine-*-cp3*-manylinux_2_*_x86_64.whl 2>/dev/null || true)
[ -n "$wheels" ] || { echo "FAIL: no manylinux wheel in $dist: $(ls "$dist")"; exit 1; }
host=$(/usr/bin/python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
grep -q -- "-$host-$host-" <<<"$wheels" || { echo "FAIL: no wheel for this machine's $host in $dist"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for wheel in $wheels; do
  rm -rf "$work/unpacked"
  /usr/bin/python3 -m zipfile -e "$wheel" "$work/unpacked"
  so=$(ls "$work"/unpacked/mooncake/store*.so)
  python=$(basename "$wheel" | cut -d- -f3)  # cp313
  [[ "$(basename "$so")" == store.cpython-${python#cp}-* ]] || {
    echo "FAIL: $(basename "$wheel") carries $(basename "$so")"; exit 1; }

  tag=$(basename "$wheel" | grep -oE 'manylinux_2_[0-9]+' | cut -d_ -f3)
  floor=$(objdump -T "$so" | grep -oE 'GLIBC_2\.[0-9]+' | cut -d. -f2 | sort -n | tail -n 1)
  [ "$tag" = "$floor" ] || { echo "FAIL: tagged manylinux_2_$tag, but the extension needs glibc 2.$floor"; exit 1; }
  [ "$floor" -le 34 ] || {
    echo "FAIL: the extension needs glibc 2.$floor (RHEL 9 has 2.34); the symbols:"
    objdump -T "$so" | grep -E "GLIBC_2\.(3[5-9]|[4-9][0-9])"
    exit 1
  }
  if objdump -T "$so" | grep -qE '(GLIBCXX|CXXABI)_'; then
    echo "FAIL: the extension takes symbols from the host's libstdc++:"
    objdump -T "$so" | grep -E '(GLIBCXX|CXXABI)_' | head
    exit 1
  fi
  needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  allowed='^(libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|ld-linux-x86-64\.so\.2|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1)$'
  bad=$(grep -Ev "$allowed" <<<"$needed" || true)
  [ -z "$bad" ] || { echo "FAIL: the extension needs libraries beyond glibc and libgcc_s: $bad"; exit 1; }
  exported=$(nm -D --defined-only "$so" | awk '{print $3}')
  [ "$exported" = "PyInit_store" ] || { echo "FAIL: the extension exports more than PyInit_store:"; echo "$exported" | head; exit 1; }
  echo "ok: $(basename "$wheel"): glibc floor 2.$floor, needs $(echo $needed)"
done
