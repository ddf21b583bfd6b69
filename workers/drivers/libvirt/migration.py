"""Migrating a VM to another node's libvirt (``NUBE_LIBVIRT_PEERS`` names its URI).

libvirt's own migration (``virDomainMigrate3``, managed direct: this worker holds both
connections) with ``PERSIST_DEST | UNDEFINE_SOURCE``: a shut-off VM moves ``OFFLINE`` (its
definition), a running or paused one ``LIVE`` (its memory copied while it runs; without ``live``
it is paused for the copy). Its disks are not copied: they must be volumes of pools the
destination has too, of the same paths (shared storage). libvirt cannot tell a directory both
nodes see (NFS mounted as a plain directory pool, or here one machine's directory) from a local
one and refuses a live move from it as unsafe; once every disk's volume was found on the
destination, the move is made with ``VIR_MIGRATE_UNSAFE``. The definition that arrives names the
destination in nube's metadata (an offline move's gets it once there), so the VM's ``node`` is
right at once; the worker then records
the new placement (the operation's ``placed_on``), and later operations reach the destination's
worker.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import libvirt

from nube.catalog import vm_models as m
from nube.errors import BackendFailed, BackendUnavailable, Conflict, NotFound
from workers.drivers.base import JobContext, name_taken
from workers.drivers.libvirt.base import LibvirtBase, error_code
from workers.drivers.libvirt.connection import is_connection_error
from workers.drivers.libvirt.guests import (
    describe,
    find_domain,
    owned_domain,
    owner_of,
    state_of,
    visible,
)
from workers.drivers.libvirt.xml import NS, Owner, to_string
from workers.drivers.peers import peer_uri
from workers.drivers.vm_states import VmAction, VmState, require

_SECURE = libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_MIGRATABLE
_MOVE = libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE


class MigrationMixin(LibvirtBase):
    """``migrate_domain``."""

    def migrate_domain(self, params: m.VmMigrate, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.migrate_domain`."""
        uri = peer_uri(self.peers, params.node, self.node, params.name)
        dest = _open(uri)
        try:
            return self._run(lambda c: self._migrate(c, dest, uri, params, ctx))
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                dest.close()

    def _migrate(
        self,
        conn: libvirt.virConnect,
        dest: libvirt.virConnect,
        uri: str,
        p: m.VmMigrate,
        ctx: JobContext,
    ) -> dict[str, Any]:
        try:
            dom, _ = owned_domain(conn, p.name, ctx)
        except NotFound:
            moved = _arrived(dest, p.name, ctx)
            if moved is None:
                raise
            return describe(moved, owner_of(moved), p.node)  # an earlier attempt moved it
        state = state_of(dom)
        require(VmAction.MIGRATE, state, bool(dom.isPersistent()), p.name)
        if find_domain(dest, dom.name()) is not None:
            raise name_taken("VM", p.name)
        persist = _with_node(dom.XMLDesc(_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE), p.node)
        shared = _check_storage(dest, persist, p)
        params: dict[str, Any] = {libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: persist}
        if state is VmState.DEFINED:
            flags = _MOVE | libvirt.VIR_MIGRATE_OFFLINE
        else:
            flags = _MOVE | (libvirt.VIR_MIGRATE_LIVE if p.live else 0)
            if shared:  # libvirt cannot tell a directory both nodes see from a local one
                flags |= libvirt.VIR_MIGRATE_UNSAFE
            params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = _with_node(dom.XMLDesc(_SECURE), p.node)
            host = self.migration_hosts.get(p.node) or urlsplit(uri).hostname
            if host:  # the memory goes there (else libvirt sends it to the peer's hostname)
                params[libvirt.VIR_MIGRATE_PARAM_URI] = f"tcp://{_bracketed(host)}"
        moved = _migrate3(conn, dom, dest, params, flags)
        owner = owner_of(moved)
        if owner is not None and owner.node != p.node:  # an offline move ignores PERSIST_XML
            owner = replace(owner, node=p.node)
            _set_owner(moved, owner)
        return describe(moved, owner, p.node)


def _migrate3(
    conn: libvirt.virConnect,
    dom: libvirt.virDomain,
    dest: libvirt.virConnect,
    params: dict[str, Any],
    flags: int,
) -> libvirt.virDomain:
    """``dom.migrate3``; a failure that looks like a lost connection while both connections are
    alive (QEMU could not reach the destination's migration port) is the migration's own:
    ``BackendFailed`` with libvirt's message, not a reconnect and retry."""
    try:
        return dom.migrate3(dest, params, flags)
    except libvirt.libvirtError as err:
        if is_connection_error(err) and conn.isAlive() and dest.isAlive():
            message = err.get_error_message() or str(err)
            raise BackendFailed(reason=f"migration failed: {message}") from err
        raise


def _open(uri: str) -> libvirt.virConnect:
    """A connection to the destination's libvirt; unreachable is ``BackendUnavailable``."""
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as err:
        raise BackendUnavailable(backend="libvirt", uri=uri) from err


def _arrived(dest: libvirt.virConnect, name: str, ctx: JobContext) -> libvirt.virDomain | None:
    """The VM on the destination when an earlier attempt of this job moved it there."""
    if not ctx.may_have_made:
        return None
    try:
        dom, _ = owned_domain(dest, name, ctx)
    except NotFound:
        return None
    return dom if visible(owner_of(dom), ctx) else None


def _with_node(xml: str, node: str) -> str:
    """The domain XML with ``node`` as the node in nube's metadata."""
    root = ET.fromstring(xml)
    instance = root.find(f"metadata/{{{NS}}}instance")
    if instance is not None:
        el = instance.find(f"{{{NS}}}node")
        if el is None:
            el = ET.SubElement(instance, f"{{{NS}}}node")
        el.text = node
    return to_string(root)


def _set_owner(dom: libvirt.virDomain, owner: Owner) -> None:
    """Replace nube's metadata element of ``dom`` (its definition, and the running domain's)."""
    el = ET.Element("instance")
    for key in ("tenant", "job", "node", "created_at"):
        ET.SubElement(el, key).text = getattr(owner, key)
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if dom.isActive():
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, to_string(el), "nube", NS, flags)


def _check_storage(dest: libvirt.virConnect, xml: str, p: m.VmMigrate) -> bool:
    """Every pool volume of the VM must be on the destination too (shared storage): else
    ``Conflict`` naming the first one missing, before anything moves. Whether every disk is
    such a volume (then the storage is shared: nothing else has that volume's name)."""
    shared = True
    for source in ET.fromstring(xml).iterfind("devices/disk/source"):
        pool_name, volume = source.get("pool"), source.get("volume")
        if not pool_name or not volume:
            shared = False
            continue
        try:
            pool = dest.storagePoolLookupByName(pool_name)
            if pool.isActive():
                pool.refresh(0)
            pool.storageVolLookupByName(volume)
        except libvirt.libvirtError as err:
            if error_code(err) not in (
                libvirt.VIR_ERR_NO_STORAGE_POOL,
                libvirt.VIR_ERR_NO_STORAGE_VOL,
            ):
                raise
            raise Conflict(
                f"cannot migrate VM '{p.name}': node '{p.node}' has no volume "
                f"'{pool_name}/{volume}' (migration needs the same pools on both nodes, on "
                "storage both see)",
                name=p.name,
                node=p.node,
            ) from err
    return shared


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
