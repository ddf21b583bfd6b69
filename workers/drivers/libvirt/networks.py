"""Virtual networks: NAT, routed or isolated IPv4 networks (shared node infrastructure)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import libvirt

from nube.catalog import NoParams
from nube.catalog.vm_models import VmNetworkAutostart, VmNetworkDefine, VmNetworkRef
from nube.errors import Conflict, NotFound
from workers.drivers.base import JobContext
from workers.drivers.libvirt.base import LibvirtBase, error_code, jsonable
from workers.drivers.libvirt.xml import NetworkSpec, network_xml, parse_network


def lookup_network(conn: libvirt.virConnect, name: str) -> libvirt.virNetwork:
    try:
        return conn.networkLookupByName(name)
    except libvirt.libvirtError as err:
        if error_code(err) == libvirt.VIR_ERR_NO_NETWORK:
            raise NotFound(kind="vm_network", id=name) from err
        raise


def describe_network(net: libvirt.virNetwork) -> dict[str, Any]:
    spec = parse_network(net.XMLDesc(0))
    persistent = bool(net.isPersistent())
    return {
        "name": net.name(),
        "uuid": net.UUIDString(),
        "mode": spec.mode,
        "bridge": spec.bridge,
        "subnet": str(spec.subnet),
        "gateway": str(spec.subnet.network_address + 1),
        "dhcp_start": str(spec.dhcp[0]) if spec.dhcp else None,
        "dhcp_end": str(spec.dhcp[1]) if spec.dhcp else None,
        "active": bool(net.isActive()),
        "persistent": persistent,
        "autostart": bool(net.autostart()) if persistent else False,
    }


def spec_of(p: VmNetworkDefine) -> NetworkSpec:
    dhcp = (p.dhcp_start, p.dhcp_end) if p.dhcp_start and p.dhcp_end else None
    return NetworkSpec(name=p.name, mode=p.mode, subnet=p.subnet, bridge=p.bridge, dhcp=dhcp)


def _same(existing: NetworkSpec, wanted: NetworkSpec) -> bool:
    """Whether an existing network is the one asked for (a generated bridge name matches)."""
    if wanted.bridge is None:
        existing = NetworkSpec(existing.name, existing.mode, existing.subnet, None, existing.dhcp)
    return existing == wanted


class NetworksMixin(LibvirtBase):
    """The virtual network operations."""

    def _on_network(self, name: str, fn: Callable[[libvirt.virNetwork], object]) -> dict[str, Any]:
        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            net = lookup_network(conn, name)
            fn(net)
            return describe_network(net)

        return self._run(call)

    def list_networks(self, params: NoParams, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.list_networks`."""
        return self._run(
            lambda c: {
                "networks": sorted(
                    (describe_network(n) for n in c.listAllNetworks(0)), key=lambda n: n["name"]
                )
            }
        )

    def network_info(self, params: VmNetworkRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.network_info`."""
        return self._on_network(params.name, lambda n: None)

    def start_network(self, params: VmNetworkRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.start_network`."""
        return self._on_network(params.name, lambda n: n.create())

    def set_network_autostart(self, params: VmNetworkAutostart, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.set_network_autostart`."""
        return self._on_network(params.name, lambda n: n.setAutostart(int(params.enabled)))

    def destroy_network(self, params: VmNetworkRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.destroy_network`."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            net = lookup_network(conn, params.name)
            persistent = bool(net.isPersistent())
            net.destroy()
            if persistent:
                return describe_network(net)
            return {"name": params.name, "active": False, "persistent": False, "undefined": True}

        return self._run(call)

    def undefine_network(self, params: VmNetworkRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.undefine_network`."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            net = lookup_network(conn, params.name)
            if net.isActive():
                raise Conflict(f"network '{params.name}' is active; destroy it first")
            net.undefine()
            return {"name": params.name, "undefined": True}

        return self._run(call)

    def network_leases(self, params: VmNetworkRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.network_leases`."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            net = lookup_network(conn, params.name)
            if not net.isActive():
                raise Conflict(f"network '{params.name}' is not active")
            return {"name": params.name, "leases": jsonable(net.DHCPLeases(None, 0))}

        return self._run(call)

    def define_network(self, params: VmNetworkDefine, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.define_network`."""
        return self._run(lambda c: self._define_network(c, params))

    def _define_network(self, conn: libvirt.virConnect, p: VmNetworkDefine) -> dict[str, Any]:
        spec = spec_of(p)
        if p.name in conn.listNetworks() + conn.listDefinedNetworks():
            net = conn.networkLookupByName(p.name)
            if not _same(parse_network(net.XMLDesc(0)), spec):
                raise Conflict(f"a network named '{p.name}' already exists")
            return describe_network(net)
        if not p.persistent:
            return describe_network(conn.networkCreateXML(network_xml(spec)))
        net = conn.networkDefineXML(network_xml(spec))
        try:
            if p.start:
                net.create()
            if p.autostart:
                net.setAutostart(1)
        except Exception:
            with contextlib.suppress(libvirt.libvirtError):
                net.undefine()
            raise
        return describe_network(net)
