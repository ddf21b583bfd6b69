"""Fixtures for the VM driver tests: a LibvirtDriver per URI, job contexts, pools, cleanup.

``test:///default`` is always there (libvirt's in-process mock). ``qemu:///system`` needs a
running libvirtd with QEMU: without it these tests skip locally and fail when ``CI`` is set.
Everything a test makes is named ``nubetest-...`` and removed by prefix after each test.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from nube.catalog import NoParams
from workers.drivers import JobContext
from workers.drivers.libvirt import LibvirtDriver

QEMU = "qemu:///system"
MOCK = "test:///default"
PREFIX = "nubetest-"
CI = bool(os.environ.get("CI"))
POOL_ROOT = Path("/var/lib/nube-test")

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def qemu_reachable() -> bool:
    try:
        libvirt.open(QEMU).close()
        return True
    except libvirt.libvirtError:
        return False


def need_qemu() -> None:
    """Skip without libvirtd locally; on CI its absence is a failure."""
    if qemu_reachable():
        return
    if CI:
        pytest.fail(f"libvirtd ({QEMU}) is required on CI but is not reachable")
    pytest.skip(f"libvirtd ({QEMU}) is not reachable")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which hypervisor the VM tests use (kvm, or qemu emulation without /dev/kvm)."""
    return _hypervisor_lines()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The same line at the end (the header misses it when this conftest loads late)."""
    for line in _hypervisor_lines():
        terminalreporter.write_line(line)


def _hypervisor_lines() -> list[str]:
    if not qemu_reachable():
        return [f"vms: {QEMU} unreachable; only {MOCK} runs"]
    driver = LibvirtDriver(QEMU, node="test")
    try:
        info = driver.hypervisor_info(NoParams(), make_ctx())
    finally:
        driver.close()
    why = "/dev/kvm usable" if info["domain_type"] == "kvm" else "no usable /dev/kvm"
    return [
        f"vms: {QEMU} runs domain type '{info['domain_type']}' ({why}), "
        f"QEMU {info['hypervisor_version']}, libvirt {info['libvirt_version']}"
    ]


def make_ctx(
    tenant: str = "tenant-a", job_id: str | None = None, admin: bool = False
) -> JobContext:
    return JobContext(
        job_id=job_id or f"job-{uuid.uuid4()}", tenant=tenant, operation="vms.test", admin=admin
    )


def unique(kind: str) -> str:
    return f"{PREFIX}{kind}-{uuid.uuid4().hex[:6]}"


# --- cleanup by prefix ---------------------------------------------------------------------------


def _quiet(fn: Callable[[], object]) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        fn()


def clean(uri: str, prefix: str = PREFIX) -> None:
    """Destroy and undefine every domain, network and pool (with volumes) named ``prefix...``."""
    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains(0):
            if dom.name().startswith(prefix):
                _clean_domain(dom)
        for net in conn.listAllNetworks(0):
            if net.name().startswith(prefix):
                _quiet(net.destroy)
                _quiet(net.undefine)
        for pool in conn.listAllStoragePools(0):
            if pool.name().startswith(prefix):
                _clean_pool(pool)
    finally:
        conn.close()


def _clean_domain(dom: libvirt.virDomain) -> None:
    _quiet(dom.destroy)
    for snap in _listed(dom.listAllSnapshots):
        _quiet(functools.partial(snap.delete, libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY))
    flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    )
    _quiet(lambda: dom.undefineFlags(flags))


def _clean_pool(pool: libvirt.virStoragePool) -> None:
    _quiet(pool.create)
    for vol in _listed(pool.listAllVolumes):
        _quiet(functools.partial(vol.delete, 0))
    _quiet(pool.destroy)
    _quiet(lambda: pool.delete(0))
    _quiet(pool.undefine)


def _listed(fn: Callable[[int], list[Any]]) -> list[Any]:
    try:
        return fn(0)
    except libvirt.libvirtError:
        return []


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pool_root() -> Iterator[Path]:
    """A private directory for the tests' storage pools (under /var/lib/nube-test)."""
    root = POOL_ROOT / uuid.uuid4().hex[:8]
    root.mkdir(parents=True, exist_ok=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)
    with contextlib.suppress(OSError):
        POOL_ROOT.rmdir()


@pytest.fixture(params=[MOCK, QEMU], ids=["test", "qemu"])
def uri(request: pytest.FixtureRequest) -> str:
    if request.param == QEMU:
        need_qemu()
    return str(request.param)


@pytest.fixture
def driver(uri: str, pool_root: Path) -> Iterator[LibvirtDriver]:
    """A driver on ``uri``; everything named ``nubetest-`` is removed afterwards."""
    drv = LibvirtDriver(uri, node="node-1", pool_root=str(pool_root), backoff=0.05)
    yield drv
    drv.close()
    clean(uri)


@pytest.fixture
def qemu(pool_root: Path) -> Iterator[LibvirtDriver]:
    """A driver on qemu:///system only."""
    need_qemu()
    drv = LibvirtDriver(QEMU, node="node-1", pool_root=str(pool_root), backoff=0.05)
    yield drv
    drv.close()
    clean(QEMU)


@pytest.fixture
def raw(uri: str) -> Iterator[libvirt.virConnect]:
    """libvirt-python directly, to confirm what the driver did."""
    conn = libvirt.open(uri)
    yield conn
    conn.close()


@pytest.fixture
def ctx() -> JobContext:
    return make_ctx()
