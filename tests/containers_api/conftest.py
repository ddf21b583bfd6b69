"""Fixtures for the container service end to end: through the API, the broker, the agent and
the container worker of the shared ``stack``, confirmed on the real Docker engine.

Every test's tenants are fresh (``make_client``); at teardown their containers, networks,
volumes and images (built, committed, pulled) are removed by the ``nube.tenant`` label.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from nube.tools.client import NubeClient
from tests.conftest import ClientFactory, docker_available, need, remove_docker_resources

IMAGE = "busybox:latest"
RUN = uuid.uuid4().hex[:6]


@pytest.fixture(scope="session")
def engine_ready() -> None:
    need(docker_available(), "the Docker engine")
    need(docker("image", "inspect", IMAGE).returncode == 0, f"the {IMAGE} image")


@pytest.fixture
def make_client(make_client: ClientFactory, engine_ready: None) -> Iterator[ClientFactory]:
    """The shared factory, plus removal of the tenants' images at teardown."""
    tenants: list[str] = []

    def factory(*args: Any, **kwargs: Any) -> NubeClient:
        client = make_client(*args, **kwargs)
        tenants.append(client.tenant)  # type: ignore[attr-defined]
        return client

    yield factory
    for tenant in set(tenants):
        remove_docker_resources(tenant)  # containers first: they hold images
        images = docker("images", "-q", "--filter", f"label=nube.tenant={tenant}").stdout.split()
        if images:
            docker("rmi", "-f", *set(images))


@pytest.fixture
def api(make_client: ClientFactory) -> NubeClient:
    return make_client()


@pytest.fixture
def name() -> Any:
    """Unique resource names: ``name("web")`` → ``ca-<run>-web-<hex>``."""
    return lambda base: f"ca-{RUN}-{base}-{uuid.uuid4().hex[:6]}"


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


def inspect(kind: str, ref: str) -> dict[str, Any] | None:
    """``docker <kind> inspect <ref>`` as a dict, or None if the engine has no such object. A
    name is the tenant's: the engine holds it behind the tenant's prefix (``n<tag>-<name>``,
    :mod:`workers.drivers.names`); the tests' names are unique, so whichever tenant's."""
    out = docker(kind, "inspect", ref)
    if out.returncode != 0 and kind in _LIST:
        listed = docker(
            *_LIST[kind], "--format", "{{.Name}}" if kind != "container" else "{{.Names}}"
        )
        scoped = [
            n for n in listed.stdout.split() if re.fullmatch(rf"n[0-9a-f]{{8}}-{re.escape(ref)}", n)
        ]
        out = docker(kind, "inspect", *scoped[:1]) if scoped else out
    if out.returncode != 0:
        return None
    return dict(json.loads(out.stdout)[0])


_LIST = {"container": ("ps", "-a"), "network": ("network", "ls"), "volume": ("volume", "ls")}


def state(ref: str) -> str:
    found = inspect("container", ref)
    assert found is not None, f"no container {ref}"
    return str(found["State"]["Status"])


def ok(client: NubeClient, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    """Submit with ``Prefer: wait``; the job must succeed; returns its result."""
    job = client.submit(method, path, body, wait=30, **kw)
    assert job["status"] == "succeeded", job
    return job["result"]


def failed(client: NubeClient, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    """Submit with ``Prefer: wait``; the job must fail; returns the job."""
    job = client.submit(method, path, body, wait=30, **kw)
    assert job["status"] == "failed", job
    return job


def events(job: dict[str, Any]) -> list[str]:
    return [e["event"] for e in job["history"]]
