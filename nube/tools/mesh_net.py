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

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

PREFIX = "nbm-"
BRIDGE = f"{PREFIX}br0"
SUBNET = ipaddress.ip_network("10.213.0.0/24")
#: The host's address on the bridge: where the broker and the job store listen.
HOST = "10.213.0.1"
#: Node ``i`` (from 0) gets ``10.213.0.<FIRST_NODE + i>``.
FIRST_NODE = 10


class MeshError(Exception):
    """The mesh cannot be made here (no root, no ``ip``, its address range taken)."""


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


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise MeshError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def check_can_run() -> None:
    if shutil.which("ip") is None:
        raise MeshError("iproute2's `ip` is not installed (scripts/setup.sh installs it)")
    if os.geteuid() != 0:
        raise MeshError("network namespaces need root")


def namespaces() -> list[str]:
    """The mesh's namespaces that exist now."""
    names = [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]
    return [n for n in names if n.startswith(PREFIX)]


def links() -> list[str]:
    """The mesh's links in the host namespace (the bridge and the host sides of the veths)."""
    found = []
    for line in ip("-o", "link", "show").splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            found.append(name)
    return found


def check_range_free() -> None:
    """Refuse :data:`SUBNET` when an interface or route that is not the mesh's uses it."""
    for line in ip("-4", "-o", "addr", "show").splitlines():
        dev, addr = line.split()[1], line.split()[3]
        if not dev.startswith(PREFIX) and ipaddress.ip_interface(addr).network.overlaps(SUBNET):
            raise MeshError(f"{SUBNET} is in use on {dev} ({addr}); the mesh needs it for itself")
    for line in ip("-4", "route", "show").splitlines():
        words = line.split()
        dest = words[0]
        dev = words[words.index("dev") + 1] if "dev" in words else ""
        skip = dest == "default" or dev.startswith(PREFIX)
        if not skip and ipaddress.ip_network(dest, strict=False).overlaps(SUBNET):
            raise MeshError(f"{SUBNET} is routed through {dev or dest}: {line}")


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
    if shutil.which("ip") is None:
        return []
    removed = []
    for netns in namespaces():
        kill_inside(netns)
        ip("netns", "delete", netns, check=False)
        removed.append(f"netns {netns}")
    for link in links():  # a veth's host side goes with its namespace; what is left, here
        ip("link", "delete", link, check=False)
        removed.append(f"link {link}")
    return removed


def pids_inside(netns: str) -> list[int]:
    return [int(p) for p in ip("netns", "pids", netns, check=False).split()]


def kill_inside(netns: str, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, every process in ``netns`` (all of them the mesh started)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids_inside(netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while pids_inside(netns) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids_inside(netns):
            return


def cut(node: Node) -> None:
    """Take the node's link down on the host side: it can reach nothing, nothing reaches it."""
    ip("link", "set", node.veth, "down")


def heal(node: Node) -> None:
    ip("link", "set", node.veth, "up")


def describe() -> list[str]:
    """One line per namespace and link of the mesh, with its address and state."""
    lines = []
    for netns in namespaces():
        addrs = ip("-n", netns, "-4", "-o", "addr", "show", "dev", "eth0", check=False).split()
        addr = addrs[3] if len(addrs) > 3 else "-"
        lines.append(f"netns {netns:<14} {addr:<16} {len(pids_inside(netns))} processes")
    for link in links():
        state = "UP" if "state UP" in ip("-o", "link", "show", link) else "DOWN"
        lines.append(f"link  {link:<14} {state}")
    return lines
