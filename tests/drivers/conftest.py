"""The driver contract suite's fixtures: every test runs on the fake and on the real driver.

``container_driver`` is :class:`FakeContainerDriver` or :class:`DockerDriver` (the engine, with
``busybox:latest``); ``hypervisor`` is :class:`FakeHypervisorDriver` or :class:`LibvirtDriver` on
``qemu:///system`` with its pools under a private directory in ``/tmp``. The real ones skip
locally without their backend and fail on CI (``need``). A test speaks only through the driver
interface; what the real backends made is removed afterwards (by tenant label, by name prefix).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import docker_available, libvirt_available, need
from workers.drivers import ContainerDriver, HypervisorDriver, JobContext
from workers.drivers.fake import FakeContainerDriver, FakeHypervisorDriver

RUN = uuid.uuid4().hex[:8]
TENANT_A = f"ct-{RUN}-a"
TENANT_B = f"ct-{RUN}-b"
IMAGE = "busybox:latest"
QEMU = "qemu:///system"
VM_PREFIX = "nubetest-"
"""What the VM tests name things, so :func:`tests.vms.conftest.clean` finds leftovers too."""


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


@pytest.fixture(
    params=["fake", pytest.param("docker", marks=pytest.mark.docker)],
)
def container_driver(request: pytest.FixtureRequest) -> Iterator[ContainerDriver]:
    """The driver under test; on the engine, every tenant's resource is removed afterwards."""
    if request.param == "fake":
        yield FakeContainerDriver(images=[IMAGE])
        return
    need(docker_available() and _has_image(IMAGE), f"the Docker engine with {IMAGE}")
    from workers.drivers.docker import DockerDriver

    driver = DockerDriver()
    try:
        yield driver
    finally:
        driver.close()
        _remove_docker_resources((TENANT_A, TENANT_B))


@pytest.fixture
def push_registry(container_driver: ContainerDriver, request: pytest.FixtureRequest) -> str:
    """A registry to push to: the fake keeps its own, the engine gets a real one."""
    if isinstance(container_driver, FakeContainerDriver):
        return "registry.fake:5000"
    return str(request.getfixturevalue("registry"))


def _has_image(reference: str) -> bool:
    import docker

    try:
        client = docker.from_env(timeout=30)
        with contextlib.closing(client):
            client.images.get(reference)
    except docker.errors.DockerException:
        return False
    return True


def _remove_docker_resources(tenants: tuple[str, ...]) -> None:
    """Every container, network, volume and image labelled with one of ``tenants``."""
    import docker

    client = docker.from_env(timeout=60)
    with contextlib.closing(client):
        for tenant in tenants:
            labels = {"label": [f"nube.tenant={tenant}"]}
            for container in client.containers.list(all=True, filters=labels):
                _quietly(container.remove, force=True, v=True)
            for network in client.networks.list(filters=labels):
                _quietly(network.remove)
            for volume in client.volumes.list(filters=labels):
                _quietly(volume.remove, force=True)
            for image in client.images.list(filters=labels):
                _quietly(client.images.remove, image.id, force=True)


def _quietly(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    import docker

    with contextlib.suppress(docker.errors.APIError):
        call(*args, **kwargs)


# --- VMs -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pool_root() -> Iterator[Path]:
    """A private directory under /tmp for the pools (readable by QEMU's user)."""
    root = Path(tempfile.mkdtemp(prefix="nube-pools-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["fake", pytest.param("libvirt", marks=pytest.mark.libvirt)])
def hypervisor(request: pytest.FixtureRequest, pool_root: Path) -> Iterator[HypervisorDriver]:
    """The driver under test. The fake's guest has no OS (it ignores ACPI), as on QEMU."""
    if request.param == "fake":
        yield FakeHypervisorDriver(node="node-1", pool_root=str(pool_root), guest_powers_off=False)
        return
    need(libvirt_available(), f"libvirtd ({QEMU})")
    from tests.vms.conftest import clean
    from workers.drivers.libvirt import LibvirtDriver

    driver = LibvirtDriver(QEMU, node="node-1", pool_root=str(pool_root), backoff=0.05)
    try:
        yield driver
    finally:
        driver.close()
        clean(QEMU, prefix=f"{VM_PREFIX}{RUN}-")
