"""The fake hypervisor's migration (for tests and workers without libvirt): the same answers,
errors and state-table checks as the libvirt driver's, between two fakes of one process."""

from __future__ import annotations

import uuid

import pytest

from nube.catalog import vm_models as m
from nube.errors import BackendUnavailable, Conflict, InvalidRequest, NotFound
from workers.drivers import JobContext
from workers.drivers.fake import FakeHypervisorDriver
from workers.drivers.names import backend_name


def job(tenant: str = "tenant-a", attempt: int = 1) -> JobContext:
    return JobContext(
        job_id=f"job-{uuid.uuid4().hex}", tenant=tenant, operation="vms.migrate", attempt=attempt
    )


@pytest.fixture
def nodes() -> tuple[FakeHypervisorDriver, FakeHypervisorDriver]:
    one = FakeHypervisorDriver(node="fake-n1", peers={"fake-n2": "fake:///n2"})
    two = FakeHypervisorDriver(node="fake-n2", peers={"fake-n1": "fake:///n1"})
    for driver in (one, two):
        driver.define_pool(m.PoolDefine(name="shared"), job())
    return one, two


def test_a_vm_moves_with_its_state_and_back(
    nodes: tuple[FakeHypervisorDriver, FakeHypervisorDriver],
) -> None:
    one, two = nodes
    disk = m.VmDisk(pool="shared", capacity_mib=1)
    made = one.define_domain(m.VmDefine(name="web", disks=[disk], start=True), job())
    moved = one.migrate_domain(m.VmMigrate(name="web", node="fake-n2"), job())
    assert (moved["node"], moved["state"], moved["uuid"]) == ("fake-n2", "running", made["uuid"])
    assert backend_name("tenant-a", "web") not in one.domains
    assert two.domain_info(m.VmInfo(name="web"), job())["node"] == "fake-n2"
    with pytest.raises(NotFound):
        one.domain_info(m.VmInfo(name="web"), job())
    two.destroy_domain(m.VmRef(name="web"), job())
    back = two.migrate_domain(m.VmMigrate(name="web", node="fake-n1", live=False), job())
    assert (back["node"], back["state"]) == ("fake-n1", "defined")


def test_a_redelivered_migration_finds_the_vm_it_moved(
    nodes: tuple[FakeHypervisorDriver, FakeHypervisorDriver],
) -> None:
    one, _ = nodes
    one.define_domain(m.VmDefine(name="web"), job())
    one.migrate_domain(m.VmMigrate(name="web", node="fake-n2"), job())
    again = one.migrate_domain(m.VmMigrate(name="web", node="fake-n2"), job(attempt=2))
    assert again["node"] == "fake-n2"
    with pytest.raises(NotFound):  # a first attempt that finds no VM: none
        one.migrate_domain(m.VmMigrate(name="web", node="fake-n2"), job())


def test_refusals(nodes: tuple[FakeHypervisorDriver, FakeHypervisorDriver]) -> None:
    one, two = nodes
    one.define_pool(m.PoolDefine(name="local"), job())
    one.define_domain(m.VmDefine(name="web"), job())
    with pytest.raises(InvalidRequest, match="not a migration destination"):
        one.migrate_domain(m.VmMigrate(name="web", node="fake-n9"), job())
    with pytest.raises(Conflict, match="already lives"):
        one.migrate_domain(m.VmMigrate(name="web", node="fake-n1"), job())
    with pytest.raises(NotFound):
        one.migrate_domain(m.VmMigrate(name="web", node="fake-n2"), job(tenant="tenant-b"))
    one.start_domain(m.VmRef(name="web"), job())
    one.save_domain(m.VmRef(name="web"), job())
    with pytest.raises(Conflict) as saved:
        one.migrate_domain(m.VmMigrate(name="web", node="fake-n2"), job())
    assert "migrate" not in saved.value.details["allowed_actions"]
    disk = m.VmDisk(pool="local", capacity_mib=1)
    one.define_domain(m.VmDefine(name="db", disks=[disk]), job())
    with pytest.raises(Conflict, match="has no volume 'local/"):
        one.migrate_domain(m.VmMigrate(name="db", node="fake-n2"), job())
    two.define_domain(m.VmDefine(name="db"), job())
    one.undefine_domain(m.VmUndefine(name="db"), job())
    one.define_domain(m.VmDefine(name="db"), job())
    with pytest.raises(Conflict, match="already in use"):
        one.migrate_domain(m.VmMigrate(name="db", node="fake-n2"), job())
    assert backend_name("tenant-a", "db") in one.domains


def test_a_peer_without_a_hypervisor_is_unavailable() -> None:
    lonely = FakeHypervisorDriver(node="fake-lonely", peers={"fake-gone": "fake:///gone"})
    lonely.define_domain(m.VmDefine(name="web"), job())
    with pytest.raises(BackendUnavailable):
        lonely.migrate_domain(m.VmMigrate(name="web", node="fake-gone"), job())
