#!/usr/bin/env bash
# Builds the .deb and the .rpm into dist/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
mkdir -p "$root/dist"
(cd "$build" && cpack -G "DEB;RPM" -B "$root/dist")
rm -rf "$root/dist/_CPack_Packages"
ls -l "$root"/dist/*.deb "$root"/dist/*.rpm
