#!/usr/bin/env bash
# Every C++ file of ours follows the root .clang-format.
set -euo pipefail
root=$1
cd "$root"
files=$(git ls-files -co --exclude-standard -- 'src/*.h' 'src/*.cc' 'src/*.in' 'tests/*.h' 'tests/*.cc' \
  'python/*.cc' | grep -v '\.in$' || true)
[ -n "$files" ] || { echo "FAIL: no source files found under $root"; exit 1; }
# shellcheck disable=SC2086
if ! clang-format --dry-run --Werror $files; then
  echo "FAIL: run clang-format -i on the files above"
  exit 1
fi
echo "ok: $(echo "$files" | wc -l) files formatted"
