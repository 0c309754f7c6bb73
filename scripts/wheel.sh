#!/usr/bin/env bash
# Builds the wheel `mooncake-transfer-engine` with Debian's /usr/bin/python3 and installs it into a
# virtual environment that sees Debian's Python packages (torch, numpy, pytest):
#
#   scripts/wheel.sh                 # dist/mooncake_transfer_engine-<version>-cp311-...whl,
#                                    # installed into build/venv (MOONCAKE_VENV to choose)
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

stage="$build/wheel"
rm -rf "$stage"
mkdir -p "$stage/mooncake/bin"
cp "$root/python/setup.py" "$stage/"
cp "$root/python/mooncake/"*.py "$stage/mooncake/"
cp "$build/python/mooncake/"store*.so "$stage/mooncake/"
cp "$build/src/mooncake" "$stage/mooncake/bin/mooncake"
# Debug information stays in the build tree; the wheel is a fifth of the size without it.
strip --strip-debug "$stage/mooncake/"store*.so "$stage/mooncake/bin/mooncake"
# The glibc floor: the newest GLIBC_2.N version among the symbols the extension takes from glibc.
floor=$(objdump -T "$stage/mooncake/"store*.so | grep -oE 'GLIBC_2\.[0-9]+' | cut -d. -f2 | sort -n | tail -n 1)
platform=manylinux_2_${floor}_x86_64

mkdir -p "$root/dist"
rm -f "$root/dist"/mooncake_transfer_engine-*.whl
MOONCAKE_VERSION=$version MOONCAKE_WHEEL_PLATFORM=$platform "$py" -m pip wheel --quiet --no-deps --no-build-isolation --no-index \
  -w "$root/dist" "$stage"
wheel=$(ls "$root/dist"/mooncake_transfer_engine-"$version"-*.whl)

if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install --quiet --no-index --no-deps --force-reinstall "$wheel"
echo "built $wheel"
echo "installed into $venv ($venv/bin/python, $venv/bin/mooncake_master)"
