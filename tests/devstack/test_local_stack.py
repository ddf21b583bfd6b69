"""The stack `make up` runs, built as `make up` builds it (:func:`nube.tools.devstack.prepare`)
but on free ports in a temporary directory: the environment's policy is in force, and no secret
is on any process's command line (issue 8, items 5 and 6). One stack for the module."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from nube.settings import Settings
from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack, _announce, prepare
from tests.conftest import docker_available, free_port, need, remove_docker_resources

POLICY = """
version: 1
default:
  containers: {images: ["busybox*"]}
"""
SERVICES = ("redis", "agent", "worker-containers", "worker-vms", "api", "flower")


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Settings]]:
    need(shutil.which("redis-server") is not None, "redis-server")
    root = tmp_path_factory.mktemp("make-up")
    (root / "policy.yaml").write_text(POLICY)
    env = {
        "NUBE_POLICY_FILE": str(root / "policy.yaml"),
        "NUBE_AUDIT_FILE": str(root / "audit.jsonl"),
        "NUBE_REDIS_PORT": str(free_port()),
        "NUBE_API_PORT": str(free_port()),
        "NUBE_FLOWER_PORT": str(free_port()),
        "NUBE_FLOWER_PASSWORD": secrets.token_hex(8),
        # the stack's own: these must lose, or nothing would work
        "NUBE_REDIS_URL": "redis://127.0.0.1:1/0",
        "NUBE_KEYS": "nonsense",
        "PATH": os.environ["PATH"],
    }
    stack, settings = prepare(env, root / "work")
    try:
        stack.start_all()
        yield stack, settings
    finally:
        stack.stop_all()
        if os.environ.get("NUBE_TEST_LOGS"):
            for log in sorted(stack.workdir.glob("*.log")):
                print(f"==> {log.name} <==\n{log.read_text(errors='replace')[-3000:]}")


def _client(stack: Stack, tenant: str) -> NubeClient:
    secret, _ = TokenStore(stack.redis()).create(tenant, [Scope.READ, Scope.WRITE])
    return NubeClient(stack.api_url, secret)


def test_the_environments_policy_is_in_force(
    local: tuple[Stack, Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, settings = local
    client = _client(stack, f"t{secrets.token_hex(4)}")
    job = client.submit(
        "POST", "/v1/containers", {"image": "alpine:latest", "command": ["true"]}, wait=30
    )
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "policy_denied", job
    assert job["error"]["details"]["rule"] == "images"

    _announce(stack, settings, "<token>", job)
    out = capsys.readouterr().out
    assert f"  policy   {stack.workdir.parent / 'policy.yaml'}\n" in out
    assert f"  audit    {stack.workdir.parent / 'audit.jsonl'}" in out


def test_the_policy_allows_what_it_names(local: tuple[Stack, Settings]) -> None:
    need(docker_available(), "the Docker engine")
    stack, _ = local
    tenant = f"t{secrets.token_hex(4)}"
    try:
        job = _client(stack, tenant).submit(
            "POST", "/v1/containers", {"image": "busybox:latest", "command": ["true"]}, wait=60
        )
        assert job["status"] == "succeeded", job
    finally:
        remove_docker_resources(tenant)


def _sessions(stack: Stack) -> dict[str, list[int]]:
    """Every process of each service: all share the session its first process started."""
    leaders = {proc.pid: name for name, proc in stack.procs.items()}
    found: dict[str, list[int]] = {name: [] for name in stack.procs}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        session = int(stat.rsplit(")", 1)[1].split()[3])  # state ppid pgrp session
        if session in leaders:
            found[leaders[session]].append(int(entry.name))
    return found


def test_no_secret_on_any_command_line(local: tuple[Stack, Settings]) -> None:
    stack, _ = local
    config = stack.workdir / "redis.conf"
    assert config.stat().st_mode & 0o777 == 0o600
    assert stack.redis_password in config.read_text()

    # the passwords, the keyring line and each key's base64 material on its own
    key_material = [entry.split(":", 1)[1] for entry in stack.keys.replace(",", "\n").split()]
    secrets_ = [stack.redis_password, stack.flower_password, stack.keys, *key_material]

    processes = _sessions(stack)
    assert set(processes) == set(SERVICES)
    for name, pids in processes.items():
        assert pids, f"{name} has no process"
    assert len(processes["api"]) >= 2  # gunicorn's arbiter and its workers
    cmdlines = {
        pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        for pids in processes.values()
        for pid in pids
    }
    assert any("nube.tools.flower" in c for c in cmdlines.values())
    assert any(
        c.startswith(f"redis-server 127.0.0.1:{stack.redis_port}") for c in cmdlines.values()
    )
    # ps shows command lines and process titles (setproctitle rewrites the cmdline area)
    ps = subprocess.run(["ps", "-eww", "-o", "pid=,comm=,args="], capture_output=True, text=True)
    for secret in secrets_:
        assert len(secret) >= 8
        for pid, cmdline in cmdlines.items():
            assert secret not in cmdline, f"a secret is on the command line of {pid}"
        assert secret not in ps.stdout
    # nor in what the services log
    for log in stack.workdir.glob("*.log"):
        text = log.read_text(errors="replace")
        assert not [s for s in secrets_ if s in text], f"a secret is in {log.name}"


def test_flower_needs_the_password_from_the_environment(local: tuple[Stack, Settings]) -> None:
    stack, _ = local
    url = stack.flower_url + "/api/workers"
    assert requests.get(url, timeout=10).status_code == 401
    wrong = requests.get(url, auth=("admin", "not-the-password"), timeout=10)
    assert wrong.status_code == 401
    started = time.monotonic()
    ok = requests.get(url, auth=("admin", stack.flower_password), timeout=30)
    assert ok.status_code == 200, ok.text
    assert isinstance(ok.json(), dict)
    assert time.monotonic() - started < 30
