#!/usr/bin/env bash
# Installs everything mooncake needs to build, test and package, from Debian's archive only.
# Idempotent: packages already present are not reinstalled, and source packages are fetched once.
#
#   scripts/install-deps.sh            # build + test dependencies
#
# Debian ships cpp-httplib only as a shared library (its header is split from the implementation), but
# our binary must be self-contained. So we also fetch Debian's *source* package of the exact installed
# version (`apt-get source`, from a deb-src entry this script adds) and compile its single-header form
# into the binary (simdjson likewise). The ThreadSanitizer build also compiles abseil from its Debian source package.
# The sources land in .deps/ (ignored by git).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
deps_dir=${MOONCAKE_DEPS_DIR:-$root/.deps}
# shellcheck source=lib/archive.sh
. "$root/scripts/lib/archive.sh"

packages=(
  build-essential cmake ninja-build pkg-config git dpkg-dev
  libibverbs-dev librdmacm-dev libnl-3-dev libnl-route-3-dev
  libcli11-dev libcpp-httplib-dev libhttp-parser-dev libsimdjson-dev nlohmann-json3-dev libabsl-dev libre2-dev libyaml-cpp-dev libssl-dev
  googletest libgtest-dev libgmock-dev pybind11-dev libspdlog-dev libfmt-dev
  clang-format clang libclang-rt-14-dev rpm file curl iperf3 redis-server redis-tools etcd-server
  lintian debootstrap
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

# deb-src entries so that `apt-get source` can fetch Debian's cpp-httplib source package. They are
# derived from the machine's own apt sources (the "deb" entries of this release, whichever mirror
# they name), never written from a host name of ours.
src_list=/etc/apt/sources.list.d/mooncake-deb-src.sources
need_update=0
if ! grep -rqsE '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -rqsE '^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  # deb822 files: every enabled "deb" stanza with a suite of this release, as "deb-src".
  deb822=$(find /etc/apt/sources.list.d -maxdepth 1 -name '*.sources' ! -name "$(basename "$src_list")" -print0 |
    xargs -0 -r awk -v codename="$codename" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; suites = ""; enabled = "yes"; body = ""; key = ""
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^#/) continue
          if (line ~ /^[ \t]/) { if (key != "Types" && key != "Suites" && key != "Enabled") body = body "\n" line; continue }
          key = line; sub(/:.*/, "", key)
          value = line; sub(/^[^:]*:[ \t]*/, "", value)
          if (key == "Types") types = value
          else if (key == "Suites") suites = value
          else if (key == "Enabled") enabled = value
          else body = body "\n" line
        }
        if (enabled == "no" || (" " types " ") !~ / deb /) next
        n = split(suites, s, /[ \t]+/); keep = ""
        for (j = 1; j <= n; j++) if (s[j] == codename || index(s[j], codename "-") == 1) keep = keep " " s[j]
        if (keep == "") next
        printf "%sTypes: deb-src\nSuites:%s%s\n", (out++ ? "\n" : ""), keep, body
      }')
  # One-line files: "deb [options] URI SUITE COMPONENTS" of this release, as "deb-src".
  # Either kind of file may be absent (a machine with deb822 sources only has no sources.list):
  # awk reads only those that exist, and reads nothing when none do.
  list_files=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && list_files+=("$f")
  done
  one_line=$([ ${#list_files[@]} -eq 0 ] || awk -v codename="$codename" '
      $1 != "deb" { next }
      {
        f = 2
        if ($2 ~ /^\[/) { while (f <= NF && $f !~ /\]$/) f++; f++ }
        suite = $(f + 1)
        if (suite == codename || index(suite, codename "-") == 1) { $1 = "deb-src"; print }
      }' "${list_files[@]}")
  if [ -z "$codename" ] || { [ -z "$deb822" ] && [ -z "$one_line" ]; }; then
    echo "install-deps: no Debian \"deb\" source of this release${codename:+ ($codename)} in /etc/apt;" \
      "add one (or a deb-src entry) so that apt-get source can fetch cpp-httplib" >&2
    exit 1
  fi
  if [ -n "$deb822" ]; then
    printf '%s\n' "$deb822" | "${sudo_cmd[@]}" tee "$src_list" >/dev/null
  fi
  if [ -n "$one_line" ]; then
    printf '%s\n' "$one_line" | "${sudo_cmd[@]}" tee "${src_list%.sources}.list" >/dev/null
  fi
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

# Debian's source package of an installed binary package's exact version, unpacked with Debian's
# patches applied into a temporary directory; prints the unpacked tree's path.
fetch_source() {  # source package, version
  local tmp=$1 pkg=$2 version=$3
  if ! (cd "$tmp" && apt-get source -q "$pkg=$version" >/dev/null 2>"$tmp/err"); then
    "${sudo_cmd[@]}" apt-get update -q >/dev/null
    (cd "$tmp" && apt-get source -q "$pkg=$version" >/dev/null 2>"$tmp/err") || {
      cat "$tmp/err" >&2
      echo "install-deps: could not fetch the $pkg source package" >&2
      exit 1
    }
  fi
  find "$tmp" -maxdepth 1 -type d -name "$pkg-*" | head -n 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# vendor_source SOURCE BINARY FILE...: Debian's source package SOURCE of the installed package
# BINARY's version, fetched again only when that version changes; FILE... (paths in the source
# tree, or "." for the whole tree) land in $deps_dir/SOURCE.
vendor_source() {
  local pkg=$1 binary=$2 version stamp src f
  shift 2
  version=$(dpkg-query -W -f '${Version}' "$binary")
  stamp="$deps_dir/$pkg/.debian-version"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then return 0; fi
  echo "install-deps: fetching Debian source of $pkg $version"
  mkdir -p "$tmp/$pkg"
  src=$(fetch_source "$tmp/$pkg" "$pkg" "$version")
  rm -rf "${deps_dir:?}/$pkg"
  mkdir -p "$deps_dir"
  if [ "$1" = . ]; then
    cp -r "$src" "$deps_dir/$pkg"
  else
    mkdir -p "$deps_dir/$pkg"
    for f in "$@"; do cp "$src/$f" "$deps_dir/$pkg/"; done
  fi
  echo "$version" > "$stamp"
}

# cpp-httplib: its single header, compiled into the binary.
vendor_source cpp-httplib libcpp-httplib-dev httplib.h LICENSE
# simdjson: Debian ships it only as a shared library; its amalgamated source (one header, one .cpp)
# is compiled into the binary and the wheel, like cpp-httplib. It parses the control plane's hot
# batch bodies (docs/performance.md).
vendor_source simdjson libsimdjson-dev singleheader/simdjson.h singleheader/simdjson.cpp LICENSE
# abseil: the source of the installed libabsl-dev, for the ThreadSanitizer build only (TSan sees
# the ordering that absl::Mutex gives only when abseil itself is instrumented, so that build
# compiles abseil from this tree; every other build links Debian's archives).
vendor_source abseil libabsl-dev .

# unpack_debs DIR: DIR made anew holding the contents of the packages downloaded into $tmp, which
# are then removed.
unpack_debs() {
  local dir=$1 deb
  rm -rf "${dir:?}"
  mkdir -p "$dir"
  for deb in "$tmp"/*.deb; do
    dpkg-deb -x "$deb" "$dir"
    rm "$deb"
  done
}

# unpack_binary PACKAGE: Debian's binary package PACKAGE downloaded and unpacked into
# $deps_dir/PACKAGE, not installed (nothing of it runs as a service here); again only when the
# archive's version changes.
unpack_binary() {
  local pkg=$1 version stamp
  version=$(apt-cache policy "$pkg" | awk '/Candidate:/ { print $2 }')
  stamp="$deps_dir/$pkg/.debian-version"
  if [ -n "$version" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then return 0; fi
  echo "install-deps: unpacking Debian's $pkg $version"
  rm -f "$tmp"/*.deb
  if ! (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>"$tmp/err"); then
    "${sudo_cmd[@]}" apt-get update -q >/dev/null
    version=$(apt-cache policy "$pkg" | awk '/Candidate:/ { print $2 }')
    (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>"$tmp/err") || {
      cat "$tmp/err" >&2
      echo "install-deps: could not download the $pkg package" >&2
      exit 1
    }
  fi
  unpack_debs "$deps_dir/$pkg"
  echo "$version" > "$stamp"
}

# Headers of the CPythons Debian ships in a later release (3.13, trixie) and the pybind11 that
# supports them, downloaded and unpacked (not installed) into $deps_dir/python3.X: the wheels for
# those Pythons are compiled against them (python/CMakeLists.txt). Trixie's packages come from the
# archive this machine's apt sources name, through an apt configuration of its own in
# $deps_dir/apt-trixie, checked against Debian's archive keyring like every download of apt.
unpack_foreign() {  # suite, directory, package...
  local suite=$1 dir=$2 mirror apt_dir
  shift 2
  [ -f "$dir/.packages" ] && [ "$(cat "$dir/.packages")" = "$*" ] && return 0
  mirror=$(debian_archive)
  if [ -z "$mirror" ]; then
    echo "install-deps: no apt source of this release names Debian's archive: no $suite headers" >&2
    return 0
  fi
  apt_dir=$deps_dir/apt-$suite
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" \
    >"$apt_dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -q)
  echo "install-deps: unpacking $* from Debian $suite ($mirror)"
  apt-get "${opts[@]}" update >/dev/null
  (cd "$tmp" && rm -f ./*.deb && apt-get "${opts[@]}" download "$@" >/dev/null 2>"$tmp/err") || {
    cat "$tmp/err" >&2
    echo "install-deps: could not download $* from $suite" >&2
    exit 1
  }
  unpack_debs "$dir"
  echo "$*" >"$dir/.packages"
}
unpack_foreign trixie "$deps_dir/python3.13" libpython3.13-dev pybind11-dev

# promtool, which checks and tests the alert rules of packaging/prometheus (tests/packaging):
# from Debian's prometheus package, unpacked rather than installed, so that installing the build's
# dependencies sets up no Prometheus server.
unpack_binary prometheus
echo "install-deps: ok"
