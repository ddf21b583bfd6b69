"""An address the deploy tests own: a bridge ``nbd-br0`` with ``10.226.0.1/24`` and no port.

The compose "control node" publishes Redis on it and the swarm advertises it, so neither uses
an interface of the machine. :func:`make` refuses the range when another interface or route
uses it; :func:`remove` deletes the bridge. Needs root and iproute2.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess

BRIDGE = "nbd-br0"
SUBNET = ipaddress.ip_network("10.226.0.0/24")
ADDRESS = "10.226.0.1"


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def can_make() -> bool:
    return shutil.which("ip") is not None and os.geteuid() == 0


def exists() -> bool:
    return _ip("link", "show", BRIDGE, check=False) != ""


def make() -> None:
    """The bridge with :data:`ADDRESS` (one left by a crashed run is made again)."""
    remove()
    for line in _ip("-4", "-o", "addr", "show").splitlines():
        dev, addr = line.split()[1], line.split()[3]
        if ipaddress.ip_interface(addr).network.overlaps(SUBNET):
            raise RuntimeError(f"{SUBNET} is in use on {dev} ({addr})")
    for line in _ip("-4", "route", "show").splitlines():
        dest = line.split()[0]
        if dest != "default" and ipaddress.ip_network(dest, strict=False).overlaps(SUBNET):
            raise RuntimeError(f"{SUBNET} is routed: {line}")
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{ADDRESS}/{SUBNET.prefixlen}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


def remove() -> None:
    if exists():
        _ip("link", "delete", BRIDGE)
