"""A second libvirt host on this machine, for VM migration: ``libvirtd`` in its own namespaces.

One :class:`LibvirtHost` is a network namespace ``nbl-<name>`` joined to the host by a veth pair
(host side ``nbl-<name>``, a /30 of :data:`SUBNET`, which the harness owns and refuses to take
when anything else uses it) and a ``libvirtd`` inside it, in a private mount namespace where its
run, state, cache, log and configuration directories (``/run/libvirt``, ``/var/lib/libvirt``,
``/var/cache/libvirt``, ``/var/log/libvirt``, ``/etc/libvirt``) are directories of its own under
:data:`STATE_DIR`. It listens on ``qemu+tcp://<its address>/system`` only (no TLS, no auth: a
test harness on a private address), has a host UUID of its own (libvirt refuses to migrate to the
same host) and runs QEMU without virtlogd (``stdio_handler = "file"``). Everything else is the
machine's: ``/dev/kvm``, QEMU, and storage such as ``/var/lib/nube/pools``, which both hosts
see, as nodes sharing storage do. The system's ``libvirtd`` is not touched.

:func:`down` ends the processes inside the namespaces (libvirtd and its QEMUs), deletes every
namespace and link named ``nbl-*`` and the state directories, so a crashed run is cleaned by the
next one. Needs root, iproute2, util-linux's ``unshare`` and libvirtd.

``python -m nube.tools.libvirt_host up|down|status [name]`` does the same by hand.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import libvirt

from nube.tools import netns
from nube.tools.netns import NetError, ip, kill_inside

PREFIX = "nbl-"
SUBNET = ipaddress.ip_network("10.219.0.0/24")
STATE_DIR = Path("/run/nbl")
#: The directories each host has of its own (bind-mounted over the machine's).
PRIVATE_DIRS = {
    "run": "/run/libvirt",
    "etc": "/etc/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "log": "/var/log/libvirt",
}
_SUBDIRS = ("lib/qemu", "cache/qemu", "log/qemu", "etc/qemu", "etc/storage", "run/qemu")


class HostError(NetError):
    """The second libvirt host cannot be made here (no root, a tool missing, its range taken)."""


@dataclass(frozen=True)
class LibvirtHost:
    """The second host ``name``; ``index`` picks its /30 in :data:`SUBNET` (0 to 63)."""

    name: str = "h2"
    index: int = 0

    @property
    def netns(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def veth(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def gateway(self) -> str:
        """The machine's address on the link (where the host's QEMU reaches back)."""
        return str(SUBNET.network_address + 4 * self.index + 1)

    @property
    def address(self) -> str:
        """The host's address: libvirtd listens here, migration streams arrive here."""
        return str(SUBNET.network_address + 4 * self.index + 2)

    @property
    def uri(self) -> str:
        return f"qemu+tcp://{self.address}/system"

    @property
    def root(self) -> Path:
        return STATE_DIR / self.name

    @property
    def host_uuid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://nube.dev/libvirt-host/{self.name}"))

    def up(self, timeout: float = 30.0) -> None:
        """Make the namespace and link, write the configuration and start libvirtd; returns
        once ``uri`` answers. What exists already is reused."""
        check_can_run()
        self._link()
        self._configure()
        if not self.running():
            self._start()
        deadline = time.monotonic() + timeout
        while not self.answers():
            if time.monotonic() > deadline:
                log = self.root / "log" / "libvirtd.log"
                tail = log.read_text()[-2000:] if log.exists() else "(no log)"
                raise HostError(f"libvirtd of {self.netns} did not answer on {self.uri}:\n{tail}")
            time.sleep(0.2)

    def running(self) -> bool:
        return any(_comm(pid) == "libvirtd" for pid in netns.pids_inside(self.netns))

    def answers(self) -> bool:
        libvirt.registerErrorHandler(_quiet, None)
        try:
            libvirt.open(self.uri).close()
            return True
        except libvirt.libvirtError:
            return False

    def down(self) -> None:
        """End everything in the namespace, delete it, its link and its directories."""
        if self.netns in namespaces():
            kill_inside(self.netns)
            ip("netns", "delete", self.netns, check=False)
        if self.veth in links():
            ip("link", "delete", self.veth, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            STATE_DIR.rmdir()  # when no other host is left

    def _link(self) -> None:
        if self.netns not in namespaces():
            check_range_free()
            ip("netns", "add", self.netns)
        if self.veth not in links():
            peer = f"{self.veth}-p"
            ip("link", "add", self.veth, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", self.netns)
            ip("-n", self.netns, "link", "set", peer, "name", "eth0")
            ip("-n", self.netns, "addr", "add", f"{self.address}/30", "dev", "eth0")
            ip("addr", "add", f"{self.gateway}/30", "dev", self.veth)
        ip("-n", self.netns, "link", "set", "lo", "up")
        ip("-n", self.netns, "link", "set", "eth0", "up")
        ip("link", "set", self.veth, "up")

    def _configure(self) -> None:
        for sub in (*PRIVATE_DIRS, *_SUBDIRS):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "etc" / "libvirtd.conf").write_text(
            "listen_tls = 0\n"
            "listen_tcp = 1\n"
            f'listen_addr = "{self.address}"\n'
            'auth_tcp = "none"\n'
            f'host_uuid = "{self.host_uuid}"\n'
            'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
        )
        (self.root / "etc" / "qemu.conf").write_text('stdio_handler = "file"\n')

    def _start(self) -> None:
        mounts = " && ".join(
            f"mount --bind {self.root / sub} {target}" for sub, target in PRIVATE_DIRS.items()
        )
        script = f"{mounts} && exec libvirtd --listen --pid-file {self.root / 'libvirtd.pid'}"
        argv = ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation"]
        argv += ["private", "sh", "-c", script]
        with open(self.root / "libvirtd.out", "ab") as out:
            subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )


