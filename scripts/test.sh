#!/usr/bin/env bash
# Installs what is needed, builds, builds and installs the Python wheel (into build/venv), builds
# the source distribution, and runs
# every test (unit, integration against the real binary, the Python tests against the wheel, the
# self-containment check, the format check, the .deb/.rpm packages); then the same unit and
# integration tests again under AddressSanitizer + UndefinedBehaviorSanitizer and the libFuzzer
# targets for a bounded time (scripts/sanitize.sh; MOONCAKE_SKIP_SANITIZERS=1 skips that part). Exits non-zero on any failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
"$root/scripts/wheel.sh"
"$root/scripts/sdist.sh"
(cd "$build" && ctest -j "${MOONCAKE_JOBS:-2}" --output-on-failure --timeout 600)
if [ "${MOONCAKE_SKIP_SANITIZERS:-0}" != 1 ]; then
  "$root/scripts/sanitize.sh"
fi
