#!/usr/bin/env bash
# Configures and builds everything (binary, tests) into build/ (or $MOONCAKE_BUILD_DIR).
#   scripts/build.sh [extra cmake args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}
jobs=${MOONCAKE_JOBS:-2}
if [ ! -f "$build/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
ninja -C "$build" -j "$jobs"
