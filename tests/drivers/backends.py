"""Observers: what a driver's backend itself holds, read past the driver interface.

A contract test drives a step through the driver, then asks the observer what the backend made
of it: for the fakes their own in-memory store, for Docker the Docker SDK, for libvirt a raw
libvirt connection. The answers are in one vocabulary for both kinds (Docker's and libvirt's
words), so one assertion checks the fake and the real backend alike.

Also here: removing what a test run left on the real backends (by tenant label, by name prefix).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from workers.drivers import ContainerDriver, HypervisorDriver
from workers.drivers.fake import FakeContainerDriver, FakeHypervisorDriver
from workers.drivers.vm_states import VmState

Kind = Literal["container", "image", "network", "volume"]
Stored = Literal["image", "network", "volume"]


def _matches(labels: dict[str, str], label: str) -> bool:
    """Docker's label filter: ``key`` or ``key=value``."""
    key, eq, value = label.partition("=")
    return key in labels and (not eq or labels[key] == value)


# --- containers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeenContainer:
    """A container as the engine holds it (``docker inspect``)."""

    id: str
    name: str
    status: str
    exit_code: int
    labels: dict[str, str]
    memory: int
    pids_limit: int | None
    restart: tuple[str, int]
    """The restart policy's name and its maximum retry count."""


@dataclass(frozen=True)
class Seen:
    """An image, network or volume as the engine holds it (a volume's id is its name)."""

    id: str
    labels: dict[str, str]


class ContainerBackend(Protocol):
    def close(self) -> None: ...

    def container(self, key: str) -> SeenContainer | None:
        """The container with this id or name, ``None`` when the engine has none."""

    def seen(self, kind: Stored, key: str) -> Seen | None:
        """The image (by id or reference), network (by id or name) or volume (by name)."""

    def count(self, kind: Kind, label: str) -> int:
        """How many of ``kind`` carry ``label`` (``key`` or ``key=value``), of every tenant."""


class FakeEngineView:
    """The fake engine's own dicts."""

    def __init__(self, driver: FakeContainerDriver) -> None:
        self.driver = driver

    def close(self) -> None:
        pass

    def container(self, key: str) -> SeenContainer | None:
        found = self.driver.find_container(key)
        if found is None:
            return None
        host = found.host_config
        return SeenContainer(
            id=found.id,
            name=found.name,
            status=found.status,
            exit_code=found.exit_code,
            labels=dict(found.labels),
            memory=host["memory"] or 0,
            pids_limit=host["pids_limit"],
            restart=(host["restart_policy"], host["restart_max_retries"]),
        )

    def seen(self, kind: Stored, key: str) -> Seen | None:
        if kind == "image":
            image = self.driver.find_image(key)
            return None if image is None else Seen(image.id, dict(image.labels))
        if kind == "network":
            nets = [n for n in self.driver.networks.values() if key in (n.id, n.name)]
            return Seen(nets[0].id, dict(nets[0].labels)) if nets else None
        vol = self.driver.volumes.get(key)
        return None if vol is None else Seen(vol.name, dict(vol.labels))

    def count(self, kind: Kind, label: str) -> int:
        stores: dict[Kind, Any] = {
            "container": self.driver.containers,
            "image": self.driver.images,
            "network": self.driver.networks,
            "volume": self.driver.volumes,
        }
        return sum(_matches(item.labels, label) for item in stores[kind].values())


class DockerEngineView:
    """The engine through the Docker SDK."""

    def __init__(self) -> None:
        import docker

        self.client = docker.from_env(timeout=60)
        self.missing = docker.errors.NotFound

    def close(self) -> None:
        self.client.close()

    def container(self, key: str) -> SeenContainer | None:
        try:
            attrs = self.client.api.inspect_container(key)
        except self.missing:
            return None
        host, policy = attrs["HostConfig"], attrs["HostConfig"]["RestartPolicy"]
        return SeenContainer(
            id=attrs["Id"],
            name=attrs["Name"].removeprefix("/"),
            status=attrs["State"]["Status"],
            exit_code=attrs["State"]["ExitCode"],
            labels=attrs["Config"]["Labels"] or {},
            memory=host["Memory"],
            pids_limit=host["PidsLimit"],
            restart=(policy["Name"], policy["MaximumRetryCount"]),
        )

    def seen(self, kind: Stored, key: str) -> Seen | None:
        try:
            item = self._collection(kind).get(key)
        except self.missing:
            return None
        labels = item.labels if kind == "image" else item.attrs["Labels"]
        return Seen(item.id, labels or {})

    def count(self, kind: Kind, label: str) -> int:
        filters = {"label": label}
        if kind == "container":
            return len(self.client.api.containers(all=True, filters=filters))
        return len(self._collection(kind).list(filters=filters))

    def _collection(self, kind: Stored) -> Any:
        return {
            "image": self.client.images,
            "network": self.client.networks,
            "volume": self.client.volumes,
        }[kind]


