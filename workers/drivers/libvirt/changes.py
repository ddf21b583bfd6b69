"""Changing a defined VM: resize, attach and detach disks and NICs (live and persistent).

Each change checks the state table first. A live domain changes at once and in its definition
(``AFFECT_LIVE | AFFECT_CONFIG``); a shut-off one in its definition only.
"""

from __future__ import annotations

import time
from typing import Any

import libvirt
from libvirt import virDomain as Dom

from nube.catalog import vm_models as m
from nube.errors import Conflict, NotFound, Timeout
from workers.drivers.base import JobContext, job_tag
from workers.drivers.libvirt.base import LibvirtBase
from workers.drivers.libvirt.guests import describe, owned_domain, state_of
from workers.drivers.libvirt.provision import lookup_pool, lookup_volume
from workers.drivers.libvirt.xml import (
    DiskSource,
    Nic,
    device_xml,
    disk_element,
    nic_element,
    parse_domain,
    parse_volume,
    to_string,
    volume_xml,
)
from workers.drivers.vm_states import VmAction, VmState, require

LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
#: How long a live detach may take for the guest to let go of the device.
DETACH_SECONDS = 20.0


def _flags(dom: Dom) -> int:
    return CONFIG | (LIVE if dom.isActive() else 0)


def _xmls(dom: Dom) -> list[str]:
    """The definition's XML, and the live one of a running domain."""
    xmls = [dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)]
    if dom.isActive():
        xmls.append(dom.XMLDesc(0))
    return xmls


def free_target(dom: Dom) -> str:
    """The first ``vdX`` no disk uses, live or in the definition."""
    used = {d.target for x in _xmls(dom) for d in parse_domain(x).disks}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        if f"vd{letter}" not in used:
            return f"vd{letter}"
    raise Conflict("the VM has no free disk target left")


