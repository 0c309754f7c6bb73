#!/usr/bin/env bash
# Builds the source distribution dist/mooncake_transfer_engine-<version>.tar.gz: for the CPythons
# no wheel is built for (3.10, 3.12, ...), `pip install` of it compiles the extension for the
# Python that runs pip, and the `mooncake` binary behind the entry points (python/setup.py). It
# holds the source tree the build needs and the Debian source packages install-deps.sh unpacked
# for the single-file libraries that distributions ship only as shared ones (cpp-httplib,
# simdjson); what it needs of the host (abseil among it) is in docs/python.md. REQUIRES: scripts/install-deps.sh has run.
#
#   scripts/sdist.sh        # dist/mooncake_transfer_engine-<version>.tar.gz
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOONCAKE_BUILD_DIR:-$root/build}
deps=${MOONCAKE_DEPS_DIR:-$root/.deps}
version=$(sed -n 's/^project(mooncake VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")

stage=$build/sdist/mooncake_transfer_engine-$version
rm -rf "$build/sdist"
mkdir -p "$stage/.deps"
# The tracked files of the source tree the build reads (tests, docs and scripts stay out).
(cd "$root" && git ls-files -- CMakeLists.txt LICENSE README.md cmake src python packaging |
  while read -r f; do [ ! -e "$f" ] || cp --parents -p "$f" "$stage/"; done)
for pkg in cpp-httplib simdjson; do
  [ -d "$deps/$pkg" ] || { echo "sdist: no $deps/$pkg: run scripts/install-deps.sh" >&2; exit 1; }
  cp -r "$deps/$pkg" "$stage/.deps/$pkg"
done
cp "$root/python/setup.py" "$root/python/pyproject.toml" "$stage/"
cat >"$stage/MANIFEST.in" <<'MANIFEST'
include CMakeLists.txt LICENSE README.md pyproject.toml
graft cmake
graft src
graft python
graft packaging
graft .deps
MANIFEST
mkdir -p "$root/dist"
rm -f "$root/dist"/mooncake[-_]transfer[-_]engine-*.tar.gz
(cd "$stage" && /usr/bin/python3 setup.py -q sdist -d "$root/dist" >/dev/null)
rm -rf "$build/sdist"
echo "built $(ls "$root/dist"/mooncake[-_]transfer[-_]engine-"$version".tar.gz)"
