"""The driver contract suite's fixtures: every test runs on the fake and on the real driver.

``container_driver`` is :class:`FakeContainerDriver` or :class:`DockerDriver` (the engine, with
``busybox:latest``); ``hypervisor`` is :class:`FakeHypervisorDriver` or :class:`LibvirtDriver` on
``qemu:///system`` with its pools under a private directory in ``/tmp``. The real ones skip
locally without their backend and fail on CI (``need``). A test drives the steps through the
driver interface and checks the backend's own view through the observer of the same parameter
(``engine`` for containers, ``host`` for VMs: :mod:`tests.drivers.backends`). What the real
backends made is removed afterwards (by tenant label, by name prefix).

``tests/containers`` and ``tests/vms`` (what only a real backend shows) use these fixtures too:
``make_ctx``, ``ctx``, ``name``, ``pool_root`` and the real drivers of :func:`docker_driver` and
:func:`libvirt_driver`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import docker_available, libvirt_available, need
from workers.drivers import ContainerDriver, HypervisorDriver, JobContext
from workers.drivers.fake import FakeContainerDriver, FakeHypervisorDriver

from .backends import (
    ContainerBackend,
    HypervisorBackend,
    clean_libvirt,
    container_observer,
    has_image,
    hypervisor_observer,
    remove_docker_resources,
)

if TYPE_CHECKING:
    from workers.drivers.docker import DockerDriver
    from workers.drivers.libvirt import LibvirtDriver

RUN = uuid.uuid4().hex[:8]
TENANT_A = f"ct-{RUN}-a"
TENANT_B = f"ct-{RUN}-b"
IMAGE = "busybox:latest"
QEMU = "qemu:///system"
VM_PREFIX = "nubetest-"
"""What the tests name things (``name``); this run's leftovers are removed by prefix."""


class Progress:
    """Records what a driver reports on the job."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []

    def __call__(self, progress: dict[str, Any]) -> None:
        self.reports.append(progress)


MakeCtx = Callable[..., JobContext]
Name = Callable[[str], str]


@pytest.fixture
def make_ctx() -> MakeCtx:
    """``make_ctx(tenant=TENANT_A, job_id=None, admin=False, progress=None)``: a new job."""

    def make(
        tenant: str = TENANT_A,
        job_id: str | None = None,
        admin: bool = False,
        progress: Progress | None = None,
    ) -> JobContext:
        return JobContext(
            job_id=job_id or f"job-{uuid.uuid4().hex}",
            tenant=tenant,
            operation="contract.test",
            admin=admin,
            report_progress=progress or Progress(),
        )

    return make


@pytest.fixture
def ctx(make_ctx: MakeCtx) -> JobContext:
    """A job of tenant A."""
    return make_ctx()


@pytest.fixture
def name() -> Name:
    """Unique names for this run: ``name("web")`` → ``nubetest-<run>-web-<hex>``."""
    return lambda base: f"{VM_PREFIX}{RUN}-{base}-{uuid.uuid4().hex[:6]}"


# --- containers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def docker_driver() -> Iterator[DockerDriver]:
    """The Docker driver; every resource of tenants A and B is removed afterwards."""
    need(docker_available() and has_image(IMAGE), f"the Docker engine with {IMAGE}")
    from workers.drivers.docker import DockerDriver

    driver = DockerDriver()
    try:
        yield driver
    finally:
        driver.close()
        remove_docker_resources((TENANT_A, TENANT_B))


@pytest.fixture(
    params=["fake", pytest.param("docker", marks=pytest.mark.docker)],
)
def container_driver(request: pytest.FixtureRequest) -> Iterator[ContainerDriver]:
    """The driver under test; on the engine, every tenant's resource is removed afterwards."""
    if request.param == "fake":
        yield FakeContainerDriver(images=[IMAGE])
        return
    with docker_driver() as driver:
        yield driver


@pytest.fixture
def engine(container_driver: ContainerDriver) -> Iterator[ContainerBackend]:
    """The observer of ``container_driver``'s engine: the fake's store, or the Docker SDK."""
    with contextlib.closing(container_observer(container_driver)) as view:
        yield view


@pytest.fixture
def push_registry(container_driver: ContainerDriver, request: pytest.FixtureRequest) -> str:
    """A registry to push to: the fake keeps its own, the engine gets a real one."""
    if isinstance(container_driver, FakeContainerDriver):
        return "registry.fake:5000"
    return str(request.getfixturevalue("registry"))


# --- VMs -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pool_root() -> Iterator[Path]:
    """A private directory under /tmp for the pools (readable by QEMU's user)."""
    root = Path(tempfile.mkdtemp(prefix="nube-pools-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def libvirt_driver(pool_root: Path, uri: str = QEMU) -> Iterator[LibvirtDriver]:
    """The libvirt driver on ``uri`` (qemu:///system needs libvirtd); what this run named is
    removed afterwards."""
    if uri == QEMU:
        need(libvirt_available(), f"libvirtd ({QEMU})")
    from workers.drivers.libvirt import LibvirtDriver

    driver = LibvirtDriver(uri, node="node-1", pool_root=str(pool_root), backoff=0.05)
    try:
        yield driver
    finally:
        driver.close()
        clean_libvirt(uri, prefix=f"{VM_PREFIX}{RUN}-")


@pytest.fixture(params=["fake", pytest.param("libvirt", marks=pytest.mark.libvirt)])
def hypervisor(request: pytest.FixtureRequest, pool_root: Path) -> Iterator[HypervisorDriver]:
    """The driver under test. The fake's guest has no OS (it ignores ACPI), as on QEMU."""
    if request.param == "fake":
        yield FakeHypervisorDriver(node="node-1", pool_root=str(pool_root), guest_powers_off=False)
        return
    with libvirt_driver(pool_root) as driver:
        yield driver


@pytest.fixture
def host(hypervisor: HypervisorDriver) -> Iterator[HypervisorBackend]:
    """The observer of ``hypervisor``'s host: the fake's store, or a raw libvirt connection."""
    with contextlib.closing(hypervisor_observer(hypervisor, QEMU)) as view:
        yield view
