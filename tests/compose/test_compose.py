"""The containerised stack: build the images, `docker-compose up` with two container workers,
run a job end to end, check the nodes and Flower's password, and tear everything down.

Each run uses its own compose project (``nubetest<random>``), its own free host ports and its
own env file, so it never touches a developer's stack or ``.env``. Images are tagged
``nube/*:test``; their layers are shared with ``nube/*:local`` through Docker's build cache, so
only the first build on a machine is cold (~3.5 min on 2 cores; a warm build takes seconds).
Skips without Docker and docker-compose locally; fails on CI (``CI`` set) instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from nube.tools.devstack import free_port
from tests.conftest import docker_available, need, remove_docker_resources

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
QUEUES = ("nube.ingress", "containers", "vms")
CONTAINER_WORKERS = 2


def compose_command() -> list[str] | None:
    """``docker-compose`` (v1, Debian's) or ``docker compose`` (v2), whichever is installed."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if (
        shutil.which("docker")
        and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=20
        ).returncode
        == 0
    ):
        return ["docker", "compose"]
    return None


@dataclass
class ComposeStack:
    project: str
    base: list[str]
    env: dict[str, str]
    api_url: str
    flower_url: str
    flower_password: str
    tenant: str
    token: str = ""

    def run(
        self, *args: str, timeout: float = 600, check: bool = True, log: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        out = open(log, "a") if log else subprocess.PIPE  # noqa: SIM115 - closed below
        try:
            proc = subprocess.run(
                [*self.base, *args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
            )
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        if check and proc.returncode != 0:
            tail = log.read_text()[-4000:] if log else proc.stdout[-4000:]
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{tail}")
        return proc


def _wait_ready(url: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            body = requests.get(url + "/readyz", timeout=3).json()
            queues = body.get("queues") or {}
            if all(queues.get(q) for q in QUEUES):
                return body
        except (requests.RequestException, ValueError):
            pass
        time.sleep(1)
    raise AssertionError(f"/readyz did not show {QUEUES} served in {timeout:.0f} s: {body}")


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    need(docker_available(), "Docker")
    base_cmd = compose_command()
    need(base_cmd is not None, "docker-compose")
    assert base_cmd is not None
    need(shutil.which("debootstrap") is not None or _base_image_exists(), "debootstrap")

    workdir = tmp_path_factory.mktemp("compose")
    project = f"nubetest{secrets.token_hex(4)}"
    api_port, flower_port = free_port(), free_port()
    flower_password = secrets.token_hex(8)
    sock = "/var/run/docker.sock"
    values = {
        "NUBE_REDIS_PASSWORD": secrets.token_hex(16),
        "NUBE_FLOWER_PASSWORD": flower_password,
        "NUBE_API_PORT": str(api_port),
        "NUBE_FLOWER_PORT": str(flower_port),
        "NUBE_DOCKER_GID": str(os.stat(sock).st_gid) if os.path.exists(sock) else "0",
        "NUBE_IMAGE_TAG": "test",
        "NUBE_LIBVIRT_URI": "test:///default",
        # another base (e.g. python:3.11-slim-bookworm where a registry is reachable)
        "NUBE_BASE_IMAGE": os.environ.get("NUBE_BASE_IMAGE", "nube/base:bookworm"),
    }
    env_file = workdir / "compose.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    # The host's NUBE_*/COMPOSE_* variables would override the env file: leave them out, and
    # DOCKER_BUILDKIT (a docker CLI without buildx refuses to build with it set).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NUBE_", "COMPOSE_")) and k != "DOCKER_BUILDKIT"
    }
    env.update(values)
    stack = ComposeStack(
        project=project,
        base=[*base_cmd, "-p", project, "--env-file", str(env_file), "-f", "docker-compose.yml"],
        env=env,
        api_url=f"http://127.0.0.1:{api_port}",
        flower_url=f"http://127.0.0.1:{flower_port}",
        flower_password=flower_password,
        tenant=f"ci{secrets.token_hex(4)}",
    )
    build_log = workdir / "build.log"
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        proc = subprocess.run(
            ["scripts/build-base-image.sh"], cwd=ROOT, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"build-base-image.sh failed:\n{proc.stderr[-4000:]}"
        timings["base image"] = time.monotonic() - t0
        t0 = time.monotonic()
        stack.run("build", timeout=1200, log=build_log)
        timings["build"] = time.monotonic() - t0
        t0 = time.monotonic()
        stack.run("up", "-d", "--scale", f"worker-containers={CONTAINER_WORKERS}", timeout=300)
        _wait_ready(stack.api_url, timeout=180)
        timings["up until ready"] = time.monotonic() - t0
        print("compose timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))

        out = stack.run(
            "exec",
            "-T",
            "api",
            "nube",
            "tokens",
            "create",
            "--tenant",
            stack.tenant,
            "--scope",
            "admin",
            "--name",
            "compose-test",
            timeout=60,
        ).stdout
        # the secret is on stdout, its id on stderr: `exec` may interleave them in any order
        secrets_out = [line.strip() for line in out.splitlines() if line.startswith("nube_")]
        assert len(secrets_out) == 1, out
        stack.token = secrets_out[0]
        yield stack
    except BaseException:
        logs = stack.run("logs", "--no-color", "--tail", "60", check=False, timeout=60).stdout
        print(f"==> docker-compose logs ({project}) <==\n{logs[-12000:]}")
        raise
    finally:
        stack.run("down", "-v", "--remove-orphans", "-t", "20", check=False, timeout=300)
        remove_docker_resources(stack.tenant)


def _base_image_exists() -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(
            ["docker", "image", "inspect", os.environ.get("NUBE_BASE_IMAGE", "nube/base:bookworm")],
            capture_output=True,
            timeout=20,
        ).returncode
        == 0
    )


def _auth(stack: ComposeStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


def test_container_job_runs_end_to_end(compose_stack: ComposeStack) -> None:
    r = requests.post(
        compose_stack.api_url + "/v1/containers",
        json={"image": "busybox:latest", "command": ["echo", "hi"]},
        headers={**_auth(compose_stack), "Prefer": "wait=60"},
        timeout=90,
    )
    assert r.status_code in (200, 201), r.text
    job = r.json()
    assert job["status"] == "succeeded", job
    assert job["result"]["stdout"].strip() == "hi", job["result"]
    assert job["result"]["exit_code"] == 0


def test_every_container_worker_is_a_node(compose_stack: ComposeStack) -> None:
    deadline = time.monotonic() + 30
    while True:
        r = requests.get(
            compose_stack.api_url + "/v1/nodes", headers=_auth(compose_stack), timeout=10
        )
        assert r.status_code == 200, r.text
        nodes = r.json()["nodes"]
        kinds = [svc["kind"] for node in nodes for svc in node["services"]]
        workers = [
            n["name"] for n in nodes if any(s["kind"] == "containers" for s in n["services"])
        ]
        if len(workers) == CONTAINER_WORKERS or time.monotonic() > deadline:
            break
        time.sleep(1)
    # one node per replica: NUBE_NODE defaults to the hostname, i.e. the container id
    assert len(set(workers)) == CONTAINER_WORKERS, nodes
    assert kinds.count("vms") == 1 and kinds.count("agent") == 1, nodes


def test_flower_needs_its_password(compose_stack: ComposeStack) -> None:
    url = compose_stack.flower_url + "/"
    assert requests.get(url, timeout=10).status_code == 401
    wrong = requests.get(url, auth=("admin", "not-the-password"), timeout=10)
    assert wrong.status_code == 401
    ok = requests.get(url, auth=("admin", compose_stack.flower_password), timeout=30)
    assert ok.status_code == 200, ok.text[:500]


def test_redis_needs_its_password_and_is_not_published(compose_stack: ComposeStack) -> None:
    out = compose_stack.run(
        "exec", "-T", "-e", "REDISCLI_AUTH=", "redis", "redis-cli", "ping", check=False, timeout=30
    ).stdout
    assert "NOAUTH" in out, out
    port = compose_stack.run("port", "redis", "6379", check=False, timeout=30)
    assert not port.stdout.strip() or port.returncode != 0, port.stdout
