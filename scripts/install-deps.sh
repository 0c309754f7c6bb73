#!/usr/bin/env bash
# Installs everything mooncake needs to build, test and package, from Debian's archive only.
# Idempotent: packages already present are not reinstalled, and the cpp-httplib source is fetched once.
#
#   scripts/install-deps.sh            # build + test dependencies
#
# Debian ships cpp-httplib only as a shared library (its header is split from the implementation), but
# our binary must be self-contained. So we also fetch Debian's *source* package of the exact installed
# version (`apt-get source`, from a deb-src entry this script adds) and compile its single-header form
# into the binary. The source lands in .deps/ (ignored by git).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
deps_dir=${MOONCAKE_DEPS_DIR:-$root/.deps}

packages=(
  build-essential cmake ninja-build pkg-config git dpkg-dev
  libibverbs-dev librdmacm-dev libnl-3-dev libnl-route-3-dev
  libcli11-dev libcpp-httplib-dev nlohmann-json3-dev libabsl-dev libre2-dev libssl-dev
  googletest libgtest-dev libgmock-dev pybind11-dev libspdlog-dev libfmt-dev
  clang-format clang libclang-rt-14-dev rpm file curl iperf3 etcd-server
  python3 python3-pytest python3-numpy python3-setuptools python3-wheel python3-dev
  python3-pip python3-venv python3-torch
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f '${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

# deb-src entries so that `apt-get source` can fetch Debian's cpp-httplib source package.
src_list=/etc/apt/sources.list.d/mooncake-deb-src.sources
need_update=0
if ! grep -rqsE '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  "${sudo_cmd[@]}" tee "$src_list" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename $codename-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: $codename-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  need_update=1
fi

if [ ${#missing[@]} -gt 0 ] || [ $need_update -eq 1 ]; then
  echo "install-deps: apt-get update"
  "${sudo_cmd[@]}" apt-get update -q >/dev/null
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# cpp-httplib: the source package of the installed version, unpacked with Debian's patches applied.
httplib_version=$(dpkg-query -W -f '${Version}' libcpp-httplib-dev)
stamp="$deps_dir/cpp-httplib/.debian-version"
if [ "$(cat "$stamp" 2>/dev/null)" != "$httplib_version" ]; then
  echo "install-deps: fetching Debian source of cpp-httplib $httplib_version"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get source -q "cpp-httplib=$httplib_version" >/dev/null 2>"$tmp/err"); then
    "${sudo_cmd[@]}" apt-get update -q >/dev/null
    (cd "$tmp" && apt-get source -q "cpp-httplib=$httplib_version" >/dev/null 2>"$tmp/err") || {
      cat "$tmp/err" >&2
      echo "install-deps: could not fetch the cpp-httplib source package" >&2
      exit 1
    }
  fi
  src=$(find "$tmp" -maxdepth 1 -type d -name 'cpp-httplib-*' | head -n 1)
  rm -rf "$deps_dir/cpp-httplib"
  mkdir -p "$deps_dir/cpp-httplib"
  cp "$src/httplib.h" "$src/LICENSE" "$deps_dir/cpp-httplib/"
  echo "$httplib_version" > "$stamp"
fi
echo "install-deps: ok"
