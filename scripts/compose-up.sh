#!/usr/bin/env bash
# Start nube with docker compose, from nothing:
#   1. the base image (scripts/build-base-image.sh, skipped when it exists),
#   2. .env with random Redis and Flower passwords and the Docker socket's group (kept if present),
#   3. build and `up -d` (extra arguments go to `up`, e.g. --scale worker-containers=2),
#   4. wait until /readyz shows the ingress, containers and vms queues served,
#   5. print the URLs, the Flower password and an admin token.
#
#   scripts/compose-up.sh [--scale worker-containers=2 ...]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1;34m[compose]\033[0m %s\n' "$*" >&2; }

if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then COMPOSE=(docker-compose)
else log "neither 'docker compose' nor docker-compose is installed"; exit 1; fi

scripts/build-base-image.sh

if [[ ! -f .env ]]; then
  sock=${NUBE_DOCKER_SOCKET:-/var/run/docker.sock}
  log "writing .env (random passwords; keep it out of git)"
  umask 077
  cat >.env <<EOF
NUBE_REDIS_PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
NUBE_FLOWER_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
NUBE_DOCKER_GID=$(stat -c %g "$sock" 2>/dev/null || echo 0)
NUBE_API_PORT=${NUBE_API_PORT:-8080}
NUBE_FLOWER_PORT=${NUBE_FLOWER_PORT:-5555}
NUBE_LIBVIRT_URI=${NUBE_LIBVIRT_URI:-test:///default}
EOF
fi
set -a; source .env; set +a

log "building the images"
"${COMPOSE[@]}" build
log "starting the stack"
"${COMPOSE[@]}" up -d "$@"

api="http://127.0.0.1:${NUBE_API_PORT:-8080}"
log "waiting for $api/readyz to show every queue served"
ready=0
for _ in $(seq 180); do
  if python3 - "$api" <<'EOF' 2>/dev/null; then ready=1; break; fi
import json, sys, urllib.request
q = json.load(urllib.request.urlopen(sys.argv[1] + "/readyz", timeout=2)).get("queues", {})
sys.exit(0 if all(q.get(k) for k in ("nube.ingress", "containers", "vms")) else 1)
EOF
  sleep 1
done
if ((!ready)); then
  log "not ready after 180 s; see: ${COMPOSE[*]} ps; ${COMPOSE[*]} logs"
  exit 1
fi

token=$("${COMPOSE[@]}" exec -T api nube tokens create --tenant local --scope admin --name compose-up | sed -n 1p)
cat <<EOF

nube is up (docker compose).
  API      $api   (docs: $api/docs)
  Flower   http://127.0.0.1:${NUBE_FLOWER_PORT:-5555}   (admin / $NUBE_FLOWER_PASSWORD)
  token    $token   (admin, tenant 'local')

  ${COMPOSE[*]} ps | logs -f | up -d --scale worker-containers=3 | down [-v]
EOF
