#!/usr/bin/env bash
# The whole suite in two pytest processes at once: the 10,000-job kill burst (CPU-bound, on its
# own private stack) beside everything else (mostly waiting on services). Both must pass; each
# one's output is printed whole when it ends. Usage: scripts/test.sh [pytest args...]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SLOW=(tests/faults/test_kill_burst.py)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

ignores=()
for t in "${SLOW[@]}"; do ignores+=(--ignore="$t"); done

"$PY" -m pytest "$@" "${SLOW[@]}" >"$out/slow.log" 2>&1 &
slow=$!
"$PY" -m pytest "$@" "${ignores[@]}"
main_rc=$?
wait "$slow"
slow_rc=$?
echo "=== ${SLOW[*]} (run beside the rest) ==="
cat "$out/slow.log"
echo "=== exit codes: main $main_rc, ${SLOW[*]} $slow_rc ==="
[ "$main_rc" -eq 0 ] && [ "$slow_rc" -eq 0 ]