def container_observer(driver: ContainerDriver) -> ContainerBackend:
    """The fake's own store for the fake driver, else the engine through the Docker SDK."""
    if isinstance(driver, FakeContainerDriver):
        return FakeEngineView(driver)
    return DockerEngineView()


def remove_docker_resources(tenants: tuple[str, ...]) -> None:
    """Every container, network, volume and image labelled with one of ``tenants``."""
    import docker

    def quietly(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        with contextlib.suppress(docker.errors.APIError):
            call(*args, **kwargs)

    client = docker.from_env(timeout=60)
    with contextlib.closing(client):
        for tenant in tenants:
            labels = {"label": [f"nube.tenant={tenant}"]}
            for container in client.containers.list(all=True, filters=labels):
                quietly(container.remove, force=True, v=True)
            for network in client.networks.list(filters=labels):
                quietly(network.remove)
            for volume in client.volumes.list(filters=labels):
                quietly(volume.remove, force=True)
            for image in client.images.list(filters=labels):
                quietly(client.images.remove, image.id, force=True)


def has_image(reference: str) -> bool:
    import docker

    try:
        client = docker.from_env(timeout=30)
        with contextlib.closing(client):
            client.images.get(reference)
    except docker.errors.DockerException:
        return False
    return True


# --- hypervisors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeenDomain:
    """A domain as the hypervisor holds it, in libvirt's words."""

    state: str
    """``running``, ``paused`` or ``shutoff``."""
    managed_save: bool
    autostart: bool
    snapshots: int
    memory_mib: int = 0
    """The definition's memory (its maximum)."""
    vcpus: int = 0
    """The definition's current vCPUs."""
    disks: tuple[str, ...] = ()
    """Target devices of the definition's disks (``vda``, ``hdc``)."""
    macs: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeenNetwork:
    active: bool
    persistent: bool


class HypervisorBackend(Protocol):
    uri: str

    def close(self) -> None: ...

    def domain(self, name: str) -> SeenDomain | None:
        """The domain ``name``, ``None`` when the hypervisor has none."""

    def domain_names(self) -> list[str]:
        """Every domain's name, of every tenant."""

    def network(self, name: str) -> SeenNetwork | None:
        """The network ``name``, ``None`` when the hypervisor has none."""

    def volume_bytes(self, pool: str, name: str) -> bytes | None:
        """The bytes stored in a volume, ``None`` when there is no such volume."""


_FAKE_STATES = {
    VmState.RUNNING: "running",
    VmState.PAUSED: "paused",
    VmState.DEFINED: "shutoff",
    VmState.SAVED: "shutoff",
}


class FakeHypervisorView:
    """The fake hypervisor's own dicts."""

    uri = "fake:///"

    def __init__(self, driver: FakeHypervisorDriver) -> None:
        self.driver = driver

    def close(self) -> None:
        pass

    def domain(self, name: str) -> SeenDomain | None:
        dom = self.driver.domains.get(name)
        if dom is None:
            return None
        return SeenDomain(
            state=_FAKE_STATES[dom.state],
            managed_save=dom.state is VmState.SAVED,
            autostart=dom.autostart,
            snapshots=len(dom.snapshots),
            memory_mib=dom.max_memory_mib,
            vcpus=dom.vcpus,
            disks=tuple(d["target"] for d in dom.disks),
            macs=tuple(i["mac"] for i in dom.interfaces),
        )

    def volume_bytes(self, pool: str, name: str) -> bytes | None:
        found = self.driver.pools.get(pool)
        vol = found.volumes.get(name) if found is not None else None
        return None if vol is None else vol.data

    def domain_names(self) -> list[str]:
        return list(self.driver.domains)

    def network(self, name: str) -> SeenNetwork | None:
        net = self.driver.networks.get(name)
        return None if net is None else SeenNetwork(net.active, net.persistent)


class LibvirtView:
    """The hypervisor through its own libvirt connection."""

    def __init__(self, uri: str) -> None:
        import libvirt

        self.uri = uri
        self.libvirt = libvirt
        self.conn = libvirt.open(uri)

    def close(self) -> None:
        self.conn.close()

    def _lookup(self, find: Callable[[str], Any], name: str, missing: int) -> Any:
        """``find(name)``, or ``None`` where libvirt says it has no such object (``missing``)."""
        try:
            return find(name)
        except self.libvirt.libvirtError as err:
            if err.get_error_code() == missing:
                return None
            raise

    def domain(self, name: str) -> SeenDomain | None:
        lv = self.libvirt
        dom = self._lookup(self.conn.lookupByName, name, lv.VIR_ERR_NO_DOMAIN)
        if dom is None:
            return None
        states = {
            lv.VIR_DOMAIN_RUNNING: "running",
            lv.VIR_DOMAIN_PAUSED: "paused",
            lv.VIR_DOMAIN_SHUTOFF: "shutoff",
        }
        code = dom.state()[0]
        xml = ET.fromstring(dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE))
        vcpu = xml.find("vcpu")
        return SeenDomain(
            state=states.get(code, f"libvirt state {code}"),
            managed_save=bool(dom.hasManagedSaveImage(0)),
            autostart=bool(dom.autostart()),
            snapshots=dom.snapshotNum(0),
            memory_mib=int(xml.findtext("memory") or 0) // 1024,
            vcpus=int(vcpu.get("current", vcpu.text or 0)) if vcpu is not None else 0,
            disks=tuple(t.get("dev", "") for t in xml.iterfind("devices/disk/target")),
            macs=tuple(m.get("address", "") for m in xml.iterfind("devices/interface/mac")),
        )

    def volume_bytes(self, pool: str, name: str) -> bytes | None:
        lv = self.libvirt
        found = self._lookup(self.conn.storagePoolLookupByName, pool, lv.VIR_ERR_NO_STORAGE_POOL)
        if found is None:
            return None
        vol = self._lookup(found.storageVolLookupByName, name, lv.VIR_ERR_NO_STORAGE_VOL)
        return None if vol is None else Path(vol.path()).read_bytes()

    def domain_names(self) -> list[str]:
        return [d.name() for d in self.conn.listAllDomains(0)]

    def network(self, name: str) -> SeenNetwork | None:
        net = self._lookup(self.conn.networkLookupByName, name, self.libvirt.VIR_ERR_NO_NETWORK)
        if net is None:
            return None
        return SeenNetwork(active=net.isActive() == 1, persistent=net.isPersistent() == 1)


