"""The fake hypervisor's volume content and VM changes: import, download and clone volumes;
console, stats, resize, disks and NICs. Same answers and errors as the libvirt driver (the
contract suite runs both), on in-memory state: a volume keeps its bytes, a domain its console
lines (the pretend guest "prints" what the real test guest prints)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from nube.catalog import PAYLOAD_LIMIT
from nube.catalog import vm_models as m
from nube.errors import Conflict, InvalidRequest, NotFound
from workers.drivers.base import JobContext, Result, job_tag
from workers.drivers.console_follow import follow
from workers.drivers.fake.vm_infra import FakeVmInfraMixin, volume_view
from workers.drivers.libvirt.content import decode_content, qcow2_virtual_size
from workers.drivers.names import user_name
from workers.drivers.vm_states import VmAction, VmState, require

S = VmState


class FakeVmChangesMixin(FakeVmInfraMixin):
    """Volume content and VM changes of :class:`~workers.drivers.fake.FakeHypervisorDriver`."""

    def owned(self, name: str, ctx: JobContext) -> Any:
        raise NotImplementedError

    def _view(self, dom: Any) -> Result:
        raise NotImplementedError

    # --- volume content --------------------------------------------------------------------------

    def upload_volume(self, params: m.StorageVolumeUpload, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.upload_volume`."""
        data = decode_content(params)
        pool = self.active_pool(params.pool)
        found = pool.volumes.get(params.name)
        if found is not None:
            if hashlib.sha256(found.data).hexdigest() != params.sha256:
                raise Conflict(f"a volume named '{params.name}' already exists in '{params.pool}'")
            return {**volume_view(pool, found), "sha256": params.sha256}
        size = qcow2_virtual_size(data) if params.format == "qcow2" else len(data)
        vol = self.add_volume(pool, params.name, params.format, size)
        vol.data = data
        return {**volume_view(pool, vol), "sha256": params.sha256}

    def download_volume(self, params: m.StorageVolumeRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.download_volume`."""
        pool = self.active_pool(params.pool)
        vol = self.storage_volume(pool, params.name)
        data = vol.data if vol.format == "qcow2" or vol.data else b"\0" * vol.capacity_bytes
        if len(data) > PAYLOAD_LIMIT:
            raise InvalidRequest(f"the volume holds more than {PAYLOAD_LIMIT} bytes to download")
        return {
            "name": params.name,
            "pool": params.pool,
            "format": vol.format,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "content": base64.b64encode(data).decode(),
        }

    def grow_volume(self, params: m.StorageVolumeGrow, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.grow_volume`."""
        pool = self.active_pool(params.pool)
        vol = self.storage_volume(pool, params.name)
        wanted = params.capacity_mib << 20
        if wanted < vol.capacity_bytes:
            raise Conflict(
                f"volume '{params.name}' holds {vol.capacity_bytes} bytes; it only grows",
                capacity_bytes=vol.capacity_bytes,
            )
        vol.capacity_bytes = wanted
        return volume_view(pool, vol)

    def clone_volume(self, params: m.StorageVolumeClone, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.clone_volume`."""
        pool = self.active_pool(params.pool)
        src = self.storage_volume(pool, params.name)
        found = pool.volumes.get(params.target)
        if found is not None:
            same = found.backing == src.path if params.backing else found.data == src.data
            if not same or found.capacity_bytes != src.capacity_bytes:
                raise Conflict(f"a volume named '{params.target}' already exists in '{pool.name}'")
            return volume_view(pool, found)
        fmt = "qcow2" if params.backing else src.format
        vol = self.add_volume(pool, params.target, fmt, src.capacity_bytes)
        if params.backing:
            vol.backing = src.path
        else:
            vol.data = src.data
        return volume_view(pool, vol)

    # --- reads -----------------------------------------------------------------------------------

    def domain_console(self, params: m.VmConsole, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.domain_console`."""
        dom = self.owned(params.name, ctx)
        lines: list[str] = dom.console
        return {
            "name": user_name(dom.name, dom.tenant),
            "lines": lines[-params.tail :],
            "truncated": len(lines) > params.tail,
            "log": dom.serial_console,
        }

    def follow_console(self, params: m.VmConsoleFollow, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.follow_console` (the domain's console lines; the fake
        runs one call at a time, so no guest prints meanwhile)."""
        dom = self.owned(params.name, ctx)
        lines: list[str] = dom.console
        first = lines[-params.tail :] if params.tail else []
        read = [len(lines)]

        def new_lines() -> list[str]:
            fresh = dom.console[read[0] :]
            read[0] = len(dom.console)
            return list(fresh)

        name = user_name(dom.name, dom.tenant)
        return {"name": name, **follow(new_lines, params.seconds, ctx, first)}

    def domain_stats(self, params: m.VmRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.domain_stats`."""
        dom = self.owned(params.name, ctx)
        live = dom.state in (S.RUNNING, S.PAUSED)
        out: dict[str, Any] = {"cpu": {}, "memory": {}, "vcpu": {}, "block": [], "net": []}
        if live:
            out["cpu"] = {"time": dom.cpu_time_ns}
            out["memory"] = {"current": dom.memory_mib * 1024, "maximum": dom.max_memory_mib * 1024}
            out["vcpu"] = {"current": dom.vcpus, "maximum": dom.max_vcpus}
            out["block"] = [{"name": d["target"], "rd.bytes": 0} for d in dom.disks]
            out["net"] = [{"name": f"vnet{i}", "rx.bytes": 0} for i, _ in enumerate(dom.interfaces)]
        return {"name": user_name(dom.name, dom.tenant), "state": dom.state.value, **out}

    # --- changes ---------------------------------------------------------------------------------

    def resize_domain(self, params: m.VmResize, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.resize_domain`."""
        dom = self.owned(params.name, ctx)
        require(VmAction.RESIZE, dom.state, dom.persistent, params.name)
        live = dom.state is not S.DEFINED
        if params.memory_mib is not None:
            if live and params.memory_mib > dom.max_memory_mib:
                raise Conflict(
                    f"a running VM grows to its max_memory_mib ({dom.max_memory_mib}) at most; "
                    "stop it to resize further",
                    max_memory_mib=dom.max_memory_mib,
                )
            dom.memory_mib = params.memory_mib
            if not live:
                dom.max_memory_mib = params.memory_mib
        if params.vcpus is not None:
            if live and params.vcpus > dom.max_vcpus:
                raise Conflict(
                    f"a running VM has at most its max_vcpus ({dom.max_vcpus}); "
                    "stop it to resize further",
                    max_vcpus=dom.max_vcpus,
                )
            dom.vcpus = params.vcpus
            if not live:
                dom.max_vcpus = params.vcpus
        return self._view(dom)

    def attach_disk(self, params: m.VmDiskAttach, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.attach_disk`."""
        dom = self.owned(params.name, ctx)
        require(VmAction.DISK_ATTACH, dom.state, dom.persistent, params.name)
        pool = self.active_pool(params.pool)
        if params.volume is not None:
            name, fmt = params.volume, self.storage_volume(pool, params.volume).format
        else:
            name, fmt = f"{params.name}-hp-{job_tag(ctx.job_id)}", params.format
            if name not in pool.volumes:
                self.add_volume(pool, name, fmt, (params.capacity_mib or 1) << 20)
        for disk in dom.disks:
            if (disk["pool"], disk["volume"]) == (params.pool, name):
                return {**self._view(dom), "target": disk["target"], "volume": name}
        used = {d["target"] for d in dom.disks}
        target = next((f"vd{c}" for c in "abcdefghijklmnopqrstuvwxyz" if f"vd{c}" not in used), "")
        if not target:
            raise Conflict("the VM has no free disk target left")
        dom.disks.append(
            {"pool": params.pool, "volume": name, "format": fmt, "device": "disk", "target": target}
        )
        if dom.state is S.RUNNING:
            dom.console.append(
                f"NUBE-DISK-ADDED {target} {(pool.volumes[name].capacity_bytes) // 512}"
            )
        return {**self._view(dom), "target": target, "volume": name}

    def detach_disk(self, params: m.VmDiskDetach, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.detach_disk`."""
        dom = self.owned(params.name, ctx)
        require(VmAction.DISK_DETACH, dom.state, dom.persistent, params.name)
        kept = [d for d in dom.disks if d["target"] != params.target]
        if len(kept) == len(dom.disks):
            raise NotFound(kind="disk", id=f"{params.name}/{params.target}")
        dom.disks = kept
        return {**self._view(dom), "detached": params.target}

    def attach_nic(self, params: m.VmNicAttach, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.attach_nic`."""
        dom = self.owned(params.name, ctx)
        require(VmAction.NIC_ATTACH, dom.state, dom.persistent, params.name)
        self.vm_network(params.network)
        tag = job_tag(ctx.job_id)
        mac = (params.mac or f"52:54:00:{tag[:2]}:{tag[2:4]}:{tag[4:6]}").lower()
        if not any(i["mac"] == mac for i in dom.interfaces):
            dom.interfaces.append({"network": params.network, "mac": mac})
        return {**self._view(dom), "mac": mac}

    def detach_nic(self, params: m.VmNicDetach, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.detach_nic`."""
        dom = self.owned(params.name, ctx)
        require(VmAction.NIC_DETACH, dom.state, dom.persistent, params.name)
        mac = params.mac.lower()
        kept = [i for i in dom.interfaces if i["mac"] != mac]
        if len(kept) == len(dom.interfaces):
            raise NotFound(kind="nic", id=f"{params.name}/{mac}")
        dom.interfaces = kept
        return {**self._view(dom), "detached": mac}
