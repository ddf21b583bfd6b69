"""An in-memory :class:`~workers.drivers.hypervisor.HypervisorDriver`, like Nova's ``virt/fake.py``.

Domains, snapshots, pools, volumes and networks are dicts; every action goes through the same
state table as libvirt (:mod:`workers.drivers.vm_states`), so ``Conflict`` and
``allowed_actions`` are the real driver's. No guest runs: a started domain is ``running`` until
told otherwise. ``guest_powers_off`` says whether the pretend guest answers the ACPI power
button; without it (a VM with no OS, as the tests boot on QEMU) a graceful shutdown times out at
once and ``force`` destroys the domain.
"""

from __future__ import annotations

import secrets
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nube.catalog import NoParams
from nube.catalog.vm_models import (
    SnapshotCreate,
    SnapshotRef,
    VmAutostart,
    VmDefine,
    VmDisk,
    VmInfo,
    VmList,
    VmReboot,
    VmRef,
    VmShutdown,
    VmUndefine,
)
from nube.errors import Conflict, Forbidden, InvalidRequest, NotFound, Timeout
from workers.drivers.base import JobContext, Result, job_tag, name_taken
from workers.drivers.fake.common import serialized
from workers.drivers.fake.vm_changes import FakeVmChangesMixin
from workers.drivers.fake.vm_copies import FakeVmCopiesMixin
from workers.drivers.fake.vm_migrate import HOSTS, FakeVmMigrateMixin
from workers.drivers.hypervisor import HypervisorDriver
from workers.drivers.names import backend_name, only_one, user_name
from workers.drivers.vm_states import VmAction, VmState, allowed_actions, require, target_state

S = VmState
_LIST_FILTERS = {
    "all": lambda d: True,
    "active": lambda d: d.state in (S.RUNNING, S.PAUSED),
    "inactive": lambda d: d.state in (S.DEFINED, S.SAVED),
    "persistent": lambda d: d.persistent,
    "transient": lambda d: not d.persistent,
    "running": lambda d: d.state is S.RUNNING,
    "paused": lambda d: d.state is S.PAUSED,
    "shutoff": lambda d: d.state in (S.DEFINED, S.SAVED),
}
_NODE_INFO = {
    "cpu_model": "x86_64",
    "memory_mib": 8192,
    "cpus": 4,
    "mhz": 2000,
    "numa_nodes": 1,
    "sockets": 1,
    "cores": 4,
    "threads": 1,
}
_SNAPSHOT_STATES = {S.RUNNING: "running", S.PAUSED: "paused", S.DEFINED: "shutoff"}
_SNAPSHOT_RESTORES = {"running": S.RUNNING, "paused": S.PAUSED, "shutoff": S.DEFINED}


@dataclass
class FakeSnapshot:
    name: str
    vm_state: str
    description: str
    created_at: int = field(default_factory=lambda: int(time.time()))


@dataclass
class FakeDomain:
    name: str
    tenant: str
    job: str
    node: str
    persistent: bool
    memory_mib: int
    vcpus: int
    disks: list[dict[str, str]]
    interfaces: list[dict[str, str]]
    boot: list[str]
    state: VmState = S.DEFINED
    autostart: bool = False
    cpu_time_ns: int = 0
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    snapshots: dict[str, FakeSnapshot] = field(default_factory=dict)
    current: str | None = None
    max_memory_mib: int = 0
    max_vcpus: int = 0
    serial_console: bool = True
    kernel_boot: dict[str, Any] | None = None
    vnc: bool = False
    seed: tuple[str, str] | None = None
    console: list[str] = field(default_factory=list)


