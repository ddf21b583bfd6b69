#!/usr/bin/env bash
# Build the base image of nube's containers locally, with no container registry:
#   debootstrap --variant=minbase bookworm  +  python3, python3-venv, ca-certificates
#   + this host's CA bundle (so pip/apt behind an intercepting proxy work inside builds)
#   → docker import → nube/base:bookworm
#
#   scripts/build-base-image.sh            build it unless it exists (idempotent)
#   scripts/build-base-image.sh --force    rebuild it
#
# Environment: NUBE_BASE_IMAGE (nube/base:bookworm), NUBE_DEBIAN_MIRROR (the host's Debian
# mirror from /etc/apt/sources.list.d/debian.sources, else http://deb.debian.org/debian),
# NUBE_HOST_CA (/etc/ssl/certs/ca-certificates.crt).
# Where a registry can be reached, any Debian bookworm image with python3 works as well:
#   docker-compose build --build-arg BASE_IMAGE=python:3.11-slim-bookworm   (see docs/operations.md)
set -euo pipefail

IMAGE=${NUBE_BASE_IMAGE:-nube/base:bookworm}
SUITE=bookworm
HOST_CA=${NUBE_HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
FORCE=0
[[ ${1:-} == --force ]] && FORCE=1

log() { printf '\033[1;34m[base-image]\033[0m %s\n' "$*" >&2; }
start=$(date +%s)

if ((!FORCE)) && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE exists; nothing to do (--force rebuilds it)"
  exit 0
fi

mirror=${NUBE_DEBIAN_MIRROR:-}
if [[ -z $mirror && -r /etc/apt/sources.list.d/debian.sources ]]; then
  # the first URIs: line that is not the security archive
  mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [[ -z $mirror && -r /etc/apt/sources.list ]]; then
  mirror=$(awk '/^deb / && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}
security=${mirror%/debian}/debian-security

if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
fi
[[ $(id -u) == 0 ]] || { log "debootstrap needs root"; exit 1; }

root=$(mktemp -d /var/tmp/nube-base.XXXXXX)
cleanup() {
  # never leave a mounted /proc behind, then remove the tree
  for m in proc sys dev/pts dev; do mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"; done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

log "debootstrap --variant=minbase $SUITE from $mirror (a few minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# Sources (main, updates, security) in deb822 form, like the host.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# Lean images: no recommends, no docs/man/locales from later installs, no apt caches.
cat >"$root/etc/apt/apt.conf.d/90nube" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Dpkg::Use-Pty "0";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
EOF
cat >"$root/etc/dpkg/dpkg.cfg.d/90nube-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
EOF
rm -rf "$root"/usr/share/{man,info,locale}/* "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
  "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true

# The host's CA bundle (a superset of Debian's: it may hold an intercepting proxy's CA).
if [[ -r $HOST_CA ]]; then
  install -D -m 0644 "$HOST_CA" "$root/usr/local/share/nube/host-ca-bundle.crt"
  ca=/usr/local/share/nube/host-ca-bundle.crt
else
  ca=/etc/ssl/certs/ca-certificates.crt
fi

log "importing the tree as $IMAGE"
tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV DEBIAN_FRONTEND=noninteractive' \
  --change "ENV SSL_CERT_FILE=$ca" \
  --change "ENV REQUESTS_CA_BUNDLE=$ca" \
  --change "ENV PIP_CERT=$ca" \
  --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' \
  --change 'CMD ["bash"]' \
  --message "debootstrap --variant=minbase $SUITE + python3 (scripts/build-base-image.sh)" \
  - "$IMAGE" >/dev/null

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
log "built $IMAGE ($((size / 1024 / 1024)) MiB) in $(($(date +%s) - start)) s"
