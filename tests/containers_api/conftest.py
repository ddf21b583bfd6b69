"""Fixtures for the container service end to end: through the API, the broker, the agent and
the container worker of the shared ``stack``, confirmed on the real Docker engine.

Every test's tenants are fresh (``make_client``); at teardown their containers, networks,
volumes and images (built, committed, pulled) are removed by the ``nube.tenant`` label.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from nube.client import NubeClient
from nube.devstack import free_port
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
    """``docker <kind> inspect <ref>`` as a dict, or None if the engine has no such object."""
    out = docker(kind, "inspect", ref)
    if out.returncode != 0:
        return None
    return dict(json.loads(out.stdout)[0])


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


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, engine_ready: None) -> Iterator[str]:
    """A real registry v2 (Debian's ``docker-registry``) on a free 127.0.0.1 port."""
    binary = Path("/usr/bin/docker-registry")
    need(binary.exists(), "docker-registry")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [str(binary), "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_http(url: str, timeout: float = 10.0) -> requests.Response:
    """GET ``url`` until a server answers (a freshly started one may not listen yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
