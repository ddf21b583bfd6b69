#!/usr/bin/env bash
# Install and start what nube needs on a Debian machine (run as root).
#   scripts/setup.sh deps      apt packages + Python venv (.venv)
#   scripts/setup.sh daemons   start dockerd, libvirtd/virtlogd; /dev/kvm for the kvm group
#   scripts/setup.sh images    local test image (busybox from busybox-static, no registry needed)
#   scripts/setup.sh all       all three
# Every step is idempotent and skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  redis-server redis-sentinel docker.io busybox-static docker-compose docker-registry
  libvirt-daemon-system libvirt-clients libvirt-dev pkg-config qemu-system-x86 qemu-utils
  dnsmasq-base iptables iproute2 debootstrap ca-certificates curl python3-venv python3-dev gcc
  chromium chromium-driver tmux rabbitmq-server prometheus tcpdump
  linux-image-amd64 genisoimage
)
VENV=${NUBE_VENV:-.venv}
PY=${PYTHON:-python3}

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

deps() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if [[ ! -x $VENV/bin/python ]]; then
    log "creating the Python venv in $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
  fi
  local stamp="$VENV/.nube-deps"
  if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    log "installing Python dependencies (pinned in pyproject.toml)"
    "$VENV/bin/pip" install -q -e '.[dev]'
    touch "$stamp"
  fi
}

wait_for() { # wait_for SECONDS CMD...
  local n=$1; shift
  for ((i = 0; i < n * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

daemons() {
  mkdir -p /var/log/nube
  if [[ -e /dev/kvm ]] && getent group kvm >/dev/null; then
    chgrp kvm /dev/kvm && chmod 660 /dev/kvm
  fi
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    (setsid dockerd >/var/log/nube/dockerd.log 2>&1 &)
    wait_for 60 docker info || { log "dockerd did not start"; tail -20 /var/log/nube/dockerd.log; exit 1; }
  fi
  if ! virsh -c qemu:///system version >/dev/null 2>&1; then
    log "starting virtlogd and libvirtd"
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x virtlockd >/dev/null || virtlockd -d || true
    pgrep -x libvirtd >/dev/null || libvirtd -d
    wait_for 60 virsh -c qemu:///system version || { log "libvirtd did not start"; exit 1; }
  fi
}

images() {
  if ! docker image inspect busybox:latest >/dev/null 2>&1; then
    log "importing busybox:latest from busybox-static"
    local root; root=$(mktemp -d)
    mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root,var/www,data}
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
      [[ -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    tar -C "$root" -c . | docker import \
      --change 'CMD ["sh"]' --change 'ENV PATH=/bin' - busybox:latest >/dev/null
    rm -rf "$root"
  fi
}

case ${1:-all} in
  deps) deps ;;
  daemons) daemons ;;
  images) images ;;
  all) deps; daemons; images ;;
  *) echo "usage: $0 [deps|daemons|images|all]" >&2; exit 2 ;;
esac
