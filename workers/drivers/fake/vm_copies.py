"""The fake hypervisor's rename and clone of shut-off VMs (same answers and errors as the
libvirt driver's :mod:`workers.drivers.libvirt.copies`; the contract suite runs both)."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from nube.catalog import vm_models as m
from nube.errors import NotFound
from workers.drivers.base import JobContext, Result, job_tag, name_taken
from workers.drivers.fake.vm_infra import FakeVmInfraMixin
from workers.drivers.libvirt.provision import SEED_TAG
from workers.drivers.names import backend_name
from workers.drivers.vm_states import VmAction, require


class FakeVmCopiesMixin(FakeVmInfraMixin):
    """``rename_domain`` and ``clone_domain`` of the fake hypervisor."""

    domains: dict[str, Any]
    node: str

    def owned(self, name: str, ctx: JobContext) -> Any:
        raise NotImplementedError

    def _view(self, dom: Any) -> Result:
        raise NotImplementedError

    def rename_domain(self, params: m.VmRename, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.rename_domain`."""
        try:
            dom = self.owned(params.name, ctx)
        except NotFound:
            moved = self.domains.get(backend_name(ctx.tenant, params.new_name))
            if moved is not None and ctx.may_have_made:  # an earlier attempt renamed it
                return self._view(moved)
            raise
        require(VmAction.RENAME, dom.state, dom.persistent, params.name)
        new = backend_name(dom.tenant, params.new_name)
        if new == dom.name:
            return self._view(dom)
        if new in self.domains:
            raise name_taken("VM", params.new_name)
        del self.domains[dom.name]
        dom.name = new
        self.domains[new] = dom
        return self._view(dom)

    def clone_domain(self, params: m.VmClone, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.clone_domain`."""
        src = self.owned(params.name, ctx)
        held = self.domains.get(backend_name(ctx.tenant, params.target))
        if held is not None:
            if held.job != ctx.job_id:
                raise name_taken("VM", params.target)
            return self._view(held)
        require(VmAction.CLONE, src.state, src.persistent, params.name)
        made: list[tuple[str, str]] = []
        try:
            disks = [self._copy_disk(params, i, d, ctx, made) for i, d in enumerate(src.disks)]
        except Exception:
            for pool, volume in made:
                self.pools[pool].volumes.pop(volume, None)
            raise
        seed = next(((d["pool"], d["volume"]) for d in disks if SEED_TAG in d["volume"]), None)
        dom = dataclasses.replace(
            src,
            name=backend_name(ctx.tenant, params.target),
            tenant=ctx.tenant,
            job=ctx.job_id,
            node=self.node,
            disks=disks,
            interfaces=[{**i, "mac": _mac()} for i in src.interfaces],
            autostart=False,
            cpu_time_ns=0,
            uuid=str(uuid.uuid4()),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            snapshots={},
            current=None,
            seed=seed,
            console=[],
        )
        self.domains[dom.name] = dom
        return self._view(dom)

    def _copy_disk(
        self,
        p: m.VmClone,
        index: int,
        disk: dict[str, str],
        ctx: JobContext,
        made: list[tuple[str, str]],
    ) -> dict[str, str]:
        """A disk's copy ``<target>-disk<i>-<job tag>`` (a seed's ``<target>-cidata-<job
        tag>``); other CD-ROMs are shared."""
        seed = SEED_TAG in disk["volume"]
        if disk["device"] != "disk" and not seed:
            return dict(disk)
        pool = self.active_pool(disk["pool"])
        src = self.storage_volume(pool, disk["volume"])
        tag = job_tag(ctx.job_id)
        name = f"{p.target}{SEED_TAG}{tag}" if seed else f"{p.target}-disk{index}-{tag}"
        linked = p.linked and not seed
        if name not in pool.volumes:
            vol = self.add_volume(pool, name, "qcow2" if linked else src.format, src.capacity_bytes)
            made.append((pool.name, name))
            if linked:
                vol.backing = src.path
            else:
                vol.data = src.data
        return {**disk, "volume": name, "format": pool.volumes[name].format}


def _mac() -> str:
    """A MAC address in QEMU's range, as libvirt generates one."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


__all__ = ["FakeVmCopiesMixin"]
