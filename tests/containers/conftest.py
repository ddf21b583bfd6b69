"""Fixtures for the container driver tests: a real Docker engine, a local registry, cleanup.

Without a reachable engine the tests skip locally and FAIL when ``CI`` is set (a suite that
silently passes without its backend proves nothing). Everything a test makes carries the
``nube.tenant`` label of a tenant unique to this run; teardown removes by that label.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from workers.drivers import JobContext
from workers.drivers.docker import DockerDriver

RUN = uuid.uuid4().hex[:8]
TENANT_A = f"nt-{RUN}-a"
TENANT_B = f"nt-{RUN}-b"
IMAGE = "busybox:latest"


def _engine() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
        client.images.get(IMAGE)
    except Exception:
        return None
    return client


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    """The raw Docker SDK client, used by tests to confirm what the driver did."""
    client = _engine()
    if client is None:
        message = f"Docker engine with {IMAGE} is not available"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield client
    for tenant in (TENANT_A, TENANT_B):
        cleanup(client, tenant)
    client.close()


@pytest.fixture(scope="session")
def driver(engine: docker.DockerClient) -> Iterator[DockerDriver]:
    """The driver under test."""
    drv = DockerDriver()
    yield drv
    drv.close()


class Progress:
    """Records what a driver reports on the job."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []

    def __call__(self, progress: dict[str, Any]) -> None:
        self.reports.append(progress)


MakeCtx = Callable[..., JobContext]


@pytest.fixture
def make_ctx(engine: docker.DockerClient) -> Iterator[MakeCtx]:
    """``make_ctx(tenant=TENANT_A, job_id=None, admin=False)``: a fresh job context each call.

    Everything the test's tenants made is removed when the test ends.
    """

    def make(
        tenant: str = TENANT_A,
        job_id: str | None = None,
        admin: bool = False,
        progress: Progress | None = None,
    ) -> JobContext:
        return JobContext(
            job_id=job_id or uuid.uuid4().hex,
            tenant=tenant,
            operation="containers.test",
            admin=admin,
            report_progress=progress or Progress(),
        )

    yield make
    for tenant in (TENANT_A, TENANT_B):
        cleanup(engine, tenant)


@pytest.fixture
def ctx(make_ctx: MakeCtx) -> JobContext:
    """A job of tenant A."""
    return make_ctx()


@pytest.fixture
def name() -> Callable[[str], str]:
    """Unique resource names for this run: ``name("web")`` → ``nt-<run>-web-<n>``."""
    return lambda base: f"nt-{RUN}-{base}-{uuid.uuid4().hex[:6]}"


def cleanup(client: docker.DockerClient, tenant: str) -> None:
    """Remove every container, network, volume and image labelled with the tenant."""
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
    with contextlib.suppress(docker.errors.APIError):
        call(*args, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
