"""The fake hypervisor's migration (same answers and errors as the libvirt driver's
:mod:`workers.drivers.libvirt.migration`).

Fake hypervisors of one process find each other by node (:data:`HOSTS`): a peer in ``peers``
(whatever its URI) is the fake of that node made last in this process; none is
``BackendUnavailable``, as an unreachable libvirt is. Storage is shared as on real nodes: a
pool of the same name and path on the destination sees the VM's volumes.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

from nube.catalog import vm_models as m
from nube.errors import BackendUnavailable, Conflict, NotFound
from workers.drivers.base import JobContext, Result, name_taken
from workers.drivers.fake.vm_infra import FakeVmInfraMixin
from workers.drivers.names import backend_name
from workers.drivers.peers import peer_uri
from workers.drivers.vm_states import VmAction, require

#: The fake hypervisors of this process, by node.
HOSTS: weakref.WeakValueDictionary[str, FakeVmMigrateMixin] = weakref.WeakValueDictionary()


class FakeVmMigrateMixin(FakeVmInfraMixin):
    """``migrate_domain`` of the fake hypervisor."""

    domains: dict[str, Any]
    node: str
    peers: dict[str, str]

    def owned(self, name: str, ctx: JobContext) -> Any:
        raise NotImplementedError

    def _view(self, dom: Any) -> Result:
        raise NotImplementedError

    def migrate_domain(self, params: m.VmMigrate, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.migrate_domain`."""
        uri = peer_uri(self.peers, params.node, self.node, params.name)
        dest = HOSTS.get(params.node)
        if dest is None:
            raise BackendUnavailable(backend="libvirt", uri=uri)
        try:
            dom = self.owned(params.name, ctx)
        except NotFound:
            arrived = dest.domains.get(backend_name(ctx.tenant, params.name))
            if arrived is not None and ctx.may_have_made:  # an earlier attempt moved it
                return dest._view(arrived)
            raise
        require(VmAction.MIGRATE, dom.state, dom.persistent, params.name)
        with dest._lock:
            if dom.name in dest.domains:
                raise name_taken("VM", params.name)
            for disk in dom.disks:
                self._share_volume(dest, disk, params)
            del self.domains[dom.name]
            moved = copy.copy(dom)
            moved.node = params.node
            dest.domains[moved.name] = moved
            return dest._view(moved)

    def _share_volume(self, dest: FakeVmMigrateMixin, disk: dict[str, str], p: m.VmMigrate) -> None:
        """The destination's pool of the same name and path sees the disk's volume."""
        here, there = self.pools.get(disk["pool"]), dest.pools.get(disk["pool"])
        volume = here.volumes.get(disk["volume"]) if here else None
        if here is None or there is None or there.path != here.path or volume is None:
            raise Conflict(
                f"cannot migrate VM '{p.name}': node '{p.node}' has no volume "
                f"'{disk['pool']}/{disk['volume']}' (migration needs the same pools on both "
                "nodes, on storage both see)",
                name=p.name,
                node=p.node,
            )
        there.volumes.setdefault(volume.name, volume)
