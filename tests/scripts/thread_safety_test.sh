#!/usr/bin/env bash
# Compiles our sources with clang's -Wthread-safety -Werror (syntax only), so the ABSL_GUARDED_BY /
# ABSL_EXCLUSIVE_LOCKS_REQUIRED annotations are checked by a compiler, not only read by people.
set -euo pipefail
build=$1
[ -f "$build/compile_commands.json" ] || { echo "FAIL: no compile_commands.json in $build"; exit 1; }
/usr/bin/python3 - "$build/compile_commands.json" <<'PY'
import json, shlex, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

entries = [e for e in json.load(open(sys.argv[1])) if "/src/" in e["file"]]
def check(entry):
    args = shlex.split(entry["command"])[1:]
    keep, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a in ("-c", "-MD", "-MMD", entry["file"]):
            continue
        keep.append(a)
    cmd = ["clang++-14", "-fsyntax-only", "-Wthread-safety", "-Werror"] + keep + [entry["file"]]
    r = subprocess.run(cmd, cwd=entry["directory"], capture_output=True, text=True)
    return entry["file"], r.returncode, r.stderr
failed = 0
with ThreadPoolExecutor(2) as pool:
    for name, code, err in pool.map(check, entries):
        if code != 0:
            failed += 1
            print(f"FAIL: {name}\n{err}")
if failed or not entries:
    sys.exit(1)
print(f"ok: {len(entries)} files pass clang -Wthread-safety")
PY
