"""The mesh's network: Linux network namespaces joined by a bridge, one per simulated host.

Everything it makes is named with :data:`PREFIX` (the bridge ``nbm-br0``, a namespace
``nbm-<node>`` per node, the host side of its veth pair ``nbm-<node>``), and :func:`down` removes
exactly what carries that prefix, so a crashed run is cleaned by the next ``down``. Addresses
come from :data:`SUBNET`, which the harness owns: :func:`up` refuses to start when another
interface or route already uses it. No default route and no forwarding: the nodes reach the host
(the bridge address, where the broker listens) and each other, nothing else.

Needs root and iproute2 (``ip``).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from dataclasses import dataclass

from nube.tools import netns
from nube.tools.netns import ip, pids_inside

PREFIX = "nbm-"
BRIDGE = f"{PREFIX}br0"
SUBNET = ipaddress.ip_network("10.213.0.0/24")
#: The host's address on the bridge: where the broker and the job store listen.
HOST = "10.213.0.1"
#: Node ``i`` (from 0) gets ``10.213.0.<FIRST_NODE + i>``.
FIRST_NODE = 10

#: The mesh cannot be made here (no root, no ``ip``, its address range taken).
MeshError = netns.NetError


@dataclass(frozen=True)
class Node:
    """One simulated host: a network namespace with one veth link to the bridge."""

    name: str
    index: int

    @property
    def netns(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def veth(self) -> str:
        """The host side of the node's link (``ip link set <veth> down`` cuts the node off)."""
        return f"{PREFIX}{self.name}"

    @property
    def address(self) -> str:
        return str(SUBNET.network_address + FIRST_NODE + self.index)

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the node's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]


def check_can_run() -> None:
    if shutil.which("ip") is None:
        raise MeshError("iproute2's `ip` is not installed (scripts/setup.sh installs it)")
    if os.geteuid() != 0:
        raise MeshError("network namespaces need root")


def namespaces() -> list[str]:
    """The mesh's namespaces that exist now."""
    return netns.namespaces(PREFIX)


def links() -> list[str]:
    """The mesh's links in the host namespace (the bridge and the host sides of the veths)."""
    return netns.links(PREFIX)


def check_range_free() -> None:
    """Refuse :data:`SUBNET` when an interface or route that is not the mesh's uses it."""
    netns.check_range_free(SUBNET, PREFIX)


def up(nodes: list[Node]) -> None:
    """Make the bridge and each node (idempotent: what exists already is left as it is)."""
    check_can_run()
    check_range_free()
    present = set(links())
    if BRIDGE not in present:
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{HOST}/{SUBNET.prefixlen}", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")
    existing = set(namespaces())
    for node in nodes:
        if node.netns not in existing:
            ip("netns", "add", node.netns)
        if node.veth not in present:
            peer = f"{node.veth}-p"
            ip("link", "add", node.veth, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", node.netns)
            ip("-n", node.netns, "link", "set", peer, "name", "eth0")
            ip("-n", node.netns, "addr", "add", f"{node.address}/{SUBNET.prefixlen}", "dev", "eth0")
            ip("link", "set", node.veth, "master", BRIDGE)
        ip("-n", node.netns, "link", "set", "lo", "up")
        ip("-n", node.netns, "link", "set", "eth0", "up")
        ip("link", "set", node.veth, "up")


def down() -> list[str]:
    """Remove every namespace and link named with :data:`PREFIX`, first ending the processes
    that run inside those namespaces; returns what it removed. Idempotent."""
    return netns.remove_all(PREFIX) if shutil.which("ip") else []


def cut(node: Node) -> None:
    """Take the node's link down on the host side: it can reach nothing, nothing reaches it."""
    ip("link", "set", node.veth, "down")


def heal(node: Node) -> None:
    ip("link", "set", node.veth, "up")


def describe() -> list[str]:
    """One line per namespace and link of the mesh, with its address and state."""
    lines = []
    for ns in namespaces():
        addrs = ip("-n", ns, "-4", "-o", "addr", "show", "dev", "eth0", check=False).split()
        addr = addrs[3] if len(addrs) > 3 else "-"
        lines.append(f"netns {ns:<14} {addr:<16} {len(pids_inside(ns))} processes")
    for link in links():
        state = "UP" if "state UP" in ip("-o", "link", "show", link) else "DOWN"
        lines.append(f"link  {link:<14} {state}")
    return lines