def hypervisor_observer(driver: HypervisorDriver, uri: str) -> HypervisorBackend:
    """The fake's own store for the fake driver, else a raw connection to libvirt on ``uri``."""
    if isinstance(driver, FakeHypervisorDriver):
        return FakeHypervisorView(driver)
    return LibvirtView(uri)


def remove_console_log(domain: str) -> None:
    """The serial console log nube's driver gives a domain (it goes with the VM; a cleanup
    that undefines a domain behind the driver's back removes it too)."""
    # workers.drivers.libvirt.provision.console_log_path (not imported: it needs libvirt-python)
    with contextlib.suppress(OSError):
        os.remove(f"/var/log/libvirt/qemu/{domain}-console.log")


def clean_libvirt(uri: str, prefix: str) -> None:
    """Destroy and undefine every domain, network and pool (with volumes) named ``prefix...``
    (a domain's name as its tenant gave it: behind any tenant's prefix, ``n<tag>-prefix...``)."""
    import libvirt

    def quiet(fn: Callable[[], object]) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            fn()

    def listed(fn: Callable[[int], list[Any]]) -> list[Any]:
        try:
            return fn(0)
        except libvirt.libvirtError:
            return []

    flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    )
    conn = libvirt.open(uri)
    try:
        scoped = re.compile(rf"^(?:n[0-9a-f]{{8}}-)?{re.escape(prefix)}")
        for dom in conn.listAllDomains(0):
            if scoped.match(dom.name()):
                quiet(dom.destroy)
                for snap in listed(dom.listAllSnapshots):
                    meta_only = libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY
                    quiet(functools.partial(snap.delete, meta_only))
                quiet(functools.partial(dom.undefineFlags, flags))
                remove_console_log(dom.name())
        for net in conn.listAllNetworks(0):
            if net.name().startswith(prefix):
                quiet(net.destroy)
                quiet(net.undefine)
        for pool in conn.listAllStoragePools(0):
            if pool.name().startswith(prefix):
                quiet(pool.create)
                for vol in listed(pool.listAllVolumes):
                    quiet(functools.partial(vol.delete, 0))
                quiet(pool.destroy)
                quiet(functools.partial(pool.delete, 0))
                quiet(pool.undefine)
    finally:
        conn.close()