class ChangesMixin(LibvirtBase):
    """``resize_domain``, ``attach_disk``, ``detach_disk``, ``attach_nic``, ``detach_nic``."""

    def _change(self, name: str, ctx: JobContext, action: VmAction, fn: Any) -> dict[str, Any]:
        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            dom, owner = owned_domain(conn, name, ctx)
            require(action, state_of(dom), bool(dom.isPersistent()), name)
            extra = fn(conn, dom) or {}
            return {**describe(dom, owner, self.node), **extra}

        return self._run(call)

    # --- resize ----------------------------------------------------------------------------------

    def resize_domain(self, params: m.VmResize, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.resize_domain`."""

        def resize(conn: libvirt.virConnect, dom: Dom) -> None:
            if state_of(dom) is VmState.DEFINED:
                _resize_offline(dom, params)
            else:
                _resize_live(dom, params)

        return self._change(params.name, ctx, VmAction.RESIZE, resize)

    # --- disks -----------------------------------------------------------------------------------

    def attach_disk(self, params: m.VmDiskAttach, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.attach_disk`."""

        def attach(conn: libvirt.virConnect, dom: Dom) -> dict[str, Any]:
            pool = lookup_pool(conn, params.pool)
            if params.volume is not None:
                name = params.volume
                fmt = parse_volume(lookup_volume(pool, name).XMLDesc(0))["format"] or "raw"
            else:
                name, fmt = f"{params.name}-hp-{job_tag(ctx.job_id)}", params.format
                if name not in pool.listVolumes():
                    pool.createXML(volume_xml(name, params.capacity_mib or 1, fmt), 0)
            for xml in _xmls(dom):  # a redelivery: the disk is attached already
                for disk in parse_domain(xml).disks:
                    if (disk.pool, disk.volume) == (params.pool, name):
                        return {"target": disk.target, "volume": name}
            target = free_target(dom)
            el = disk_element(DiskSource(params.pool, name, fmt), target)
            dom.attachDeviceFlags(to_string(el), _flags(dom))
            return {"target": target, "volume": name}

        return self._change(params.name, ctx, VmAction.DISK_ATTACH, attach)

    def detach_disk(self, params: m.VmDiskDetach, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.detach_disk`."""
        match = {"target/dev": params.target}

        def detach(conn: libvirt.virConnect, dom: Dom) -> dict[str, Any]:
            _detach(dom, "disk", match, f"{params.name}/{params.target}", "disk")
            return {"detached": params.target}

        return self._change(params.name, ctx, VmAction.DISK_DETACH, detach)

    # --- NICs ------------------------------------------------------------------------------------

    def attach_nic(self, params: m.VmNicAttach, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.attach_nic`."""

        def attach(conn: libvirt.virConnect, dom: Dom) -> dict[str, Any]:
            try:
                conn.networkLookupByName(params.network)
            except libvirt.libvirtError as err:
                raise NotFound(kind="vm_network", id=params.network) from err
            mac = (params.mac or _mac(ctx.job_id)).lower()
            if any(device_xml(x, "interface", {"mac/address": mac}) for x in _xmls(dom)):
                return {"mac": mac}
            dom.attachDeviceFlags(to_string(nic_element(Nic(params.network, mac))), _flags(dom))
            return {"mac": mac}

        return self._change(params.name, ctx, VmAction.NIC_ATTACH, attach)

    def detach_nic(self, params: m.VmNicDetach, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.detach_nic`."""
        mac = params.mac.lower()

        def detach(conn: libvirt.virConnect, dom: Dom) -> dict[str, Any]:
            _detach(dom, "interface", {"mac/address": mac}, f"{params.name}/{mac}", "nic")
            return {"detached": mac}

        return self._change(params.name, ctx, VmAction.NIC_DETACH, detach)


def _mac(job_id: str) -> str:
    """A MAC address in QEMU's range derived from the job (a redelivery picks the same)."""
    digits = job_tag(job_id)[:6]
    return "52:54:00:" + ":".join(digits[i : i + 2] for i in (0, 2, 4))


def _detach(dom: Dom, tag: str, match: dict[str, str], what: str, kind: str) -> None:
    """Detach the device from the definition and, when live, from the guest (waiting until it
    has let go)."""
    config = device_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), tag, match)
    live = device_xml(dom.XMLDesc(0), tag, match) if dom.isActive() else None
    if config is None and live is None:
        raise NotFound(kind=kind, id=what)
    if config is not None:
        dom.detachDeviceFlags(config, CONFIG)
    if live is not None:
        dom.detachDeviceFlags(live, LIVE)
        deadline = time.monotonic() + DETACH_SECONDS
        while device_xml(dom.XMLDesc(0), tag, match) is not None:
            if time.monotonic() > deadline:
                raise Timeout(
                    f"the guest did not release {kind} {what} within {DETACH_SECONDS:.0f} s; "
                    "it is gone from the definition and goes at the next restart",
                    limit=DETACH_SECONDS,
                )
            time.sleep(0.2)


def _resize_offline(dom: Dom, p: m.VmResize) -> None:
    """A shut-off VM: the definition's current and maximum values both become the new ones."""
    if p.memory_mib is not None:
        kib = p.memory_mib * 1024
        _set_both(dom.setMemoryFlags, kib, dom.info()[1], libvirt.VIR_DOMAIN_MEM_MAXIMUM)
    if p.vcpus is not None:
        maximum = dom.vcpusFlags(CONFIG | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
        _set_both(dom.setVcpusFlags, p.vcpus, maximum, libvirt.VIR_DOMAIN_VCPU_MAXIMUM)


def _set_both(setter: Any, value: int, maximum: int, max_flag: int) -> None:
    if value > maximum:
        setter(value, CONFIG | max_flag)
        setter(value, CONFIG)
    else:
        setter(value, CONFIG)
        setter(value, CONFIG | max_flag)


def _resize_live(dom: Dom, p: m.VmResize) -> None:
    """A live VM: up to its maximum, at once and in the definition."""
    if p.memory_mib is not None:
        max_kib = dom.info()[1]
        if p.memory_mib * 1024 > max_kib:
            raise Conflict(
                f"a running VM grows to its max_memory_mib ({max_kib // 1024}) at most; "
                "stop it to resize further",
                max_memory_mib=max_kib // 1024,
            )
        dom.setMemoryFlags(p.memory_mib * 1024, LIVE | CONFIG)
    if p.vcpus is not None:
        maximum = dom.vcpusFlags(LIVE | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
        if p.vcpus > maximum:
            raise Conflict(
                f"a running VM has at most its max_vcpus ({maximum}); stop it to resize further",
                max_vcpus=maximum,
            )
        dom.setVcpusFlags(p.vcpus, LIVE | CONFIG)
