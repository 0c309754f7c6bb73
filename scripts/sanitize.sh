#!/usr/bin/env bash
# The sanitizer and fuzzing part of the test command (scripts/test.sh runs it after the plain
# tests), with clang:
# 1. everything under AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan/ (or
#    $MOONCAKE_ASAN_DIR): the unit and integration tests (which start the sanitized `mooncake`
#    binary);
# 2. each libFuzzer target of tests/fuzz (from the ASan build) for FUZZ_SECONDS (default 20) from
#    its seed corpus (tests/fuzz/corpus/<name>, read only; what a run finds stays in the build tree);
# 3. everything under ThreadSanitizer, in build-tsan/ (or $MOONCAKE_TSAN_DIR), with abseil compiled
#    from its Debian source package (TSan sees the ordering absl::Mutex gives only when abseil is
#    instrumented too; tests/tsan.supp names the benign reports inside abseil).
# Exits non-zero on any failure, sanitizer report or fuzzer crash.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
asan=${MOONCAKE_ASAN_DIR:-$root/build-asan}
tsan=${MOONCAKE_TSAN_DIR:-$root/build-tsan}
jobs=${MOONCAKE_JOBS:-2}
seconds=${FUZZ_SECONDS:-20}

configure() {  # dir, sanitizers, extra cmake args...
  local dir=$1 sanitizers=$2
  shift 2
  if [ ! -f "$dir/build.ninja" ]; then
    CC=clang CXX=clang++ cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DMOONCAKE_SANITIZE="$sanitizers" "$@" >/dev/null
  fi
}

echo "sanitize: AddressSanitizer + UndefinedBehaviorSanitizer build in $asan"
configure "$asan" address,undefined -DMOONCAKE_FUZZ=ON
ninja -C "$asan" -j "$jobs"
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd "$asan" && ctest -j "$jobs" --output-on-failure --timeout 900)

echo "sanitize: fuzzing, ${seconds}s per target"
for fuzzer in "$asan"/tests/fuzz/*_fuzzer; do
  name=$(basename "$fuzzer" _fuzzer)
  found="$asan/fuzz-findings/$name"
  mkdir -p "$found"
  log="$asan/fuzz-findings/$name.log"
  if ! "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$found/" "$found" "$root/tests/fuzz/corpus/$name" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "sanitize: fuzzer $name failed; the input is in $found" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
  echo "fuzz $name: $runs executions in ${seconds}s, $cov, no crash"
done

unset ASAN_OPTIONS UBSAN_OPTIONS

echo "sanitize: ThreadSanitizer build in $tsan"
configure "$tsan" thread -DMOONCAKE_ABSL_FROM_SOURCE=ON
ninja -C "$tsan" -j "$jobs"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp"
(cd "$tsan" && ctest -j "$jobs" --output-on-failure --timeout 900)
unset TSAN_OPTIONS
