"""Shared fixtures: a real nube stack (Redis, agent, workers, gunicorn API) and clients.

Tests that need a real service skip locally when it is missing but fail when ``CI`` is set
(like dramatiq's tests/conftest.py): `make test` starts everything they need.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack, free_port
from tests.brokers import broker, module_broker, rabbitmq_node  # noqa: F401 - fixtures

CI = bool(os.environ.get("CI"))


def need(available: bool, what: str) -> None:
    """Skip without ``what`` locally; on CI its absence is a failure."""
    if available:
        return
    if CI:
        pytest.fail(f"{what} is required on CI but is not available")
    pytest.skip(f"{what} is not available")


def docker_available() -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    )


def libvirt_available() -> bool:
    return (
        shutil.which("virsh") is not None
        and subprocess.run(
            ["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=20
        ).returncode
        == 0
    )


#: The test stack's policy: open by default; tenant ``restricted`` has tight rules.
TEST_POLICY = """
version: 1
admin_bypass: true
default:
  containers: {images: ["*"]}
tenants:
  restricted:
    containers: {images: ["busybox*"], max_memory: 64m, max_containers: 1}
    vms: {max_vcpus: 1, max_memory_mib: 128, max_vms: 1}
"""


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis, the agent, a container worker, a VM worker (qemu:///system) and the API."""
    need(shutil.which("redis-server") is not None, "redis-server")
    uri = "qemu:///system" if libvirt_available() else "test:///default"
    workdir = tmp_path_factory.mktemp("stack")
    (workdir / "policy.yaml").write_text(TEST_POLICY)
    env = {
        "NUBE_POLICY_FILE": str(workdir / "policy.yaml"),
        "NUBE_AUDIT_FILE": str(workdir / "audit.jsonl"),
    }
    s = Stack(workdir=workdir, libvirt_uri=uri, extra_env=env)
    try:
        s.start_redis()
        s.start_agent()
        s.start_worker("containers")
        s.start_worker("vms")
        s.start_api()
        s.wait_ready(["nube.ingress", "containers", "vms"], timeout=90)
        yield s
    finally:
        s.stop_all()
        _show_logs_on_failure(s.workdir)


@contextlib.contextmanager
def logs_shown_on_failure(workdir: Path) -> Iterator[None]:
    """Print the tail of every service log in ``workdir`` when the body raises (a stack that
    fails to start in a fixture's set-up), then let the error go on."""
    try:
        yield
    except BaseException:
        for log in sorted(workdir.glob("*.log")):
            print(f"==> {log.name} <==\n{log.read_text(errors='replace')[-3000:]}")
        raise


def _show_logs_on_failure(workdir: Path) -> None:
    if os.environ.get("NUBE_TEST_LOGS"):
        for log in sorted(workdir.glob("*.log")):
            print(f"==> {log.name} <==\n{log.read_text()[-4000:]}")


Report = Callable[[str], None]


@pytest.fixture
def report(pytestconfig: pytest.Config) -> Report:
    """Write a line to the terminal even when output is captured (the counts on CI)."""
    plugins = pytestconfig.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")

    def say(line: str) -> None:
        if reporter is None or capture is None:
            print(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return say


ClientFactory = Callable[..., NubeClient]


@pytest.fixture
def make_client(stack: Stack) -> Iterator[ClientFactory]:
    """Make a client with a fresh token: ``make_client(tenant=None, scopes=("read","write"))``."""
    tenants: list[str] = []

    def factory(
        tenant: str | None = None, scopes: tuple[str, ...] = ("read", "write")
    ) -> NubeClient:
        tenant = tenant or f"t{secrets.token_hex(4)}"
        tenants.append(tenant)
        secret, _ = TokenStore(stack.redis()).create(tenant, [Scope(s) for s in scopes])
        client = NubeClient(stack.api_url, secret)
        client.tenant = tenant  # type: ignore[attr-defined]
        return client

    yield factory
    for tenant in set(tenants):
        remove_docker_resources(tenant)


@pytest.fixture
def api(make_client: ClientFactory) -> NubeClient:
    """A client of a fresh tenant with read and write scopes."""
    return make_client()


def remove_docker_resources(tenant: str) -> None:
    """Remove every container, network and volume labelled with ``tenant``."""
    if shutil.which("docker") is None:
        return
    label = f"label=nube.tenant={tenant}"
    for kind, listing in (
        ("container", ["docker", "ps", "-aq", "--filter", label]),
        ("network", ["docker", "network", "ls", "-q", "--filter", label]),
        ("volume", ["docker", "volume", "ls", "-q", "--filter", label]),
    ):
        ids = subprocess.run(listing, capture_output=True, text=True).stdout.split()
        if ids:
            force = ["-f"] if kind != "network" else []
            subprocess.run(["docker", kind, "rm", *force, *ids], capture_output=True)


@pytest.fixture(scope="session")
def redis_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A private Redis alone (for unit tests of stores)."""
    need(shutil.which("redis-server") is not None, "redis-server")
    s = Stack(workdir=tmp_path_factory.mktemp("redis"))
    s.start_redis()
    yield s
    s.stop_all()


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


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
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


@contextlib.contextmanager
def agent_stack(workdir: Path, **env: str) -> Iterator[Stack]:
    """A private stack (Redis, the agent, the API; no worker yet) with ``env`` added to its
    settings, ready for jobs; stopped afterwards."""
    need(shutil.which("redis-server") is not None, "redis-server")
    stack = Stack(workdir=workdir, extra_env=env)
    try:
        stack.start_redis()
        stack.start_agent()
        stack.start_api()
        stack.wait_ready(["nube.ingress"])
        yield stack
    finally:
        stack.stop_all()


def broken_engine_stack(workdir: Path, worker: str, **env: str) -> Stack:
    """A private stack (Redis, agent, API) whose only container worker, named ``worker``,
    cannot reach its engine: every container job retries with a backoff of at most 1 s.
    ``env`` is added to its settings (``broker.env()``)."""
    need(shutil.which("redis-server") is not None, "redis-server")
    (workdir / "policy.yaml").write_text(TEST_POLICY)
    stack = Stack(
        workdir=workdir,
        extra_env={
            "NUBE_RETRY_BACKOFF_MAX": "1",
            "NUBE_POLICY_FILE": str(workdir / "policy.yaml"),
            "NUBE_AUDIT_FILE": str(workdir / "audit.jsonl"),
            **env,
        },
    )
    try:
        stack.start_redis()
        stack.start_agent()
        stack.start_worker(
            "containers",
            name=worker,
            NUBE_DOCKER_HOST=f"unix:///tmp/nonexistent-{secrets.token_hex(6)}.sock",
        )
        stack.start_api()
    except BaseException:
        stack.stop_all()
        raise
    return stack
