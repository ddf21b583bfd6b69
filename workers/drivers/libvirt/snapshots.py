"""Internal snapshots of domains whose disks are all qcow2."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import libvirt

from nube.catalog.vm_models import SnapshotCreate, SnapshotRef, VmRef
from nube.errors import Conflict, NotFound
from workers.drivers.base import JobContext
from workers.drivers.libvirt.base import LibvirtBase, error_code
from workers.drivers.libvirt.guests import owned_domain, state_of, vm_name
from workers.drivers.libvirt.xml import parse_domain, snapshot_xml
from workers.drivers.vm_states import VmAction, require

_STATE_NAMES = {
    "running": "running",
    "paused": "paused",
    "shutoff": "shutoff",
    "disk-snapshot": "disk-only",
}


def _description(job_id: str) -> str:
    return f"taken by nube job {job_id}"


def _snapshot(dom: libvirt.virDomain, name: str) -> libvirt.virDomainSnapshot:
    try:
        return dom.snapshotLookupByName(name, 0)
    except libvirt.libvirtError as err:
        if error_code(err) == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
            raise NotFound(kind="snapshot", id=f"{vm_name(dom)}/{name}") from err
        raise


def _describe(snap: libvirt.virDomainSnapshot) -> dict[str, Any]:
    root = ET.fromstring(snap.getXMLDesc(0))
    created = int(root.findtext("creationTime") or 0)
    state = root.findtext("state") or ""
    return {
        "name": snap.getName(),
        "vm": vm_name(snap.getDomain()),
        "created_at": created,
        "state": _STATE_NAMES.get(state, state),
        "current": bool(snap.isCurrent(0)),
        "description": root.findtext("description"),
    }


def _require_qcow2(dom: libvirt.virDomain) -> None:
    disks = [d for d in parse_domain(dom.XMLDesc(0)).disks if d.device == "disk"]
    if not disks or any(d.format != "qcow2" for d in disks):
        raise Conflict(f"VM '{vm_name(dom)}' needs qcow2 disks (and at least one) for snapshots")


class SnapshotsMixin(LibvirtBase):
    """The snapshot operations."""

    def create_snapshot(self, params: SnapshotCreate, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.create_snapshot`."""
        return self._run(lambda c: self._create_snapshot(c, params, ctx))

    def _create_snapshot(
        self, conn: libvirt.virConnect, p: SnapshotCreate, ctx: JobContext
    ) -> dict[str, Any]:
        dom, _ = owned_domain(conn, p.name, ctx)
        if p.snapshot in dom.snapshotListNames(0):
            snap = dom.snapshotLookupByName(p.snapshot, 0)
            if _describe(snap)["description"] != _description(ctx.job_id):
                raise Conflict(f"VM '{p.name}' already has a snapshot '{p.snapshot}'")
            return _describe(snap)
        require(VmAction.SNAPSHOT_CREATE, state_of(dom), bool(dom.isPersistent()), p.name)
        _require_qcow2(dom)
        xml = snapshot_xml(p.snapshot, _description(ctx.job_id))
        return _describe(dom.snapshotCreateXML(xml, 0))

    def list_snapshots(self, params: VmRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.list_snapshots`."""

        def snapshots(conn: libvirt.virConnect) -> dict[str, Any]:
            dom, _ = owned_domain(conn, params.name, ctx)
            snaps = sorted(
                (_describe(s) for s in dom.listAllSnapshots(0)),
                key=lambda s: (s["created_at"], s["name"]),
            )
            return {"snapshots": snaps}

        return self._run(snapshots)

    def revert_snapshot(self, params: SnapshotRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.revert_snapshot`."""
        return self._on_snapshot(params, ctx, VmAction.SNAPSHOT_REVERT)

    def delete_snapshot(self, params: SnapshotRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.delete_snapshot`."""
        return self._on_snapshot(params, ctx, VmAction.SNAPSHOT_DELETE)

    def _on_snapshot(self, p: SnapshotRef, ctx: JobContext, action: VmAction) -> dict[str, Any]:
        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            dom, _ = owned_domain(conn, p.name, ctx)
            snap = _snapshot(dom, p.snapshot)
            require(action, state_of(dom), bool(dom.isPersistent()), p.name)
            if action is VmAction.SNAPSHOT_REVERT:
                dom.revertToSnapshot(snap, 0)
                return {**_describe(snap), "vm_state": state_of(dom).value}
            snap.delete(0)
            return {"name": p.snapshot, "vm": p.name, "deleted": True}

        return self._run(call)
