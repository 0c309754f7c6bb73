#!/usr/bin/env bash
# The shipped artifacts on other Debian releases, each in a chroot made with debootstrap from
# Debian's archive (the mirror this machine's own apt sources name):
#
#   scripts/artifact-matrix.sh [--binary FILE] [--dist DIR] [SUITE...]
#   scripts/artifact-matrix.sh --sdist FILE [SUITE...]      # default suite: trixie
#
# Suites default to bullseye (glibc 2.31, Python 3.9), bookworm (2.36, 3.11) and trixie (2.41,
# 3.13). In each:
#   - the static `mooncake` binary runs a cluster of its own processes (metadata service, master,
#     two stores) and `mooncake bench store --validate` checks every byte through them over TCP;
#   - the wheel of DIR (default dist/) built for the chroot's Python, if there is one, installs with
#     pip into a virtual environment and writes and reads values through that cluster.
# With --sdist, the source distribution (scripts/sdist.sh) is built instead, by pip in a chroot
# that also holds the build's dependencies from that release (the packages docs/python.md names),
# for the chroot's own Python; the binary it built runs the cluster and the extension it built
# writes and reads through it.
# Chroots are made once and kept as tarballs in $MOONCAKE_CHROOT_CACHE (default
# /var/cache/mooncake/chroots); each run unpacks a fresh copy and removes it. Exits 77 (skipped)
# when chroots cannot be made here: not root, no debootstrap, or the archive cannot be reached.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
binary=$root/build/src/mooncake
dist=$root/dist
sdist=""
suites=()
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --dist) dist=$2; shift 2 ;;
    --sdist) sdist=$(realpath "$2"); shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) suites+=("$1"); shift ;;
  esac
