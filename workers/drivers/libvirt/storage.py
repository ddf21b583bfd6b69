"""Directory storage pools and their volumes (shared node infrastructure)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import libvirt

from nube.catalog import NoParams
from nube.catalog import vm_models as m
from nube.errors import Conflict
from workers.drivers.base import JobContext
from workers.drivers.libvirt.base import LibvirtBase
from workers.drivers.libvirt.provision import lookup_pool, lookup_volume
from workers.drivers.libvirt.xml import parse_pool, parse_volume, pool_xml, volume_xml

_POOL_STATES = ["inactive", "building", "running", "degraded", "inaccessible"]
MIB = 1 << 20


def describe_pool(pool: libvirt.virStoragePool) -> dict[str, Any]:
    state, capacity, allocation, available = pool.info()
    active = bool(pool.isActive())
    return {
        "name": pool.name(),
        "uuid": pool.UUIDString(),
        **parse_pool(pool.XMLDesc(0)),
        "state": _POOL_STATES[state] if state < len(_POOL_STATES) else str(state),
        "active": active,
        "persistent": bool(pool.isPersistent()),
        "autostart": bool(pool.autostart()),
        "capacity_bytes": capacity,
        "allocation_bytes": allocation,
        "available_bytes": available,
        "volumes": pool.numOfVolumes() if active else None,
    }


def describe_volume(pool: libvirt.virStoragePool, vol: libvirt.virStorageVol) -> dict[str, Any]:
    _, capacity, allocation = vol.info()
    return {
        "name": vol.name(),
        "pool": pool.name(),
        **parse_volume(vol.XMLDesc(0)),
        "capacity_bytes": capacity,
        "allocation_bytes": allocation,
    }


class StorageMixin(LibvirtBase):
    """The pool and volume operations."""

    def pool_path(self, name: str) -> str:
        """Where pool ``name`` keeps its volumes: ``<pool root>/<name>``."""
        return f"{self.pool_root}/{name}"

    def _on_pool(self, name: str, fn: Callable[[libvirt.virStoragePool], object]) -> dict[str, Any]:
        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            pool = lookup_pool(conn, name)
            fn(pool)
            return describe_pool(pool)

        return self._run(call)

    def list_pools(self, params: NoParams, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.list_pools`."""
        return self._run(
            lambda c: {
                "pools": sorted(
                    (describe_pool(p) for p in c.listAllStoragePools(0)), key=lambda p: p["name"]
                )
            }
        )

    def pool_info(self, params: m.PoolRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.pool_info`."""
        return self._on_pool(params.name, lambda p: None)

    def build_pool(self, params: m.PoolRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.build_pool`."""
        return self._on_pool(params.name, lambda p: p.build(0))

    def start_pool(self, params: m.PoolRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.start_pool`."""
        return self._on_pool(params.name, lambda p: p.create(0))

    def destroy_pool(self, params: m.PoolRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.destroy_pool`."""
        return self._on_pool(params.name, lambda p: p.destroy())

    def refresh_pool(self, params: m.PoolRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.refresh_pool`."""
        return self._on_pool(params.name, lambda p: p.refresh(0))

    def set_pool_autostart(self, params: m.PoolAutostart, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.set_pool_autostart`."""
        return self._on_pool(params.name, lambda p: p.setAutostart(int(params.enabled)))

    def undefine_pool(self, params: m.PoolUndefine, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.undefine_pool`."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            pool = lookup_pool(conn, params.name)
            if pool.isActive():
                raise Conflict(f"storage pool '{params.name}' is active; destroy it first")
            if params.delete:
                pool.delete(0)
            pool.undefine()
            return {"name": params.name, "undefined": True, "deleted": params.delete}

        return self._run(call)

    def define_pool(self, params: m.PoolDefine, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.define_pool`."""
        return self._run(lambda c: self._define_pool(c, params))

    def _define_pool(self, conn: libvirt.virConnect, p: m.PoolDefine) -> dict[str, Any]:
        path = self.pool_path(p.name)
        if p.name in conn.listStoragePools() + conn.listDefinedStoragePools():
            pool = conn.storagePoolLookupByName(p.name)
            if parse_pool(pool.XMLDesc(0)) != {"type": "dir", "path": path}:
                raise Conflict(f"a storage pool named '{p.name}' already exists")
            return describe_pool(pool)
        xml = pool_xml(p.name, path)
        if not p.persistent:
            flags = libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD if p.build else 0
            return describe_pool(conn.storagePoolCreateXML(xml, flags))
        pool = conn.storagePoolDefineXML(xml, 0)
        try:
            _setup_pool(pool, p)
        except Exception:
            with contextlib.suppress(libvirt.libvirtError):
                pool.undefine()
            raise
        return describe_pool(pool)

    # --- volumes ---------------------------------------------------------------------------------

    def list_volumes(self, params: m.StorageVolumeList, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.list_volumes`."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            pool = lookup_pool(conn, params.pool)
            vols = [describe_volume(pool, v) for v in pool.listAllVolumes(0)]
            return {"volumes": sorted(vols, key=lambda v: v["name"])}

        return self._run(call)

    def volume_info(self, params: m.StorageVolumeRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.volume_info`."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            pool = lookup_pool(conn, params.pool)
            return describe_volume(pool, lookup_volume(pool, params.name))

        return self._run(call)

    def create_volume(self, params: m.StorageVolumeCreate, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.create_volume`."""
        return self._run(lambda c: self._create_volume(c, params))

    def _create_volume(self, conn: libvirt.virConnect, p: m.StorageVolumeCreate) -> dict[str, Any]:
        pool = lookup_pool(conn, p.pool)
        if not pool.isActive():
            raise Conflict(f"storage pool '{p.pool}' is not active")
        if p.name in pool.listVolumes():
            found = describe_volume(pool, pool.storageVolLookupByName(p.name))
            if (found["format"], found["capacity_bytes"]) != (p.format, p.capacity_mib * MIB):
                raise Conflict(f"a volume named '{p.name}' already exists in '{p.pool}'")
            return found
        vol = pool.createXML(volume_xml(p.name, p.capacity_mib, p.format), 0)
        return describe_volume(pool, vol)

    def delete_volume(self, params: m.StorageVolumeRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.delete_volume`."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            lookup_volume(lookup_pool(conn, params.pool), params.name).delete(0)
            return {"name": params.name, "pool": params.pool, "deleted": True}

        return self._run(call)


def _setup_pool(pool: libvirt.virStoragePool, p: m.PoolDefine) -> None:
    if p.build:
        pool.build(0)
    if p.start:
        pool.create(0)
    if p.autostart:
        pool.setAutostart(1)
