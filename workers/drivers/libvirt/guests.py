"""Finding a tenant's domain and describing it (shared by the domain operations)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import libvirt

from nube.errors import NotFound
from workers.drivers.base import JobContext
from workers.drivers.libvirt.base import error_code
from workers.drivers.libvirt.xml import NS, Owner, parse_domain, parse_owner, vnc_port
from workers.drivers.names import backend_name, only_one, user_name
from workers.drivers.vm_states import VmState, allowed_actions

_PAUSED = {libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED}
_OFF = {libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED, libvirt.VIR_DOMAIN_NOSTATE}


def find_domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    """The domain called ``name``, or ``None``."""
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as err:
        if error_code(err) == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def owner_of(dom: libvirt.virDomain) -> Owner | None:
    """nube's metadata of ``dom``, or ``None`` for a domain nube did not make."""
    try:
        xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NS, 0)
    except libvirt.libvirtError as err:
        if error_code(err) == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise
    return parse_owner(xml)


def visible(owner: Owner | None, ctx: JobContext) -> bool:
    """Whether the job's tenant may see a domain (admins see every domain)."""
    return ctx.admin or (owner is not None and owner.tenant == ctx.tenant)


def owned_domain(
    conn: libvirt.virConnect, name: str, ctx: JobContext
) -> tuple[libvirt.virDomain, Owner | None]:
    """The tenant's domain ``name``; another tenant's is ``NotFound`` exactly like none. An
    admin also reaches another tenant's by its name (:func:`workers.drivers.names.only_one`)
    or by its backend name."""
    dom = find_domain(conn, backend_name(ctx.tenant, name)) or find_domain(conn, name)
    if dom is None and ctx.admin:
        named = [d for d in conn.listAllDomains(0) if vm_name(d) == name]
        dom = only_one(named, "VM", name)
    owner = owner_of(dom) if dom is not None else None
    if dom is None or not visible(owner, ctx):
        raise NotFound(kind="vm", id=name)
    return dom, owner


def vm_name(dom: libvirt.virDomain) -> str:
    """The user's name of ``dom`` (its owner's, from its metadata)."""
    owner = owner_of(dom)
    return user_name(dom.name(), owner.tenant if owner else None)


def state_of(dom: libvirt.virDomain) -> VmState:
    """The life-cycle state of an existing domain."""
    state = dom.state(0)[0]
    if state in _PAUSED:
        return VmState.PAUSED
    if state in _OFF:
        saved = dom.isPersistent() and dom.hasManagedSaveImage(0)
        return VmState.SAVED if saved else VmState.DEFINED
    return VmState.RUNNING


def describe(dom: libvirt.virDomain, owner: Owner | None, node: str) -> dict[str, Any]:
    """A VM's representation (see :class:`~workers.drivers.hypervisor.HypervisorDriver`)."""
    state, persistent = state_of(dom), bool(dom.isPersistent())
    _, max_kib, kib, vcpus, cpu_ns = dom.info()
    xml = dom.XMLDesc(0)
    spec = parse_domain(xml)
    live = state in (VmState.RUNNING, VmState.PAUSED)
    addresses = lease_addresses(dom) if live else {}
    return {
        "name": user_name(dom.name(), owner.tenant if owner else None),
        "uuid": dom.UUIDString(),
        "node": (owner.node if owner and owner.node else node),
        "tenant": owner.tenant if owner else None,
        "job": owner.job if owner else None,
        "created_at": owner.created_at if owner else None,
        "state": state.value,
        "persistent": persistent,
        "autostart": bool(dom.autostart()) if persistent else False,
        "managed_save": state is VmState.SAVED,
        "max_memory_mib": max_kib // 1024,
        "memory_mib": kib // 1024,
        "vcpus": vcpus,
        "max_vcpus": spec.max_vcpus or vcpus,
        "cpu_time_ns": cpu_ns,
        "allowed_actions": allowed_actions(state, persistent),
        "disks": [asdict(d) for d in spec.disks],
        "interfaces": [
            {**asdict(i), "addresses": addresses.get((i.mac or "").lower(), [])}
            for i in spec.interfaces
        ],
        "boot": list(spec.boot),
        "kernel_boot": {"kernel": spec.kernel, "initrd": spec.initrd, "cmdline": spec.cmdline}
        if spec.kernel
        else None,
        "vnc": {"listen": "127.0.0.1", "port": vnc_port(xml) if live else None}
        if spec.vnc
        else None,
    }


def lease_addresses(dom: libvirt.virDomain) -> dict[str, list[str]]:
    """The IPv4/IPv6 addresses of a running domain's NICs by MAC, from its networks' DHCP
    leases (libvirt's ``interfaceAddresses`` with the lease source); ``{}`` when there are
    none yet."""
    try:
        found = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
    except libvirt.libvirtError:
        return {}
    by_mac: dict[str, list[str]] = {}
    for iface in (found or {}).values():
        addrs = [f"{a['addr']}/{a['prefix']}" for a in iface.get("addrs") or []]
        by_mac.setdefault(str(iface.get("hwaddr", "")).lower(), []).extend(addrs)
    return by_mac


def gone(name: str, node: str, tenant: str | None) -> dict[str, Any]:
    """The representation of a domain that no longer exists (a stopped transient one, an
    undefined one); ``tenant`` is its owner's."""
    return {
        "name": name,
        "node": node,
        "tenant": tenant,
        "state": VmState.UNDEFINED.value,
        "allowed_actions": [],
    }