def check_can_run() -> None:
    for tool in ("ip", "unshare", "libvirtd"):
        if shutil.which(tool) is None:
            raise HostError(f"`{tool}` is not installed (scripts/setup.sh installs it)")
    if os.geteuid() != 0:
        raise HostError("a second libvirtd in its own namespaces needs root")


def namespaces() -> list[str]:
    return netns.namespaces(PREFIX)


def links() -> list[str]:
    return netns.links(PREFIX)


def check_range_free() -> None:
    """Refuse :data:`SUBNET` when an interface or route that is not the harness's uses it."""
    netns.check_range_free(SUBNET, PREFIX)


def down() -> list[str]:
    """Remove every ``nbl-*`` namespace (ending what runs inside) and link, and
    :data:`STATE_DIR`; returns what it removed. Idempotent."""
    if shutil.which("ip") is None:
        return []
    removed = netns.remove_all(PREFIX)
    if STATE_DIR.exists():
        shutil.rmtree(STATE_DIR, ignore_errors=True)
        removed.append(f"dir {STATE_DIR}")
    return removed


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; a refused connection is an answer."""


def _comm(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


def main(argv: list[str]) -> int:
    """``up [name]``, ``down`` or ``status [name]``."""
    if not argv or argv[0] not in ("up", "down", "status"):
        print("usage: python -m nube.tools.libvirt_host up|down|status [name]", file=sys.stderr)
        return 2
    host = (
        LibvirtHost(argv[1], int(argv[2]) if len(argv) > 2 else 0)
        if len(argv) > 1
        else LibvirtHost()
    )
    try:
        if argv[0] == "up":
            host.up()
            print(host.uri)
        elif argv[0] == "down":
            print("\n".join(down()) or "nothing to remove")
        else:
            print(f"{host.netns} {host.uri} {'answers' if host.answers() else 'down'}")
    except NetError as e:
        print(f"libvirt_host: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
