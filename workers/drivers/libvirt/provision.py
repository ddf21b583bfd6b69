"""Defining a domain: resolve the spec's storage and networks, build the XML, define/create.

Keyed by the job: new disk volumes are named after the job, the job id goes into the domain's
metadata, and a redelivered define finds the first attempt's volumes and domain.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import libvirt

from nube.catalog.vm_models import VmDefine, VmDisk, VmVolume
from nube.errors import InvalidRequest, NotFound
from workers.drivers.base import JobContext, job_tag, name_taken
from workers.drivers.libvirt.base import LibvirtBase, error_code
from workers.drivers.libvirt.guests import describe, find_domain, owner_of, state_of
from workers.drivers.libvirt.seed import seed_iso
from workers.drivers.libvirt.streams import upload
from workers.drivers.libvirt.xml import (
    DiskSource,
    DomainSpec,
    Nic,
    Owner,
    domain_xml,
    parse_volume,
    volume_xml,
)
from workers.drivers.names import backend_name
from workers.drivers.vm_states import VmState

#: Where QEMU's serial console output is logged (virtlogd writes it; the worker reads it).
CONSOLE_LOG_DIR = "/var/log/libvirt/qemu"
#: The suffix of a cloud-init seed volume's name (``<vm>-cidata-<job tag>``).
SEED_TAG = "-cidata-"


def console_log_path(backend: str) -> str:
    return f"{CONSOLE_LOG_DIR}/{backend}-console.log"


def lookup_pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    try:
        return conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as err:
        if error_code(err) == libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise NotFound(kind="storage_pool", id=name) from err
        raise


def lookup_volume(pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol:
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as err:
        if error_code(err) == libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise NotFound(kind="volume", id=f"{pool.name()}/{name}") from err
        raise


class ProvisionMixin(LibvirtBase):
    """``define_domain``."""

    def define_domain(self, params: VmDefine, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.define_domain`."""
        return self._run(lambda c: self._define(c, params, ctx))

    def _define(self, conn: libvirt.virConnect, p: VmDefine, ctx: JobContext) -> dict[str, Any]:
        existing = find_domain(conn, backend_name(ctx.tenant, p.name))
        if existing is not None:
            return self._adopt(existing, p, ctx)
        made: list[libvirt.virStorageVol] = []
        try:
            spec = self._resolve(conn, p, ctx, made)
            dom = self._create(conn, spec, p, ctx)
        except Exception:
            _remove_quietly(made)
            raise
        result = describe(dom, owner_of(dom), self.node)
        if spec.vnc_password:  # returned once, to the owner; libvirt's XML hides it
            result["vnc_password"] = spec.vnc_password
        return result

    def _adopt(self, dom: libvirt.virDomain, p: VmDefine, ctx: JobContext) -> dict[str, Any]:
        """A redelivered define: the domain this job made; anyone else's name is taken."""
        owner = owner_of(dom)
        if owner is None or owner.job != ctx.job_id:
            raise name_taken("VM", p.name)
        _wait_started(dom)
        if p.persistent and p.start and state_of(dom) is VmState.DEFINED:
            dom.create()
        return describe(dom, owner, self.node)

    def _resolve(
        self, conn: libvirt.virConnect, p: VmDefine, ctx: JobContext, made: list[Any]
    ) -> DomainSpec:
        disks = [self._disk(conn, p.name, i, d, ctx, made) for i, d in enumerate(p.disks)]
        if p.cdrom is not None:
            lookup_volume(lookup_pool(conn, p.cdrom.pool), p.cdrom.volume)
            disks.append(DiskSource(p.cdrom.pool, p.cdrom.volume, "raw", "cdrom"))
        for nic in p.interfaces:
            _require_network(conn, nic.network)
        backend = backend_name(ctx.tenant, p.name)
        if p.cloud_init is not None:
            disks.append(self._seed(conn, p, ctx, made))
        return DomainSpec(
            name=backend,
            memory_mib=p.memory_mib,
            vcpus=p.vcpus,
            disks=tuple(disks),
            interfaces=tuple(Nic(n.network, n.mac and n.mac.lower()) for n in p.interfaces),
            boot=tuple(p.boot),
            serial_console=p.serial_console,
            max_memory_mib=p.max_memory_mib,
            max_vcpus=p.max_vcpus,
            kernel=_volume_path(conn, p.kernel),
            initrd=_volume_path(conn, p.initrd),
            cmdline=p.cmdline,
            console_log=console_log_path(backend) if p.serial_console else None,
            vnc=p.vnc,
            vnc_password=secrets.token_urlsafe(6)[:8] if p.vnc else None,
        )

    def _seed(
        self, conn: libvirt.virConnect, p: VmDefine, ctx: JobContext, made: list[Any]
    ) -> DiskSource:
        """The cloud-init seed ISO as a volume of the first disk's pool (or the kernel's),
        named ``<vm>-cidata-<job tag>``; removed with the VM."""
        assert p.cloud_init is not None
        where = p.disks[0].pool if p.disks else (p.kernel.pool if p.kernel else None)
        if where is None:
            raise InvalidRequest("cloud_init needs a disk or a kernel to name its storage pool")
        pool = lookup_pool(conn, where)
        name = f"{p.name}{SEED_TAG}{job_tag(ctx.job_id)}"
        if name not in pool.listVolumes():
            iso = seed_iso(p.cloud_init, instance_id=ctx.job_id, hostname=p.name)
            vol = pool.createXML(volume_xml(name, len(iso), "raw", unit="bytes"), 0)
            made.append(vol)
            upload(conn, vol, iso)
        return DiskSource(where, name, "raw", "cdrom")

    def _disk(
        self,
        conn: libvirt.virConnect,
        vm: str,
        index: int,
        disk: VmDisk,
        ctx: JobContext,
        made: list[Any],
    ) -> DiskSource:
        """An existing volume, or a new one named ``<vm>-disk<i>-<job tag>`` (reused on a
        redelivery of the same job)."""
        pool = lookup_pool(conn, disk.pool)
        if disk.volume is not None:
            fmt = parse_volume(lookup_volume(pool, disk.volume).XMLDesc(0))["format"]
            return DiskSource(disk.pool, disk.volume, fmt or "raw")
        name = f"{vm}-disk{index}-{job_tag(ctx.job_id)}"
        if name not in pool.listVolumes():
            made.append(pool.createXML(volume_xml(name, disk.capacity_mib or 1, disk.format), 0))
        return DiskSource(disk.pool, name, disk.format)

    def _create(
        self, conn: libvirt.virConnect, spec: DomainSpec, p: VmDefine, ctx: JobContext
    ) -> libvirt.virDomain:
        domain_type, arch = self.guest_type(conn)
        if p.domain_type is not None and p.domain_type != domain_type:
            if p.domain_type not in self.domain_types(conn):
                raise InvalidRequest(f"this host offers no domain type '{p.domain_type}'")
            domain_type = p.domain_type
        now = datetime.now(UTC).isoformat(timespec="seconds")
        owner = Owner(tenant=ctx.tenant, job=ctx.job_id, node=self.node, created_at=now)
        xml = domain_xml(spec, owner, domain_type, arch)
        if not p.persistent:
            return conn.createXML(xml, 0)
        dom = conn.defineXML(xml)
        try:
            if p.autostart:
                dom.setAutostart(1)
            if p.start:
                dom.create()
        except Exception:
            _undefine_quietly(dom)
            raise
        return dom


def _wait_started(dom: libvirt.virDomain, seconds: float = 30.0) -> None:
    """Let a start that the first attempt asked for finish: libvirtd completes it after the
    caller died, and meanwhile the domain is paused with reason "starting up"."""
    deadline = time.monotonic() + seconds
    starting = [libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_STARTING_UP]
    while dom.state(0) == starting and time.monotonic() < deadline:
        time.sleep(0.05)


def _volume_path(conn: libvirt.virConnect, ref: VmVolume | None) -> str | None:
    if ref is None:
        return None
    return str(lookup_volume(lookup_pool(conn, ref.pool), ref.volume).path())


def _require_network(conn: libvirt.virConnect, name: str) -> None:
    try:
        conn.networkLookupByName(name)
    except libvirt.libvirtError as err:
        if error_code(err) == libvirt.VIR_ERR_NO_NETWORK:
            raise NotFound(kind="vm_network", id=name) from err
        raise


def _remove_quietly(volumes: list[libvirt.virStorageVol]) -> None:
    """Best-effort cleanup of volumes a failed define made (the original error wins)."""
    for vol in volumes:
        with contextlib.suppress(libvirt.libvirtError):
            vol.delete(0)


def _undefine_quietly(dom: libvirt.virDomain) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
