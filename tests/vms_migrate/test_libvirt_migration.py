"""Migration between two real libvirtds: the system's (node ``mig-n1``) and a second one in its
own namespaces (``mig-n2``, :mod:`nube.tools.libvirt_host`), observed with libvirt directly."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import libvirt
import pytest

from nube.catalog import vm_models as m
from nube.errors import BackendFailed, BackendUnavailable, Conflict, InvalidRequest, NotFound
from nube.tools.libvirt_host import LibvirtHost
from tests.drivers.conftest import QEMU
from tests.vms_migrate.conftest import N1, N2
from workers.drivers import JobContext
from workers.drivers.libvirt import LibvirtDriver
from workers.drivers.libvirt.guests import owner_of
from workers.drivers.names import backend_name

pytestmark = pytest.mark.libvirt

Drivers = tuple[LibvirtDriver, ...]


@contextlib.contextmanager
def opened(uri: str) -> Iterator[libvirt.virConnect]:
    conn = libvirt.open(uri)
    try:
        yield conn
    finally:
        conn.close()


def domain(uri: str, backend: str) -> tuple[int, bool, str] | None:
    """``(state, persistent, node in nube's metadata)`` of the domain on ``uri``, or ``None``."""
    with opened(uri) as conn:
        try:
            dom = conn.lookupByName(backend)
        except libvirt.libvirtError:
            return None
        owner = owner_of(dom)
        return dom.state()[0], bool(dom.isPersistent()), owner.node if owner else ""


def test_offline_migration_moves_the_definition_there_and_back(
    drivers: Drivers,
    second_host: LibvirtHost,
    shared_pool: str,
    pool_root: Path,
    name: Callable[[str], str],
    make_ctx: Callable[..., JobContext],
) -> None:
    one, two = drivers
    vm, ctx = name("off"), make_ctx()
    disk = m.VmDisk(pool=shared_pool, capacity_mib=1)
    made = one.define_domain(m.VmDefine(name=vm, disks=[disk]), ctx)
    backend = backend_name(ctx.tenant, vm)
    assert domain(QEMU, backend) == (libvirt.VIR_DOMAIN_SHUTOFF, True, N1)

    moved = one.migrate_domain(m.VmMigrate(name=vm, node=N2, live=False), make_ctx())
    assert (moved["name"], moved["node"], moved["state"]) == (vm, N2, "defined")
    assert moved["uuid"] == made["uuid"] and moved["disks"] == made["disks"]
    assert domain(QEMU, backend) is None
    assert domain(second_host.uri, backend) == (libvirt.VIR_DOMAIN_SHUTOFF, True, N2)
    assert "migrate" in moved["allowed_actions"]

    back = two.migrate_domain(m.VmMigrate(name=vm, node=N1), make_ctx())
    assert (back["node"], back["state"]) == (N1, "defined")
    assert domain(second_host.uri, backend) is None
    assert domain(QEMU, backend) == (libvirt.VIR_DOMAIN_SHUTOFF, True, N1)
    volume = pool_root / shared_pool / made["disks"][0]["volume"]
    assert volume.exists()
    one.undefine_domain(m.VmUndefine(name=vm, remove_storage=True), make_ctx())
    assert domain(QEMU, backend) is None and not volume.exists()


def test_live_migration_keeps_the_vm_running_on_the_destination(
    drivers: Drivers,
    second_host: LibvirtHost,
    shared_pool: str,
    name: Callable[[str], str],
    make_ctx: Callable[..., JobContext],
) -> None:
    one, two = drivers
    vm, ctx = name("live"), make_ctx()
    disk = m.VmDisk(pool=shared_pool, capacity_mib=1)
    made = one.define_domain(m.VmDefine(name=vm, disks=[disk], start=True), ctx)
    assert made["state"] == "running"
    backend = backend_name(ctx.tenant, vm)

    moved = one.migrate_domain(m.VmMigrate(name=vm, node=N2, live=True), make_ctx())
    assert (moved["node"], moved["state"], moved["uuid"]) == (N2, "running", made["uuid"])
    assert domain(QEMU, backend) is None
    assert domain(second_host.uri, backend) == (libvirt.VIR_DOMAIN_RUNNING, True, N2)
    with opened(second_host.uri) as conn:  # its QEMU runs inside the second host's namespace
        assert conn.lookupByName(backend).info()[4] > 0  # CPU time: the guest runs there

    # paused there, it comes back paused, copied while paused (not live)
    two.suspend_domain(m.VmRef(name=vm), make_ctx())
    back = two.migrate_domain(m.VmMigrate(name=vm, node=N1, live=False), make_ctx())
    assert (back["node"], back["state"]) == (N1, "paused")
    assert domain(second_host.uri, backend) is None
    assert domain(QEMU, backend) == (libvirt.VIR_DOMAIN_PAUSED, True, N1)

    one.destroy_domain(m.VmRef(name=vm), make_ctx())
    one.undefine_domain(m.VmUndefine(name=vm, remove_storage=True), make_ctx())
    assert domain(QEMU, backend) is None


def test_refusals_leave_the_vm_where_it_was(
    drivers: Drivers,
    second_host: LibvirtHost,
    name: Callable[[str], str],
    make_ctx: Callable[..., JobContext],
) -> None:
    one, _ = drivers
    vm, ctx = name("stay"), make_ctx()
    other_pool = name("local")
    one.define_pool(m.PoolDefine(name=other_pool), ctx)  # on n1 only: not shared
    disk = m.VmDisk(pool=other_pool, capacity_mib=1)
    one.define_domain(m.VmDefine(name=vm, disks=[disk]), ctx)
    backend = backend_name(ctx.tenant, vm)

    with pytest.raises(InvalidRequest, match="not a migration destination"):
        one.migrate_domain(m.VmMigrate(name=vm, node="mig-n9"), make_ctx())
    with pytest.raises(Conflict, match="already lives on node"):
        one.migrate_domain(m.VmMigrate(name=vm, node=N1), make_ctx())
    with pytest.raises(Conflict, match="has no volume") as refused:
        one.migrate_domain(m.VmMigrate(name=vm, node=N2), make_ctx())
    assert "n" + ctx.tenant not in str(refused.value)  # the user's names only
    with pytest.raises(NotFound):  # another tenant's VM is none
        one.migrate_domain(m.VmMigrate(name=vm, node=N2), make_ctx(tenant="someone-else"))
    assert domain(QEMU, backend) == (libvirt.VIR_DOMAIN_SHUTOFF, True, N1)
    assert domain(second_host.uri, backend) is None


def test_an_unreachable_peer_is_backend_unavailable(
    second_host: LibvirtHost, pool_root: object, ctx: JobContext
) -> None:
    driver = LibvirtDriver(QEMU, node=N1, peers={N2: "qemu+tcp://10.219.0.254:1/system"})
    try:
        with pytest.raises(BackendUnavailable):
            driver.migrate_domain(m.VmMigrate(name="whatever", node=N2), ctx)
    finally:
        driver.close()


def test_a_destination_qemu_cannot_reach_fails_at_once_and_the_vm_stays(
    drivers: Drivers,
    second_host: LibvirtHost,
    pool_root: Path,
    name: Callable[[str], str],
    make_ctx: Callable[..., JobContext],
) -> None:
    """Without a migration address the system's QEMU is reached at its hostname, which from
    the second host's namespace is nobody: the migration's own failure, not a lost
    connection, and the VM keeps running where it was."""
    two = LibvirtDriver(second_host.uri, node=N2, pool_root=str(pool_root), peers={N1: QEMU})
    try:
        vm, ctx = name("stuck"), make_ctx()
        two.define_domain(m.VmDefine(name=vm, start=True), ctx)
        with pytest.raises(BackendFailed, match="migration failed"):
            two.migrate_domain(m.VmMigrate(name=vm, node=N1), make_ctx())
        backend = backend_name(ctx.tenant, vm)
        assert domain(second_host.uri, backend) == (libvirt.VIR_DOMAIN_RUNNING, True, N2)
        assert domain(QEMU, backend) is None
    finally:
        two.close()
