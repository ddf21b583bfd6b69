#!/usr/bin/env bash
# The whole suite in two pytest processes at once: the "beside" group (the 10,000-job kill burst
# first, CPU-bound on its own private stack, then the suites that each start their own cluster:
# the mesh of network namespaces, the Sentinel and RabbitMQ-cluster failovers, the compose,
# multi-host and swarm deploys) beside everything else (mostly waiting on services). Both must
# pass; each one's output is printed whole when it ends. Usage: scripts/test.sh [pytest args...]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
BESIDE=(
  tests/faults/test_kill_burst.py
  tests/mesh
  tests/ha
  tests/ha_rabbitmq
  tests/compose
  tests/deploy
)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

ignores=()
for t in "${BESIDE[@]}"; do ignores+=(--ignore="$t"); done

start=$SECONDS
"$PY" -m pytest "$@" "${BESIDE[@]}" >"$out/beside.log" 2>&1 &
beside=$!
"$PY" -m pytest "$@" "${ignores[@]}"
main_rc=$?
main_end=$((SECONDS - start))
wait "$beside"
beside_rc=$?
echo "=== ${BESIDE[*]} (run beside the rest) ==="
cat "$out/beside.log"
echo "=== exit codes: main $main_rc (${main_end} s), beside $beside_rc ($((SECONDS - start)) s in all) ==="
[ "$main_rc" -eq 0 ] && [ "$beside_rc" -eq 0 ]
