#!/usr/bin/env bash
# Builds the wheel `mooncake-transfer-engine` with Debian's /usr/bin/python3 and installs it into a
# virtual environment that sees Debian's Python packages (torch, numpy, pytest):
#
#   scripts/wheel.sh                 # dist/mooncake_transfer_engine-<version>-cp311-...whl,
#                                    # installed into build/venv (MOONCAKE_VENV to choose)
#   build/venv/bin/python -c 'from mooncake.store import MooncakeDistributedStore'
#
# Elsewhere, `pip install dist/mooncake_transfer_engine-*.whl` installs the same wheel. It carries
# the extension, the shared libraries it needs that a bare system may lack (abseil, rdma-core's
# libibverbs, libnl), and the `mooncake` binary behind `mooncake_master` and the `python -m` entry
# points. Nothing comes from a package index. REQUIRES: scripts/install-deps.sh has run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}
venv=${MOONCAKE_VENV:-$build/venv}
py=/usr/bin/python3

"$root/scripts/build.sh" >/dev/null
version=$("$build/src/mooncake" --version | head -n 1 | cut -d' ' -f2)

stage="$build/wheel"
rm -rf "$stage"
mkdir -p "$stage/mooncake/bin" "$stage/mooncake/_libs"
cp "$root/python/setup.py" "$stage/"
cp "$root/python/mooncake/"*.py "$stage/mooncake/"
cp "$build/python/mooncake/"store*.so "$stage/mooncake/"
cp "$build/src/mooncake" "$stage/mooncake/bin/mooncake"
# Debug information stays in the build tree; the wheel is a fifth of the size without it.
strip --strip-debug "$stage/mooncake/"store*.so "$stage/mooncake/bin/mooncake"
# The extension's shared libraries beyond glibc, libstdc++ and libgcc: found through $ORIGIN/_libs.
ldd "$stage/mooncake/"store*.so | awk '$3 ~ /^\// {print $3}' |
  grep -E '/lib(absl_|ibverbs|nl-|crypto)' | while read -r lib; do cp -L "$lib" "$stage/mooncake/_libs/"; done

mkdir -p "$root/dist"
rm -f "$root/dist"/mooncake_transfer_engine-*.whl
MOONCAKE_VERSION=$version "$py" -m pip wheel --quiet --no-deps --no-build-isolation --no-index \
  -w "$root/dist" "$stage"
wheel=$(ls "$root/dist"/mooncake_transfer_engine-"$version"-*.whl)

if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install --quiet --no-index --no-deps --force-reinstall "$wheel"
echo "built $wheel"
echo "installed into $venv ($venv/bin/python, $venv/bin/mooncake_master)"
