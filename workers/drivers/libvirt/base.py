"""What every part of the libvirt driver shares: the connection, the node, the guest type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import libvirt

from nube.errors import BackendFailed
from workers.drivers.libvirt.connection import LibvirtConnection
from workers.drivers.libvirt.xml import parse_capabilities

T = TypeVar("T")

#: The domain types nube prefers, best first (``test`` is libvirt's mock hypervisor).
PREFERRED_TYPES = ("kvm", "qemu", "test")


def version_string(number: int) -> str:
    """libvirt's ``major * 1,000,000 + minor * 1,000 + release`` as ``major.minor.release``."""
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def error_code(err: libvirt.libvirtError) -> int:
    return int(err.get_error_code() or 0)


class LibvirtBase:
    """State shared by the driver's parts (mixins)."""

    def __init__(
        self,
        uri: str,
        node: str,
        domain_type: str | None = None,
        pool_root: str = "/var/lib/nube/pools",
        attempts: int = 3,
        backoff: float = 0.5,
        peers: Mapping[str, str] | None = None,
        migration_hosts: Mapping[str, str] | None = None,
    ) -> None:
        self.uri = uri
        self.node = node
        self.peers = dict(peers or {})
        self.migration_hosts = dict(migration_hosts or {})
        self.pool_root = pool_root.rstrip("/") or "/"
        self.conn = LibvirtConnection(uri, attempts=attempts, backoff=backoff)
        self._wanted_type = domain_type
        self._guest: tuple[str, str] | None = None

    def _run(self, fn: Callable[[libvirt.virConnect], T]) -> T:
        return self.conn.run(fn)

    def guest_type(self, conn: libvirt.virConnect) -> tuple[str, str]:
        """``(domain type, arch)`` for new domains: ``kvm`` when libvirt offers it (``/dev/kvm``
        usable), else ``qemu`` (or ``test``); the constructor's ``domain_type`` wins."""
        if self._guest is None:
            caps = parse_capabilities(conn.getCapabilities())
            arch = caps.host_arch
            if not caps.domain_types(arch):
                arch = next((g["arch"] for g in caps.guests if g["os_type"] == "hvm"), arch)
            types = caps.domain_types(arch)
            chosen = self._wanted_type or next((t for t in PREFERRED_TYPES if t in types), None)
            if chosen is None or chosen not in types:
                raise BackendFailed(reason=f"no usable domain type for {arch} (have {types})")
            self._guest = (chosen, arch)
        return self._guest

    def domain_types(self, conn: libvirt.virConnect) -> list[str]:
        """The domain types libvirt offers for the guest arch."""
        _, arch = self.guest_type(conn)
        return parse_capabilities(conn.getCapabilities()).domain_types(arch)

    def close(self) -> None:
        """Close the libvirt connection (the next call reopens it)."""
        self.conn.close()


def jsonable(value: Any) -> Any:
    """libvirt returns ints and strs; make sure nothing else slips into a result."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
