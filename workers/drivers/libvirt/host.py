"""Node and hypervisor information."""

from __future__ import annotations

from typing import Any

import libvirt

from nube.catalog import NoParams
from workers.drivers.base import JobContext
from workers.drivers.libvirt.base import LibvirtBase, version_string
from workers.drivers.libvirt.xml import parse_capabilities

_NODE_KEYS = ("cpu_model", "memory_mib", "cpus", "mhz", "numa_nodes", "sockets", "cores", "threads")


class HostMixin(LibvirtBase):
    """``hypervisor_info`` and the heartbeat's ``version``."""

    def version(self) -> str:
        """``libvirt <lib version>, <hypervisor> <version>``."""
        return self._run(
            lambda c: (
                f"libvirt {version_string(c.getLibVersion())}, "
                f"{c.getType()} {version_string(c.getVersion())}"
            )
        )

    def hypervisor_info(self, params: NoParams, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.hypervisor_info`."""
        return self._run(self._host_info)

    def _host_info(self, conn: libvirt.virConnect) -> dict[str, Any]:
        domain_type, arch = self.guest_type(conn)
        return {
            "node": self.node,
            "hostname": conn.getHostname(),
            "uri": conn.getURI(),
            "hypervisor": conn.getType(),
            "hypervisor_version": version_string(conn.getVersion()),
            "libvirt_version": version_string(conn.getLibVersion()),
            "node_info": dict(zip(_NODE_KEYS, conn.getInfo(), strict=False)),
            "max_vcpus": self._max_vcpus(conn, domain_type),
            "domain_type": domain_type,
            "guest_arch": arch,
            "capabilities": parse_capabilities(conn.getCapabilities()).to_dict(),
        }

    @staticmethod
    def _max_vcpus(conn: libvirt.virConnect, domain_type: str) -> int | None:
        try:
            return int(conn.getMaxVcpus(domain_type))
        except libvirt.libvirtError:
            return None
