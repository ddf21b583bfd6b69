"""An address the deploy tests own: a bridge ``nbd-br0`` with ``10.226.0.1/24`` and no port.

The compose "control node" publishes Redis on it and the swarm advertises it, so neither uses
an interface of the machine. :func:`make` refuses the range when another interface or route
uses it; :func:`remove` deletes the bridge. Needs root and iproute2.
"""

from __future__ import annotations

import ipaddress
import os
import shutil

from nube.tools import netns

BRIDGE = "nbd-br0"
SUBNET = ipaddress.ip_network("10.226.0.0/24")
ADDRESS = "10.226.0.1"


def can_make() -> bool:
    return shutil.which("ip") is not None and os.geteuid() == 0


def exists() -> bool:
    return netns.ip("link", "show", BRIDGE, check=False) != ""


def make() -> None:
    """The bridge with :data:`ADDRESS` (one left by a crashed run is made again)."""
    remove()
    netns.check_range_free(SUBNET, BRIDGE)
    netns.ip("link", "add", BRIDGE, "type", "bridge")
    netns.ip("addr", "add", f"{ADDRESS}/{SUBNET.prefixlen}", "dev", BRIDGE)
    netns.ip("link", "set", BRIDGE, "up")


def remove() -> None:
    if exists():
        netns.ip("link", "delete", BRIDGE)
