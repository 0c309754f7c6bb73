#!/usr/bin/env bash
# The mooncake binary must run on a host with nothing but the C library: ldd may list only glibc's
# own objects. It must also carry rdma-core's providers (linked statically), not load them at run time.
set -euo pipefail
binary=$1

libs=$(ldd "$binary" | awk '{print $1}')
allowed='^(linux-vdso\.so\.1|/lib64/ld-linux-x86-64\.so\.2|ld-linux[^ ]*|libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1)$'
bad=$(echo "$libs" | grep -Ev "$allowed" || true)
if [ -n "$bad" ]; then
  echo "FAIL: $binary links libraries beyond the C library:"
  echo "$bad"
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
echo "ok: $(echo "$libs" | tr '\n' ' ')"
