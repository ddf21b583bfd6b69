"""Renaming and cloning shut-off VMs.

A rename moves the domain to the new backend name (``virDomain.rename``: its UUID, owner
metadata, disks and snapshots stay) and moves its console log along. A clone defines a new
domain from the source's definition: its disks copied into new volumes named after the job (a
qcow2 overlay on each source volume, or a full copy), a cloud-init seed copied, other CD-ROMs
shared, a new UUID and new MAC addresses, and nube's metadata naming the cloning job.
"""

from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import libvirt

from nube.catalog import vm_models as m
from nube.errors import NotFound
from workers.drivers.base import JobContext, job_tag, name_taken
from workers.drivers.libvirt.base import LibvirtBase
from workers.drivers.libvirt.guests import (
    describe,
    find_domain,
    owned_domain,
    owner_of,
    state_of,
    visible,
)
from workers.drivers.libvirt.provision import (
    CONSOLE_LOG_DIR,
    SEED_TAG,
    console_log_path,
    lookup_pool,
    lookup_volume,
)
from workers.drivers.libvirt.storage import describe_volume
from workers.drivers.libvirt.xml import NS, Owner, owner_element, to_string, volume_xml
from workers.drivers.names import backend_name
from workers.drivers.vm_states import VmAction, require

#: The definition with its secrets (a VNC password is copied with the rest).
_DEFINITION = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE


class CopiesMixin(LibvirtBase):
    """``rename_domain`` and ``clone_domain``."""

    def rename_domain(self, params: m.VmRename, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.rename_domain`."""
        return self._run(lambda c: self._rename(c, params, ctx))

    def _rename(self, conn: libvirt.virConnect, p: m.VmRename, ctx: JobContext) -> dict[str, Any]:
        try:
            dom, owner = owned_domain(conn, p.name, ctx)
        except NotFound:
            moved = find_domain(conn, backend_name(ctx.tenant, p.new_name))
            if moved is not None and ctx.may_have_made and visible(owner_of(moved), ctx):
                return describe(moved, owner_of(moved), self.node)  # an earlier attempt did it
            raise
        require(VmAction.RENAME, state_of(dom), bool(dom.isPersistent()), p.name)
        old = dom.name()
        new = backend_name(owner.tenant if owner else ctx.tenant, p.new_name)
        if new == old:
            return describe(dom, owner, self.node)
        if find_domain(conn, new) is not None:
            raise name_taken("VM", p.new_name)
        dom.rename(new, 0)
        dom = conn.lookupByName(new)
        _move_console_log(conn, dom, console_log_path(old), console_log_path(new))
        return describe(dom, owner, self.node)

    def clone_domain(self, params: m.VmClone, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.clone_domain`."""
        return self._run(lambda c: self._clone_domain(c, params, ctx))

    def _clone_domain(
        self, conn: libvirt.virConnect, p: m.VmClone, ctx: JobContext
    ) -> dict[str, Any]:
        src, _ = owned_domain(conn, p.name, ctx)
        new = backend_name(ctx.tenant, p.target)
        held = find_domain(conn, new)
        if held is not None:
            owner = owner_of(held)
            if owner is None or owner.job != ctx.job_id:
                raise name_taken("VM", p.target)
            return describe(held, owner, self.node)
        require(VmAction.CLONE, state_of(src), bool(src.isPersistent()), p.name)
        root = ET.fromstring(src.XMLDesc(_DEFINITION))
        made: list[libvirt.virStorageVol] = []
        try:
            for index, disk in enumerate(root.iterfind("devices/disk")):
                _copy_disk(conn, disk, p, index, job_tag(ctx.job_id), made)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            _rewrite(root, new, Owner(ctx.tenant, ctx.job_id, self.node, now))
            dom = conn.defineXML(to_string(root))
        except Exception:
            for vol in made:
                with contextlib.suppress(libvirt.libvirtError):
                    vol.delete(0)
            raise
        return describe(dom, owner_of(dom), self.node)


def _copy_disk(
    conn: libvirt.virConnect,
    disk: ET.Element,
    p: m.VmClone,
    index: int,
    tag: str,
    made: list[libvirt.virStorageVol],
) -> None:
    """Point ``disk`` at a copy of its volume: ``<target>-disk<i>-<tag>`` (a seed's
    ``<target>-cidata-<tag>``, always a full copy); other CD-ROMs stay shared."""
    source, driver = disk.find("source"), disk.find("driver")
    if source is None or not source.get("pool") or not source.get("volume"):
        return
    volume = source.get("volume", "")
    seed = SEED_TAG in volume
    if disk.get("device", "disk") != "disk" and not seed:
        return
    pool = lookup_pool(conn, source.get("pool", ""))
    original = describe_volume(pool, lookup_volume(pool, volume))
    name = f"{p.target}{SEED_TAG}{tag}" if seed else f"{p.target}-disk{index}-{tag}"
    linked = p.linked and not seed
    fmt = "qcow2" if linked else original["format"] or "raw"
    if name not in pool.listVolumes():
        size = original["capacity_bytes"]
        if linked:
            backing = (original["path"], original["format"] or "raw")
            made.append(pool.createXML(volume_xml(name, size, fmt, "bytes", backing), 0))
        else:
            xml = volume_xml(name, size, fmt, "bytes")
            made.append(pool.createXMLFrom(xml, pool.storageVolLookupByName(volume), 0))
    source.set("volume", name)
    if driver is not None:
        driver.set("type", fmt)


def _rewrite(root: ET.Element, name: str, owner: Owner) -> None:
    """Make the source's definition the clone's: name, no UUID (libvirt makes one), no MAC
    addresses (libvirt makes new ones), its own console log, nube's metadata for ``owner``."""
    root.find("name").text = name  # type: ignore[union-attr]
    for el in root.findall("uuid"):
        root.remove(el)
    for iface in root.iterfind("devices/interface"):
        for el in iface.findall("mac") + iface.findall("target"):
            iface.remove(el)
    log = root.find("devices/serial/log")
    if log is not None:
        log.set("file", console_log_path(name))
    metadata = root.find("metadata")
    if metadata is None:
        metadata = ET.SubElement(root, "metadata")
    for el in [e for e in metadata if e.tag.startswith(f"{{{NS}}}")]:
        metadata.remove(el)
    metadata.append(owner_element(owner))


def _move_console_log(conn: libvirt.virConnect, dom: libvirt.virDomain, old: str, new: str) -> None:
    """After a rename, the definition logs the console to the new name's file, and the old
    file (on this host) moves there."""
    xml = dom.XMLDesc(_DEFINITION)
    if f"'{old}'" not in xml:
        return
    conn.defineXML(xml.replace(f"'{old}'", f"'{new}'"))
    if old.startswith(f"{CONSOLE_LOG_DIR}/"):
        with contextlib.suppress(OSError):
            os.rename(old, new)
