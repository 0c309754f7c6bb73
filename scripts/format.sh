#!/usr/bin/env bash
# Formats every C++ file of ours with the root .clang-format (the test command checks it).
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files -co --exclude-standard -- 'src/*.h' 'src/*.cc' 'tests/*.h' 'tests/*.cc' 'python/*.cc' |
  xargs -r clang-format -i
