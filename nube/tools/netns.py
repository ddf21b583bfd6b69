"""What every harness that makes network namespaces and links shares (the mesh's hosts,
:mod:`nube.tools.mesh_net`; the second libvirt host, :mod:`nube.tools.libvirt_host`; the deploy
tests' bridge): iproute2 calls, finding what a harness made by its name prefix, refusing an
address range something else uses, and ending what runs inside a namespace.

A harness names everything it makes with its own prefix (``nbm-``, ``nbl-``, ``nbd-``) and
removes exactly what carries it (:func:`remove_all`), so a crashed run is cleaned by the next
one and no other interface is ever touched. Needs root and iproute2 (``ip``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import time


class NetError(Exception):
    """A namespace or link cannot be made here (no root, no ``ip``, its address range taken)."""


def ip(*args: str, check: bool = True) -> str:
    """``ip <args>``'s output; with ``check``, :class:`NetError` naming the command on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def namespaces(prefix: str) -> list[str]:
    """The network namespaces named ``<prefix>*`` that exist now."""
    names = [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def links(prefix: str) -> list[str]:
    """The links named ``<prefix>*`` in the host namespace (bridges, host sides of veths)."""
    found = []
    for line in ip("-o", "link", "show").splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        if name.startswith(prefix):
            found.append(name)
    return found


def check_range_free(subnet: ipaddress.IPv4Network | ipaddress.IPv6Network, prefix: str) -> None:
    """:class:`NetError` when an interface or route that is not the harness's (named
    ``<prefix>*``) uses ``subnet``."""
    for line in ip("-4", "-o", "addr", "show").splitlines():
        dev, addr = line.split()[1], line.split()[3]
        if not dev.startswith(prefix) and ipaddress.ip_interface(addr).network.overlaps(subnet):
            raise NetError(f"{subnet} is in use on {dev} ({addr}); the harness needs it")
    for line in ip("-4", "route", "show").splitlines():
        words = line.split()
        dest = words[0]
        dev = words[words.index("dev") + 1] if "dev" in words else ""
        skip = dest == "default" or dev.startswith(prefix)
        if not skip and ipaddress.ip_network(dest, strict=False).overlaps(subnet):
            raise NetError(f"{subnet} is routed through {dev or dest}: {line}")


def pids_inside(netns: str) -> list[int]:
    return [int(p) for p in ip("netns", "pids", netns, check=False).split()]


def kill_inside(netns: str, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, every process in ``netns`` (all of them the harness started)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids_inside(netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while pids_inside(netns) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids_inside(netns):
            return


def remove_all(prefix: str) -> list[str]:
    """Remove every namespace named ``<prefix>*`` (ending the processes inside first) and every
    such link left; returns what it removed. Idempotent."""
    removed = []
    for netns in namespaces(prefix):
        kill_inside(netns)
        ip("netns", "delete", netns, check=False)
        removed.append(f"netns {netns}")
    for link in links(prefix):  # a veth's host side goes with its namespace; what is left, here
        ip("link", "delete", link, check=False)
        removed.append(f"link {link}")
    return removed