@serialized(frozenset(HypervisorDriver.__abstractmethods__))
class FakeHypervisorDriver(
    FakeVmCopiesMixin, FakeVmMigrateMixin, FakeVmChangesMixin, HypervisorDriver
):
    """VM operations on an in-memory hypervisor (for tests, and workers without libvirt)."""

    name = "fake"

    def __init__(
        self,
        node: str = "fake-node",
        pool_root: str = "/fake/pools",
        guest_powers_off: bool = True,
        peers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.node = node
        self.peers = dict(peers or {})
        HOSTS[node] = self
        self.pool_root = pool_root.rstrip("/") or "/"
        self.guest_powers_off = guest_powers_off
        self.domains: dict[str, FakeDomain] = {}

    def version(self) -> str:
        """``fake 1.0``."""
        return "fake 1.0"

    def hypervisor_info(self, params: NoParams, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.hypervisor_info`; a made-up 4-CPU, 8 GiB node."""
        guests = [{"os_type": "hvm", "arch": "x86_64", "domain_types": ["fake"]}]
        return {
            "node": self.node,
            "hostname": socket.gethostname(),
            "uri": "fake:///",
            "hypervisor": "fake",
            "hypervisor_version": "1.0.0",
            "libvirt_version": "0.0.0",
            "node_info": dict(_NODE_INFO),
            "max_vcpus": 256,
            "domain_type": "fake",
            "guest_arch": "x86_64",
            "capabilities": {
                "host_arch": "x86_64",
                "host_cpu_model": "fake",
                "guest_arches": ["x86_64"],
                "domain_types": ["fake"],
                "guests": guests,
            },
        }

    # --- reads -----------------------------------------------------------------------------------

    def owned(self, name: str, ctx: JobContext) -> FakeDomain:
        """The tenant's domain ``name``; another tenant's is ``NotFound`` exactly like none. An
        admin also reaches another tenant's by its name (:func:`~workers.drivers.names.only_one`)
        or by its backend name."""
        dom = self.domains.get(backend_name(ctx.tenant, name)) or self.domains.get(name)
        if dom is None and ctx.admin:
            named = [d for d in self.domains.values() if user_name(d.name, d.tenant) == name]
            dom = only_one(named, "VM", name)
        if dom is None or not (ctx.admin or dom.tenant == ctx.tenant):
            raise NotFound(kind="vm", id=name)
        return dom

    def list_domains(self, params: VmList, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.list_domains`."""
        keep = _LIST_FILTERS[params.state]
        mine = [d for d in self.domains.values() if d.tenant == ctx.tenant and keep(d)]
        return {"vms": [self._view(d) for d in sorted(mine, key=lambda d: d.name)]}

    def domain_info(self, params: VmInfo, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.domain_info`."""
        found = self._view(self.owned(params.name, ctx))
        if params.stats:
            stats = self.domain_stats(VmRef(name=params.name), ctx)
            found["stats"] = {k: v for k, v in stats.items() if k not in ("name", "state")}
        return found

    def domain_xml(self, params: VmRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.domain_xml`."""
        if not ctx.admin:
            raise Forbidden(scope="admin")
        return {"name": params.name, "xml": _xml(self.owned(params.name, ctx))}

    def _view(self, dom: FakeDomain) -> Result:
        live = dom.state in (S.RUNNING, S.PAUSED)
        if live:  # the pretend guest burns a little CPU between two looks
            dom.cpu_time_ns += 1_000_000
        return {
            "name": user_name(dom.name, dom.tenant),
            "uuid": dom.uuid,
            "node": dom.node,
            "tenant": dom.tenant,
            "job": dom.job,
            "created_at": dom.created_at,
            "state": dom.state.value,
            "persistent": dom.persistent,
            "autostart": dom.autostart if dom.persistent else False,
            "managed_save": dom.state is S.SAVED,
            "max_memory_mib": dom.max_memory_mib,
            "memory_mib": dom.memory_mib,
            "vcpus": dom.vcpus,
            "max_vcpus": dom.max_vcpus,
            "cpu_time_ns": dom.cpu_time_ns,
            "allowed_actions": allowed_actions(dom.state, dom.persistent),
            "disks": [dict(d) for d in dom.disks],
            "interfaces": [{**i, "addresses": []} for i in dom.interfaces],
            "boot": list(dom.boot),
            "kernel_boot": dict(dom.kernel_boot) if dom.kernel_boot else None,
            "vnc": {"listen": "127.0.0.1", "port": 5900 if live else None} if dom.vnc else None,
        }

    def _gone(self, name: str, tenant: str) -> Result:
        return {
            "name": name,
            "node": self.node,
            "tenant": tenant,
            "state": "undefined",
            "allowed_actions": [],
        }

    # --- actions ---------------------------------------------------------------------------------

    def _act(self, name: str, ctx: JobContext, action: VmAction) -> Result:
        """Check ``action`` against the state table and move the domain to its target state."""
        dom = self.owned(name, ctx)
        require(action, dom.state, dom.persistent, name)
        if action in (VmAction.START, VmAction.RESTORE):
            self._check_networks(dom)
            _boot(dom)
        dom.state = target_state(action, dom.state, dom.persistent)
        if dom.state is S.UNDEFINED:
            del self.domains[dom.name]
            return self._gone(name, dom.tenant)
        return self._view(dom)

    def _check_networks(self, dom: FakeDomain) -> None:
        for nic in dom.interfaces:
            self.active_network(nic["network"])

    def start_domain(self, params: VmRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.start_domain`."""
        return self._act(params.name, ctx, VmAction.START)

    def destroy_domain(self, params: VmRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.destroy_domain`."""
        return self._act(params.name, ctx, VmAction.DESTROY)

    def suspend_domain(self, params: VmRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.suspend_domain`."""
        return self._act(params.name, ctx, VmAction.SUSPEND)

    def resume_domain(self, params: VmRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.resume_domain`."""
        return self._act(params.name, ctx, VmAction.RESUME)

    def save_domain(self, params: VmRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.save_domain`."""
        return self._act(params.name, ctx, VmAction.SAVE)

    def restore_domain(self, params: VmRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.restore_domain`."""
        return self._act(params.name, ctx, VmAction.RESTORE)

    def reboot_domain(self, params: VmReboot, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.reboot_domain`."""
        return self._act(params.name, ctx, VmAction.REBOOT)

    def set_domain_autostart(self, params: VmAutostart, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.set_domain_autostart`."""
        dom = self.owned(params.name, ctx)
        require(VmAction.AUTOSTART, dom.state, dom.persistent, params.name)
        dom.autostart = params.enabled
        return self._view(dom)

    def shutdown_domain(self, params: VmShutdown, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.shutdown_domain`."""
        dom = self.owned(params.name, ctx)
        require(VmAction.SHUTDOWN, dom.state, dom.persistent, params.name)
        if self.guest_powers_off:
            return self._act(params.name, ctx, VmAction.SHUTDOWN) | _outcome(graceful=True)
        if not params.force:
            raise Timeout(
                f"VM '{params.name}' did not power off within {params.timeout} s; "
                "pass force=true to destroy it after the timeout",
                limit=params.timeout,
            )
        return self._act(params.name, ctx, VmAction.DESTROY) | _outcome(graceful=False)

    def undefine_domain(self, params: VmUndefine, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.undefine_domain`."""
        dom = self.owned(params.name, ctx)
        require(VmAction.UNDEFINE, dom.state, dom.persistent, params.name)
        removed = self._remove_disks(dom) if params.remove_storage else []
        if dom.seed is not None and dom.seed[0] in self.pools:  # the seed goes with the VM
            self.pools[dom.seed[0]].volumes.pop(dom.seed[1], None)
        del self.domains[dom.name]
        return {**self._gone(params.name, dom.tenant), "removed_volumes": removed}

    def _remove_disks(self, dom: FakeDomain) -> list[str]:
        removed = []
        for disk in (d for d in dom.disks if d["device"] == "disk"):
            pool = self.pools.get(disk["pool"])
            if pool is not None and pool.volumes.pop(disk["volume"], None) is not None:
                removed.append(f"{disk['pool']}/{disk['volume']}")
        return removed

    # --- define ----------------------------------------------------------------------------------

    def define_domain(self, params: VmDefine, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.define_domain`."""
        held = self.domains.get(backend_name(ctx.tenant, params.name))
        if held is not None:
            return self._adopt(held, params, ctx)
        made: list[tuple[str, str]] = []
        try:
            dom = self._new_domain(params, ctx, made)
            self.domains[dom.name] = dom
            self._first_start(dom, params)
        except Exception:
            for pool, volume in made:
                self.pools[pool].volumes.pop(volume, None)
            raise
        if params.vnc:  # returned once, to the owner
            return {**self._view(dom), "vnc_password": secrets.token_urlsafe(6)[:8]}
        return self._view(dom)

    def _adopt(self, dom: FakeDomain, p: VmDefine, ctx: JobContext) -> Result:
        """A redelivered define: the domain this job made; anyone else's name is taken."""
        if dom.job != ctx.job_id:
            raise name_taken("VM", p.name)
        if p.persistent and p.start and dom.state is S.DEFINED:
            self._check_networks(dom)
            _boot(dom)
            dom.state = S.RUNNING
        return self._view(dom)

    def _new_domain(self, p: VmDefine, ctx: JobContext, made: list[tuple[str, str]]) -> FakeDomain:
        disks = [self._disk(p.name, i, d, ctx, made) for i, d in enumerate(p.disks)]
        if p.cdrom is not None:
            self.storage_volume(self.active_pool(p.cdrom.pool), p.cdrom.volume)
            disks.append(_disk(p.cdrom.pool, p.cdrom.volume, "raw", "cdrom", "hdc"))
        for nic in p.interfaces:
            self.vm_network(nic.network)
        nics = [{"network": n.network, "mac": (n.mac or _mac()).lower()} for n in p.interfaces]
        kernel = self._kernel_boot(p)
        seed = self._seed(p, ctx, made) if p.cloud_init is not None else None
        if seed is not None:
            disks.append(_disk(seed[0], seed[1], "raw", "cdrom", "hdc"))
        if p.domain_type == "kvm":  # the fake offers only emulation, as a host without /dev/kvm
            raise InvalidRequest("this host offers no domain type 'kvm'")
        return FakeDomain(
            name=backend_name(ctx.tenant, p.name),
            tenant=ctx.tenant,
            job=ctx.job_id,
            node=self.node,
            persistent=p.persistent,
            memory_mib=p.memory_mib,
            vcpus=p.vcpus,
            disks=disks,
            interfaces=nics,
            boot=list(p.boot),
            autostart=p.autostart,
            max_memory_mib=p.max_memory_mib or p.memory_mib,
            max_vcpus=p.max_vcpus or p.vcpus,
            serial_console=p.serial_console,
            kernel_boot=kernel,
            vnc=p.vnc,
            seed=seed,
        )

    def _kernel_boot(self, p: VmDefine) -> dict[str, Any] | None:
        if p.kernel is None:
            return None
        paths = []
        for ref in (p.kernel, p.initrd):
            if ref is not None:
                paths.append(self.storage_volume(self.active_pool(ref.pool), ref.volume).path)
        initrd = paths[1] if len(paths) > 1 else None
        return {"kernel": paths[0], "initrd": initrd, "cmdline": p.cmdline}

    def _seed(self, p: VmDefine, ctx: JobContext, made: list[tuple[str, str]]) -> tuple[str, str]:
        """The cloud-init seed volume ``<vm>-cidata-<job tag>`` (see the libvirt driver)."""
        where = p.disks[0].pool if p.disks else (p.kernel.pool if p.kernel else None)
        if where is None:
            raise InvalidRequest("cloud_init needs a disk or a kernel to name its storage pool")
        pool = self.active_pool(where)
        name = f"{p.name}-cidata-{job_tag(ctx.job_id)}"
        if name not in pool.volumes:
            self.add_volume(pool, name, "raw", 368640)
            made.append((pool.name, name))
        return (where, name)

    def _disk(
        self, vm: str, index: int, disk: VmDisk, ctx: JobContext, made: list[tuple[str, str]]
    ) -> dict[str, str]:
        """An existing volume, or a new one named ``<vm>-disk<i>-<job tag>`` (reused on a
        redelivery of the same job)."""
        pool = self.active_pool(disk.pool)
        if disk.volume is not None:
            fmt = self.storage_volume(pool, disk.volume).format
            return _disk(disk.pool, disk.volume, fmt, target=f"vd{'abcdefghijklmnop'[index]}")
        name = f"{vm}-disk{index}-{job_tag(ctx.job_id)}"
        if name not in pool.volumes:
            self.add_volume(pool, name, disk.format, (disk.capacity_mib or 1) << 20)
            made.append((pool.name, name))
        return _disk(disk.pool, name, disk.format, target=f"vd{'abcdefghijklmnop'[index]}")

    def _first_start(self, dom: FakeDomain, p: VmDefine) -> None:
        """Start a transient domain, or a persistent one asked to; undo the define if it fails."""
        if not (p.start or not p.persistent):
            return
        try:
            self._check_networks(dom)
        except Exception:
            del self.domains[dom.name]
            raise
        _boot(dom)
        dom.state = S.RUNNING

    # --- snapshots -------------------------------------------------------------------------------

    def create_snapshot(self, params: SnapshotCreate, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.create_snapshot`."""
        dom = self.owned(params.name, ctx)
        description = f"taken by nube job {ctx.job_id}"
        found = dom.snapshots.get(params.snapshot)
        if found is not None:
            if found.description != description:
                raise Conflict(f"VM '{params.name}' already has a snapshot '{params.snapshot}'")
            return _snapshot_view(dom, found)
        require(VmAction.SNAPSHOT_CREATE, dom.state, dom.persistent, params.name)
        disks = [d for d in dom.disks if d["device"] == "disk"]
        if not disks or any(d["format"] != "qcow2" for d in disks):
            raise Conflict(f"VM '{params.name}' needs qcow2 disks (and at least one) for snapshots")
        snap = FakeSnapshot(params.snapshot, _SNAPSHOT_STATES[dom.state], description)
        dom.snapshots[snap.name], dom.current = snap, snap.name
        return _snapshot_view(dom, snap)

    def list_snapshots(self, params: VmRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.list_snapshots`."""
        dom = self.owned(params.name, ctx)
        snaps = sorted(dom.snapshots.values(), key=lambda s: (s.created_at, s.name))
        return {"snapshots": [_snapshot_view(dom, s) for s in snaps]}

    def revert_snapshot(self, params: SnapshotRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.revert_snapshot`."""
        dom, snap = self._snapshot(params, ctx, VmAction.SNAPSHOT_REVERT)
        dom.state, dom.current = _SNAPSHOT_RESTORES[snap.vm_state], snap.name
        return {**_snapshot_view(dom, snap), "vm_state": dom.state.value}

    def delete_snapshot(self, params: SnapshotRef, ctx: JobContext) -> Result:
        """See :meth:`HypervisorDriver.delete_snapshot`."""
        dom, snap = self._snapshot(params, ctx, VmAction.SNAPSHOT_DELETE)
        del dom.snapshots[snap.name]
        if dom.current == snap.name:
            dom.current = None
        return {"name": params.snapshot, "vm": params.name, "deleted": True}

    def _snapshot(
        self, p: SnapshotRef, ctx: JobContext, action: VmAction
    ) -> tuple[FakeDomain, FakeSnapshot]:
        dom = self.owned(p.name, ctx)
        if p.snapshot not in dom.snapshots:
            raise NotFound(kind="snapshot", id=f"{p.name}/{p.snapshot}")
        require(action, dom.state, dom.persistent, p.name)
        return dom, dom.snapshots[p.snapshot]


def _outcome(graceful: bool) -> dict[str, bool]:
    return {"graceful": graceful, "forced": not graceful}


def _disk(
    pool: str, volume: str, fmt: str, device: str = "disk", target: str = ""
) -> dict[str, str]:
    return {"pool": pool, "volume": volume, "format": fmt, "device": device, "target": target}


def _boot(dom: FakeDomain) -> None:
    """A start: the console log starts over, and the pretend guest prints what the test guest
    (:mod:`nube.tools.guest`) prints."""
    if dom.serial_console:
        dom.console = ["NUBE-GUEST-UP"] if dom.kernel_boot else []


def _mac() -> str:
    """A MAC address in QEMU's range, as libvirt generates one."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def _snapshot_view(dom: FakeDomain, snap: FakeSnapshot) -> dict[str, Any]:
    return {
        "name": snap.name,
        "vm": user_name(dom.name, dom.tenant),
        "created_at": snap.created_at,
        "state": snap.vm_state,
        "current": dom.current == snap.name,
        "description": snap.description,
    }


def _xml(dom: FakeDomain) -> str:
    """A libvirt-like domain XML of the fake domain (for admins' ``domain_xml``)."""
    root = ET.Element("domain", {"type": "fake"})
    ET.SubElement(root, "name").text = dom.name
    ET.SubElement(root, "uuid").text = dom.uuid
    ET.SubElement(root, "memory", {"unit": "MiB"}).text = str(dom.memory_mib)
    ET.SubElement(root, "vcpu").text = str(dom.vcpus)
    devices = ET.SubElement(root, "devices")
    for disk in dom.disks:
        el = ET.SubElement(devices, "disk", {"type": "volume", "device": disk["device"]})
        ET.SubElement(el, "source", {"pool": disk["pool"], "volume": disk["volume"]})
    for nic in dom.interfaces:
        el = ET.SubElement(devices, "interface", {"type": "network"})
        ET.SubElement(el, "source", {"network": nic["network"]})
        ET.SubElement(el, "mac", {"address": nic["mac"]})
    return ET.tostring(root, encoding="unicode")
