"""The fake hypervisor's node infrastructure: directory pools, their volumes, virtual networks.

Each answer and error is the one :class:`~workers.drivers.libvirt.LibvirtDriver` gives on
``qemu:///system`` (the contract suite runs both): acting on an inactive pool or network is
``Conflict``, a missing one ``NotFound``, the same spec twice returns the existing object.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from nube.catalog import NoParams
from nube.catalog.vm_models import (
    PoolAutostart,
    PoolDefine,
    PoolRef,
    PoolUndefine,
    StorageVolumeCreate,
    StorageVolumeList,
    StorageVolumeRef,
    VmNetworkAutostart,
    VmNetworkDefine,
    VmNetworkRef,
)
from nube.errors import BackendFailed, Conflict, NotFound
from workers.drivers.base import JobContext, Result
from workers.drivers.fake.common import FakeBase

MIB = 1 << 20
POOL_CAPACITY = 100 << 30
"""Every fake pool pretends to sit on a 100 GiB file system."""


@dataclass
class FakeStorageVolume:
    name: str
    format: str
    capacity_bytes: int
    path: str
    data: bytes = b""
    backing: str | None = None


@dataclass
class FakePool:
    name: str
    path: str
    persistent: bool
    built: bool = False
    active: bool = False
    autostart: bool = False
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    volumes: dict[str, FakeStorageVolume] = field(default_factory=dict)


@dataclass
class FakeVmNetwork:
    name: str
    mode: str
    subnet: IPv4Network
    bridge: str
    dhcp: tuple[IPv4Address, IPv4Address] | None
    persistent: bool
    bridge_given: bool
    active: bool = False
    autostart: bool = False
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


class FakeVmInfraMixin(FakeBase):
    """Pools, volumes and networks of :class:`~workers.drivers.fake.FakeHypervisorDriver`."""

    pool_root: str

    def __init__(self) -> None:
        super().__init__()
        self.pools: dict[str, FakePool] = {}
        self.networks: dict[str, FakeVmNetwork] = {}

    # --- lookups ---------------------------------------------------------------------------------

    def pool(self, name: str) -> FakePool:
        if name not in self.pools:
            raise NotFound(kind="storage_pool", id=name)
        return self.pools[name]

    def active_pool(self, name: str) -> FakePool:
        pool = self.pool(name)
        if not pool.active:
            raise Conflict(f"storage pool '{name}' is not active")
        return pool

    def storage_volume(self, pool: FakePool, name: str) -> FakeStorageVolume:
        if name not in pool.volumes:
            raise NotFound(kind="volume", id=f"{pool.name}/{name}")
        return pool.volumes[name]

    def vm_network(self, name: str) -> FakeVmNetwork:
        if name not in self.networks:
            raise NotFound(kind="vm_network", id=name)
        return self.networks[name]

    # --- pools -----------------------------------------------------------------------------------

    def list_pools(self, params: NoParams, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.list_pools`."""
        return {"pools": [_pool_view(self.pools[n]) for n in sorted(self.pools)]}

    def define_pool(self, params: PoolDefine, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.define_pool`."""
        path = f"{self.pool_root}/{params.name}"
        if params.name in self.pools:
            if self.pools[params.name].path != path:
                raise Conflict(f"a storage pool named '{params.name}' already exists")
            return _pool_view(self.pools[params.name])
        pool = FakePool(params.name, path, params.persistent, built=params.build)
        pool.active = params.start or not params.persistent
        pool.autostart = params.autostart
        if pool.active and not pool.built:
            raise BackendFailed(reason=f"cannot open directory '{path}': No such file or directory")
        self.pools[params.name] = pool
        return _pool_view(pool)

    def pool_info(self, params: PoolRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.pool_info`."""
        return _pool_view(self.pool(params.name))

    def build_pool(self, params: PoolRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.build_pool`."""
        pool = self._inactive_pool(params.name)
        pool.built = True
        return _pool_view(pool)

    def start_pool(self, params: PoolRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.start_pool`."""
        pool = self._inactive_pool(params.name)
        if not pool.built:
            raise BackendFailed(reason=f"cannot open directory '{pool.path}'")
        pool.active = True
        return _pool_view(pool)

    def destroy_pool(self, params: PoolRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.destroy_pool`."""
        pool = self.active_pool(params.name)
        pool.active = False
        if not pool.persistent:
            del self.pools[pool.name]
            return {"name": pool.name, "active": False, "persistent": False, "undefined": True}
        return _pool_view(pool)

    def undefine_pool(self, params: PoolUndefine, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.undefine_pool`."""
        pool = self.pool(params.name)
        if pool.active:
            raise Conflict(f"storage pool '{params.name}' is active; destroy it first")
        if params.delete and pool.volumes:
            reason = f"failed to remove pool '{pool.path}': Directory not empty"
            raise BackendFailed(reason=reason)
        del self.pools[pool.name]
        return {"name": params.name, "undefined": True, "deleted": params.delete}

    def set_pool_autostart(self, params: PoolAutostart, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.set_pool_autostart`."""
        pool = self.pool(params.name)
        if not pool.persistent:
            raise BackendFailed(reason="internal error: pool has no config file")
        pool.autostart = params.enabled
        return _pool_view(pool)

    def refresh_pool(self, params: PoolRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.refresh_pool`."""
        return _pool_view(self.active_pool(params.name))

    def _inactive_pool(self, name: str) -> FakePool:
        pool = self.pool(name)
        if pool.active:
            raise Conflict(f"storage pool '{name}' is already active")
        return pool

    # --- volumes ---------------------------------------------------------------------------------

    def list_volumes(self, params: StorageVolumeList, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.list_volumes`."""
        pool = self.active_pool(params.pool)
        return {"volumes": [volume_view(pool, pool.volumes[n]) for n in sorted(pool.volumes)]}

    def create_volume(self, params: StorageVolumeCreate, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.create_volume`."""
        pool = self.active_pool(params.pool)
        size = params.capacity_mib * MIB
        found = pool.volumes.get(params.name)
        if found is not None and (found.format, found.capacity_bytes) != (params.format, size):
            raise Conflict(f"a volume named '{params.name}' already exists in '{params.pool}'")
        vol = found or self.add_volume(pool, params.name, params.format, size)
        return volume_view(pool, vol)

    def add_volume(self, pool: FakePool, name: str, fmt: str, size: int) -> FakeStorageVolume:
        """Create a volume in an active pool (the caller checked the name is free)."""
        vol = FakeStorageVolume(name, fmt, size, f"{pool.path}/{name}")
        pool.volumes[name] = vol
        return vol

    def volume_info(self, params: StorageVolumeRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.volume_info`."""
        pool = self.active_pool(params.pool)
        return volume_view(pool, self.storage_volume(pool, params.name))

    def delete_volume(self, params: StorageVolumeRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.delete_volume`."""
        pool = self.active_pool(params.pool)
        del pool.volumes[self.storage_volume(pool, params.name).name]
        return {"name": params.name, "pool": params.pool, "deleted": True}

    # --- networks --------------------------------------------------------------------------------

    def list_networks(self, params: NoParams, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.list_networks`."""
        return {"networks": [_network_view(self.networks[n]) for n in sorted(self.networks)]}

    def define_network(self, params: VmNetworkDefine, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.define_network`."""
        wanted = self._network_of(params)
        found = self.networks.get(params.name)
        if found is not None:
            if not _same_network(found, wanted):
                raise Conflict(f"a network named '{params.name}' already exists")
            return _network_view(found)
        wanted.active = params.start or not params.persistent
        wanted.autostart = params.autostart
        self.networks[params.name] = wanted
        return _network_view(wanted)

    def _network_of(self, p: VmNetworkDefine) -> FakeVmNetwork:
        dhcp = (p.dhcp_start, p.dhcp_end) if p.dhcp_start and p.dhcp_end else None
        bridge = p.bridge or self._free_bridge()
        return FakeVmNetwork(p.name, p.mode, p.subnet, bridge, dhcp, p.persistent, bool(p.bridge))

    def _free_bridge(self) -> str:
        taken = {n.bridge for n in self.networks.values()}
        return next(f"virbr{i}" for i in range(1, len(taken) + 2) if f"virbr{i}" not in taken)

    def network_info(self, params: VmNetworkRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.network_info`."""
        return _network_view(self.vm_network(params.name))

    def start_network(self, params: VmNetworkRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.start_network`."""
        net = self.vm_network(params.name)
        if net.active:
            raise Conflict("network is already active")
        net.active = True
        return _network_view(net)

    def destroy_network(self, params: VmNetworkRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.destroy_network`."""
        net = self.active_network(params.name)
        net.active = False
        if net.persistent:
            return _network_view(net)
        del self.networks[net.name]
        return {"name": params.name, "active": False, "persistent": False, "undefined": True}

    def undefine_network(self, params: VmNetworkRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.undefine_network`."""
        net = self.vm_network(params.name)
        if net.active:
            raise Conflict(f"network '{params.name}' is active; destroy it first")
        del self.networks[net.name]
        return {"name": params.name, "undefined": True}

    def set_network_autostart(self, params: VmNetworkAutostart, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.set_network_autostart`."""
        net = self.vm_network(params.name)
        if not net.persistent:
            raise Conflict("cannot set autostart for transient network")
        net.autostart = params.enabled
        return _network_view(net)

    def network_leases(self, params: VmNetworkRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.network_leases`; no fake guest asks for a lease."""
        self.active_network(params.name)
        return {"name": params.name, "leases": []}

    def active_network(self, name: str) -> FakeVmNetwork:
        net = self.vm_network(name)
        if not net.active:
            raise Conflict(f"network '{name}' is not active")
        return net


def _pool_view(pool: FakePool) -> dict[str, Any]:
    allocation = sum(v.capacity_bytes for v in pool.volumes.values()) if pool.active else 0
    capacity = POOL_CAPACITY if pool.active else 0
    return {
        "name": pool.name,
        "uuid": pool.uuid,
        "type": "dir",
        "path": pool.path,
        "state": "running" if pool.active else "inactive",
        "active": pool.active,
        "persistent": pool.persistent,
        "autostart": pool.autostart,
        "capacity_bytes": capacity,
        "allocation_bytes": allocation,
        "available_bytes": capacity - allocation,
        "volumes": len(pool.volumes) if pool.active else None,
    }


def volume_view(pool: FakePool, vol: FakeStorageVolume) -> dict[str, Any]:
    return {
        "name": vol.name,
        "pool": pool.name,
        "format": vol.format,
        "path": vol.path,
        "capacity_bytes": vol.capacity_bytes,
        "allocation_bytes": len(vol.data),
        "backing": vol.backing,
    }


def _network_view(net: FakeVmNetwork) -> dict[str, Any]:
    return {
        "name": net.name,
        "uuid": net.uuid,
        "mode": net.mode,
        "bridge": net.bridge,
        "subnet": str(net.subnet),
        "gateway": str(net.subnet.network_address + 1),
        "dhcp_start": str(net.dhcp[0]) if net.dhcp else None,
        "dhcp_end": str(net.dhcp[1]) if net.dhcp else None,
        "active": net.active,
        "persistent": net.persistent,
        "autostart": net.autostart if net.persistent else False,
    }


def _same_network(found: FakeVmNetwork, wanted: FakeVmNetwork) -> bool:
    """The spec asked for again (a generated bridge name matches any)."""
    same = (found.mode, found.subnet, found.dhcp) == (wanted.mode, wanted.subnet, wanted.dhcp)
    return same and (not wanted.bridge_given or found.bridge == wanted.bridge)
