#!/usr/bin/env bash
# Builds the wheel `mooncake-transfer-engine` with Debian's /usr/bin/python3 and installs it into a
# virtual environment that sees Debian's Python packages (torch, numpy, pytest):
#
#   scripts/wheel.sh                 # dist/mooncake_transfer_engine-<version>-cp311-...whl (this
#                                    # machine's CPython), installed into build/venv
#                                    # (MOONCAKE_VENV to choose), and -cp313-...whl for Debian 13's
#                                    # CPython (from the headers install-deps.sh unpacked)
#   build/venv/bin/python -c 'from mooncake.store import MooncakeDistributedStore'
#
# Elsewhere, `pip install dist/mooncake_transfer_engine-*.whl` installs the same wheel. It carries
# the extension, which needs nothing but glibc (everything else is linked in; the host's
# libibverbs is loaded when RDMA is asked for), and the static `mooncake` binary behind
# `mooncake_master` and the `python -m` entry points. It is tagged manylinux_2_N_x86_64, N the
# newest glibc symbol version the extension asks for (tests/scripts/wheel_floor_test.sh checks).
# Nothing comes from a package index. REQUIRES: scripts/install-deps.sh has run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}
venv=${MOONCAKE_VENV:-$build/venv}
py=/usr/bin/python3

"$root/scripts/build.sh" >/dev/null
version=$("$build/src/mooncake" --version | head -n 1 | cut -d' ' -f2)

mkdir -p "$root/dist"
rm -f "$root/dist"/mooncake_transfer_engine-*.whl

# pack_wheel SO TAG: the wheel of the extension SO, built for CPython TAG (cp311, cp313, ...).
pack_wheel() {
  local so=$1 tag=$2 stage=$build/wheel-$2 floor platform built
  rm -rf "$stage"
  mkdir -p "$stage/mooncake/bin"
  cp "$root/python/setup.py" "$stage/"
  cp "$root/python/mooncake/"*.py "$stage/mooncake/"
  cp "$so" "$stage/mooncake/"
  cp "$build/src/mooncake" "$stage/mooncake/bin/mooncake"
  # Debug information stays in the build tree; the wheel is a fifth of the size without it.
  strip --strip-debug "$stage/mooncake/"store*.so "$stage/mooncake/bin/mooncake"
  # The glibc floor: the newest GLIBC_2.N version among the symbols the extension takes from glibc.
  floor=$(objdump -T "$stage/mooncake/"store*.so | grep -oE 'GLIBC_2\.[0-9]+' | cut -d. -f2 | sort -n | tail -n 1)
  platform=manylinux_2_${floor}_x86_64
  rm -rf "$stage.out"
  MOONCAKE_VERSION=$version MOONCAKE_WHEEL_PLATFORM=$platform "$py" -m pip wheel --quiet --no-deps \
    --no-build-isolation --no-index -w "$stage.out" "$stage"
  built=$(ls "$stage.out"/mooncake_transfer_engine-"$version"-*.whl)
  if [[ "$built" != *-"$tag"-"$tag"-* ]]; then
    # Packed by this machine's CPython, so tagged for it: retag it for the one the extension is
    # for (wheel's own unpack and pack, which rewrite RECORD and name the file from WHEEL's tags).
    "$py" -m wheel unpack --dest "$stage.out/unpacked" "$built" >/dev/null
    sed -i -E "s/^Tag: cp[0-9]+-cp[0-9]+-/Tag: $tag-$tag-/" "$stage.out"/unpacked/*/*.dist-info/WHEEL
    rm "$built"
    "$py" -m wheel pack --dest-dir "$stage.out" "$stage.out"/unpacked/* >/dev/null
    built=$(ls "$stage.out"/mooncake_transfer_engine-"$version"-*.whl)
  fi
  mv "$built" "$root/dist/"
  rm -rf "$stage" "$stage.out"
  echo "built $root/dist/$(basename "$built")"
}

host_tag=$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
pack_wheel "$(ls "$build/python/mooncake/"store*.so)" "$host_tag"
# The CPythons of later Debian releases (python/CMakeLists.txt builds their extensions).
for so in "$build"/python3[0-9]*/mooncake/store.cpython-*.so; do
  [ -e "$so" ] || continue
  pack_wheel "$so" "cp$(basename "$(dirname "$(dirname "$so")")" | sed 's/^python//')"
done
wheel=$(ls "$root/dist"/mooncake_transfer_engine-"$version"-"$host_tag"-*.whl)

if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install --quiet --no-index --no-deps --force-reinstall "$wheel"
echo "installed into $venv ($venv/bin/python, $venv/bin/mooncake_master)"