done
if [ ${#suites[@]} -eq 0 ]; then
  if [ -n "$sdist" ]; then suites=(trixie); else suites=(bullseye bookworm trixie); fi
fi
cache=${MOONCAKE_CHROOT_CACHE:-/var/cache/mooncake/chroots}

skip() { echo "artifact-matrix: skipped: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "chroots need root"
if ! command -v debootstrap >/dev/null; then
  apt-get install -y -q debootstrap >/dev/null 2>&1 || skip "debootstrap is not installed and apt-get could not install it"
fi
if [ -n "$sdist" ]; then
  [ -f "$sdist" ] || { echo "artifact-matrix: no source distribution at $sdist (scripts/sdist.sh)" >&2; exit 1; }
else
  [ -x "$binary" ] || { echo "artifact-matrix: no binary at $binary (scripts/build.sh)" >&2; exit 1; }
fi
# What building the source distribution needs of a Debian release (docs/python.md).
build_deps=(build-essential cmake ninja-build pkg-config libibverbs-dev librdmacm-dev libnl-3-dev
  libnl-route-3-dev libcli11-dev libhttp-parser-dev nlohmann-json3-dev libre2-dev libyaml-cpp-dev libssl-dev libzstd-dev zlib1g-dev
  libabsl-dev libspdlog-dev libfmt-dev pybind11-dev python3-dev python3-venv python3-setuptools python3-wheel
  python3-pip)

# Debian's archive as this machine's apt sources name it: the repository of this release's suite.
# shellcheck source=lib/archive.sh
. "$root/scripts/lib/archive.sh"
mirror=$(debian_archive)
[ -n "$mirror" ] || skip "no apt source of this release ($(. /etc/os-release && echo "${VERSION_CODENAME:-}")) to take Debian's archive from"

work=$(mktemp -d)
mounts=()
# unmount_all: what chroot_of mounted, in reverse order.
unmount_all() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
  mounts=()
}
cleanup() {
  unmount_all
  rm -rf "$work"
}
trap cleanup EXIT

# chroot_of SUITE: unpacks a fresh root of SUITE into $work/SUITE (made and cached first if need be).
# SUITE-build: the root of SUITE with build_deps installed.
chroot_of() {
  local suite=$1 dir=$work/$1 tarball=$cache/$1.tar
  # A build root is cached per list of dependencies: one made for another list is not this one.
  if [[ "$suite" == *-build ]]; then
    tarball=$cache/$1-$(printf '%s\n' "${build_deps[@]}" | md5sum | cut -c1-8).tar
  fi
  if [ ! -f "$tarball" ] && [[ "$suite" == *-build ]]; then
    chroot_of "${suite%-build}"
    echo "artifact-matrix: installing the build's dependencies into $suite (cached in $tarball)"
    cp /etc/resolv.conf "$work/${suite%-build}/etc/resolv.conf" 2>/dev/null || true
    if ! chroot "$work/${suite%-build}" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends ${build_deps[*]} && apt-get clean" \
        >"$work/apt-$suite.log" 2>&1; then
      tail -n 5 "$work/apt-$suite.log"
      skip "installing the build's dependencies into $suite failed (log above)"
    fi
    unmount_all
    tar -C "$work/${suite%-build}" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$work/${suite%-build}"
  fi
  if [ ! -f "$tarball" ]; then
    mkdir -p "$cache"
    echo "artifact-matrix: debootstrap $suite from $mirror (cached in $tarball)"
    if ! debootstrap --variant=minbase --include=python3,python3-venv "$suite" "$work/bootstrap-$suite" \
        "$mirror" >"$work/debootstrap-$suite.log" 2>&1; then
      tail -n 5 "$work/debootstrap-$suite.log"
      skip "debootstrap of $suite failed (log above)"
    fi
    tar -C "$work/bootstrap-$suite" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$work/bootstrap-$suite"
  fi
  mkdir -p "$dir"
  tar -C "$dir" -xf "$tarball"
  mount -t proc proc "$dir/proc" && mounts+=("$dir/proc")
  mount -t tmpfs tmpfs "$dir/dev/shm" 2>/dev/null && mounts+=("$dir/dev/shm") || true
}

# What runs inside each chroot: a cluster of separate processes on 127.0.0.1 (ports of their own
# choosing), validated through the binary, then through the wheel when one is installed.
cat >"$work/inside.sh" <<'SH'
#!/bin/sh
set -eu
m=/usr/local/bin/mooncake
w=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
start() {
  name=$1 pattern=$2
  shift 2
  "$@" >"$w/$name.log" 2>&1 &
  pid=$!
  pids="$pids $pid"
  n=0
  until grep -q "$pattern" "$w/$name.log"; do
    n=$((n + 1))
    if [ $n -gt 300 ] || ! kill -0 "$pid" 2>/dev/null; then
      cat "$w/$name.log" >&2
      echo "$name did not start" >&2
      exit 1
    fi
    sleep 0.1
  done
}
echo "glibc $(getconf GNU_LIBC_VERSION | cut -d' ' -f2), $(python3 --version 2>&1)"
start metadata 'listening on' $m metadata --host 127.0.0.1 --port 0
metadata=$(grep -o 'http://[^ ]*' "$w/metadata.log" | head -n 1)
start master listening $m master --rpc_address 127.0.0.1 --port 0 --metrics_port 0
rpc=$(grep -o 'rpc=[0-9.]*:[0-9]*' "$w/master.log" | head -n 1 | cut -d= -f2)
for i in 1 2; do
  cat >"$w/store$i.json" <<JSON
{"local_hostname": "127.0.0.1", "metadata_server": "$metadata",
 "master_server_address": "$rpc", "protocol": "tcp", "global_segment_size": "64MiB"}
JSON
  start "store$i" 'serving segment' $m store --config "$w/store$i.json" --listen-address 127.0.0.1 \
    --http-host 127.0.0.1 --http-port 0
done
$m bench store --master "$rpc" --metadata "$metadata" --transport tcp --validate \
  --validate-size 16MiB >"$w/validate.out" 2>&1 || { cat "$w/validate.out"; exit 1; }
tail -n 1 "$w/validate.out" | grep -q '"ok":true' || { cat "$w/validate.out"; exit 1; }
echo "binary: 2 stores validated"
[ -x /opt/venv/bin/python ] || exit 0
/opt/venv/bin/python - "$metadata" "$rpc" <<'PY'
import sys
from mooncake.store import MooncakeDistributedStore
store = MooncakeDistributedStore()
assert store.setup("127.0.0.1", sys.argv[1], 64 << 20, 16 << 20, "tcp", "", sys.argv[2]) == 0
values = {f"matrix/{i}": bytes([i]) * (4096 * (i + 1)) for i in range(8)}
for key, value in values.items():
    assert store.put(key, value) == 0, key
for key, value in values.items():
    assert store.get(key) == value, key
assert store.batch_is_exist(list(values)) == [1] * len(values)
store.close()
# No NIC here: RDMA is refused, saying what is missing (rdma-core itself, unless the chroot
# has it, as the one that builds the source distribution does).
import ctypes.util, subprocess
has_verbs = ctypes.util.find_library("ibverbs") is not None
setup_rdma = ("import sys; from mooncake.store import MooncakeDistributedStore as S; "
              "sys.exit(S().setup('127.0.0.1', sys.argv[1], 16 << 20, 16 << 20, 'rdma', '', sys.argv[2]))")
run = subprocess.run([sys.executable, "-c", setup_rdma, sys.argv[1], sys.argv[2]],
                     capture_output=True, text=True, timeout=60)
missing = "no active RDMA device" if has_verbs else "libibverbs"
assert run.returncode != 0 and missing in run.stdout + run.stderr, run
print("wheel: 8 values written and read back; RDMA refused: " +
      ("no device" if has_verbs else "no libibverbs"))
PY
SH
chmod +x "$work/inside.sh"

failed=0
# check SUITE DIR NOTE: the checks of inside.sh in the chroot DIR, reported on one line; DIR goes.
check() {
  local suite=$1 dir=$2 note=$3 out
  if out=$(chroot "$dir" /inside.sh 2>&1); then
    echo "ok   $suite: $(echo "$out" | tr '\n' ';' | sed 's/;$//') ($note)"
  else
    echo "FAIL $suite ($note):"
    echo "$out"
    failed=1
  fi
  unmount_all
  rm -rf "$dir"
}

for suite in "${suites[@]}"; do
  if [ -n "$sdist" ]; then
    chroot_of "$suite-build"
    dir=$work/$suite-build
    cp "$work/inside.sh" "$dir/inside.sh"
    cp "$sdist" "$dir/tmp/"
    started=$(date +%s)
    if chroot "$dir" sh -c "python3 -m venv --system-site-packages /opt/venv &&
        CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) /opt/venv/bin/pip install -v --no-index --no-build-isolation \
          /tmp/$(basename "$sdist") &&
        install -m 755 /opt/venv/lib/python3*/site-packages/mooncake/bin/mooncake /usr/local/bin/mooncake &&
        /opt/venv/bin/mooncake_master --version" >"$work/sdist-$suite.log" 2>&1; then
      check "$suite" "$dir" "$(basename "$sdist") built by pip in $(($(date +%s) - started)) s"
    else
      # The compiler's or linker's complaint, then how pip ended.
      grep -E -A12 '^ *FAILED: |CMake Error' "$work/sdist-$suite.log" | head -n 60 || true
      tail -n 15 "$work/sdist-$suite.log"
      echo "FAIL $suite: pip could not build $(basename "$sdist") (log above)"
      failed=1
      unmount_all
      rm -rf "$dir"
    fi
    continue
  fi
  chroot_of "$suite"
  dir=$work/$suite
  install -m 755 "$binary" "$dir/usr/local/bin/mooncake"
  cp "$work/inside.sh" "$dir/inside.sh"
  tag=$(chroot "$dir" python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  wheel=$(ls "$dist"/mooncake_transfer_engine-*-"$tag"-*.whl 2>/dev/null | head -n 1 || true)
  note="no wheel for $tag in $dist"
  if [ -n "$wheel" ]; then
    cp "$wheel" "$dir/tmp/"
    if chroot "$dir" sh -c "python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --no-index /tmp/$(basename "$wheel")" \
        >"$work/pip-$suite.log" 2>&1; then
      note="wheel $(basename "$wheel")"
    else
      cat "$work/pip-$suite.log"
      note="FAILED to install $(basename "$wheel")"
      failed=1
    fi
  fi
  check "$suite" "$dir" "$note"
done
exit $failed
