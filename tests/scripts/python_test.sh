#!/bin/bash
# Runs the Python tests (pytest) with the wheel installed in VENV.
#   python_test.sh VENV TESTS_DIR
set -euo pipefail
venv=$1
tests=$2
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import mooncake.store' 2>/dev/null; then
  echo "the wheel is not installed in $venv: run scripts/wheel.sh first (scripts/test.sh does)"
  exit 1
fi
cd "$tests"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$tests"
