"""Fixtures for what only a real hypervisor shows, shared with the contract suite.

``ctx``, ``make_ctx``, ``name`` and ``pool_root`` are :mod:`tests.drivers.conftest`'s; ``qemu``
is its libvirt driver on ``qemu:///system`` (skips locally without libvirtd, fails on CI), and
``driver`` is that one or a driver on ``test:///default`` (libvirt's in-process mock, always
there). What a test makes is named by ``name`` and removed by prefix afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from nube.catalog import NoParams
from tests.drivers.conftest import QEMU, libvirt_driver
from tests.drivers.conftest import ctx as ctx
from tests.drivers.conftest import make_ctx as make_ctx
from tests.drivers.conftest import name as name
from tests.drivers.conftest import pool_root as pool_root
from workers.drivers import JobContext
from workers.drivers.libvirt import LibvirtDriver

MOCK = "test:///default"

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def qemu_reachable() -> bool:
    try:
        libvirt.open(QEMU).close()
        return True
    except libvirt.libvirtError:
        return False


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
        ctx = JobContext(job_id="job-header", tenant="tenant-a", operation="vms.test")
        info = driver.hypervisor_info(NoParams(), ctx)
    finally:
        driver.close()
    why = "/dev/kvm usable" if info["domain_type"] == "kvm" else "no usable /dev/kvm"
    return [
        f"vms: {QEMU} runs domain type '{info['domain_type']}' ({why}), "
        f"QEMU {info['hypervisor_version']}, libvirt {info['libvirt_version']}"
    ]


@pytest.fixture
def qemu(pool_root: Path) -> Iterator[LibvirtDriver]:
    """A driver on qemu:///system only."""
    with libvirt_driver(pool_root) as drv:
        yield drv


@pytest.fixture
def mock(pool_root: Path) -> Iterator[LibvirtDriver]:
    """A driver on libvirt's in-process mock hypervisor (no DHCP server, no QEMU)."""
    with libvirt_driver(pool_root, MOCK) as drv:
        yield drv


@pytest.fixture(params=["test", "qemu"])
def driver(request: pytest.FixtureRequest) -> LibvirtDriver:
    """The mock's driver, then qemu:///system's."""
    drv: LibvirtDriver = request.getfixturevalue("mock" if request.param == "test" else "qemu")
    return drv
