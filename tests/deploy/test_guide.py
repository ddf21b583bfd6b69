"""The multi-host guide (docs/operations.md, "Several hosts: the control node and worker
nodes") tried step by step: its shell blocks run as written, each on its "host", in order.

The control node's address is the test's own (:mod:`tests.deploy.net`); each host has its own
``SECRETS`` directory and compose project, so the worker node's containers are on another Docker
network and reach the control node's Redis only through its published TLS port on that address.
The copy step (``scp``) is done here with a copy. The last control block's output is checked:
the worker node in ``/v1/nodes``, a VM defined there and an operation on it routed to the node's
own queue, a container run on it. The guide's removal blocks run at the end, and again (with
the bridge and the directories removed) whatever happened.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from nube.tools.devstack import free_port
from tests.compose.test_compose import _base_image_exists
from tests.conftest import docker_available, need
from tests.deploy import net
from tests.deploy.guide import ROOT, Step, steps

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1500)]

GUIDE_HOSTS = ("control", "worker", "copy")


@dataclass
class Host:
    """One simulated host: the variables the guide asks for, and its compose project."""

    name: str
    secrets_dir: Path
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)

    def run(self, step: Step, timeout: float = 900, check: bool = True) -> str:
        t0 = time.monotonic()
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", step.script],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        took = time.monotonic() - t0
        print(f"[{self.name}] {step.title!r}: exit {proc.returncode} in {took:.0f} s")
        if check and proc.returncode != 0:
            raise AssertionError(
                f"[{self.name}] guide block failed ({proc.returncode}):\n{step.script}\n"
                f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
            )
        self.outputs.append(proc.stdout)
        return proc.stdout


def host_env(**values: str) -> dict[str, str]:
    """The machine's environment without NUBE_*/COMPOSE_* (they would change the guide's
    commands), plus ``values``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NUBE_", "COMPOSE_")) and k != "DOCKER_BUILDKIT"
    }
    env.update(values)
    return env


def copy_step(control: Host, worker: Host) -> None:
    """The guide's ``scp -p "$SECRETS"/worker/* root@worker1:/etc/nube/``, as a local copy."""
    for path in (control.secrets_dir / "worker").iterdir():
        shutil.copy2(path, worker.secrets_dir / path.name)


def removal_steps(all_steps: list[Step]) -> list[Step]:
    return [s for s in all_steps if " down -v" in s.script]


@pytest.fixture(scope="module")
def guide_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Host, Host]]:
    need(docker_available(), "Docker")
    need(shutil.which("docker-compose") is not None, "docker-compose")
    need(net.can_make(), "root and iproute2")
    need(shutil.which("debootstrap") is not None or _base_image_exists(), "debootstrap")
    workdir = tmp_path_factory.mktemp("deploy")
    run_id = secrets.token_hex(3)
    common = {
        "CONTROL_ADDR": net.ADDRESS,
        "NUBE_IMAGE_TAG": "test",
        "NUBE_BASE_IMAGE": os.environ.get("NUBE_BASE_IMAGE", "nube/base:bookworm"),
    }
    control = Host(
        "control",
        workdir / "control",
        host_env(
            **common,
            SECRETS=str(workdir / "control"),
            DRAIN=f"w{run_id}",
            COMPOSE_PROJECT_NAME=f"nubedep{run_id}c",
            NUBE_REDIS_PORT=str(free_port()),
            NUBE_API_PORT=str(free_port()),
            NUBE_FLOWER_PORT=str(free_port()),
        ),
    )
    worker = Host(
        "worker",
        workdir / "worker",
        host_env(
            **common,
            SECRETS=str(workdir / "worker"),
            NODE=f"w{run_id}",
            COMPOSE_PROJECT_NAME=f"nubedep{run_id}w",
        ),
    )
    worker.secrets_dir.mkdir(mode=0o700)
    net.make()
    try:
        yield control, worker
    finally:
        for step in reversed(removal_steps(steps())):
            host = control if step.host == "control" else worker
            if host.secrets_dir.joinpath(f"{host.name}.env").exists():
                host.run(step, timeout=300, check=False)
        net.remove()
        shutil.rmtree(workdir, ignore_errors=True)


def _json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _admin_token(control: Host) -> str:
    """A token of the guide's tenant (its VM is placed per tenant), made as the guide does."""
    proc = subprocess.run(
        [
            *("docker-compose", "--env-file", f"{control.secrets_dir}/control.env"),
            *("-f", "docker-compose.yml", "-f", "docker-compose.control.yml"),
            *("exec", "-T", "api", "nube", "tokens", "create", "--tenant", "ops"),
            *("--scope", "admin"),
        ],
        cwd=ROOT,
        env=control.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return next(line for line in proc.stdout.splitlines() if line.startswith("nube_"))


class Api:
    def __init__(self, control: Host) -> None:
        self.url = f"http://127.0.0.1:{control.env['NUBE_API_PORT']}"
        self.headers = {"Authorization": f"Bearer {_admin_token(control)}"}

    def submit_async(self, method: str, path: str, body: Any = None) -> str:
        r = requests.request(
            method,
            self.url + path,
            json=body,
            headers={**self.headers, "Prefer": "respond-async"},
            timeout=30,
        )
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def job(self, job_id: str, wait: int = 0) -> dict[str, Any]:
        r = requests.get(
            f"{self.url}/v1/jobs/{job_id}",
            headers={**self.headers, "Prefer": f"wait={wait}"},
            timeout=wait + 30,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())


def test_the_guide_runs_step_by_step(guide_hosts: tuple[Host, Host]) -> None:
    control, worker = guide_hosts
    all_steps = steps()
    assert {s.host for s in all_steps} >= set(GUIDE_HOSTS), all_steps
    removal = removal_steps(all_steps)
    assert [s.host for s in removal] == ["worker", "control"], removal
    node = worker.env["NODE"]
    api: Api | None = None
    waiting: dict[str, str] = {}
    t0 = time.monotonic()
    for step in all_steps:
        if step.host == "copy":
            assert 'scp -p "$SECRETS"/worker/*' in step.script, step.script
            copy_step(control, worker)
            continue
        if step.host not in ("control", "worker") or step in removal:
            continue
        out = (control if step.host == "control" else worker).run(step)
        command = step.script.strip().splitlines()[-1]

        if "/v1/vms/first-vm/start" in step.script:
            print(f"guide up to its first jobs: {time.monotonic() - t0:.0f} s")
            # /v1/nodes, the VM defined, its start (on the node's queue), a container run
            nodes, define, start, run = _json_lines(out)
            by_name = {n["name"]: n for n in nodes["nodes"]}
            assert {s["kind"] for s in by_name[node]["services"]} == {"containers", "vms"}, nodes
            assert {s["kind"] for s in by_name["control"]["services"]} == {"agent"}, nodes
            assert define["status"] == "succeeded" and define["node"] == node, define
            assert start["status"] == "succeeded", start
            assert start["queue"] == f"vms.{node}" and start["node"] == node, start
            assert run["status"] == "succeeded" and run["node"] == node, run
            assert run["result"]["stdout"] == "hi\n", run
            api = Api(control)

        elif "cancel-consumer" in step.script:
            assert api is not None
            messages = sorted(m["message"] for m in _json_lines(out))
            assert messages == [
                "no longer consuming from containers",
                "no longer consuming from vms",
            ], out
            # the only node's shared queue has no consumer now: a container job waits
            waiting["shared"] = api.submit_async(
                "POST", "/v1/containers", {"image": "busybox:latest", "command": ["echo", "hi"]}
            )
            time.sleep(5)
            assert api.job(waiting["shared"])["status"] == "queued"

        elif command.endswith(" stop"):
            assert api is not None
            # a job for the node's VM waits, saying why
            waiting["pinned"] = api.submit_async("GET", "/v1/vms/first-vm")
            deadline = time.monotonic() + 30
            job = api.job(waiting["pinned"])
            while job["queue"] == "vms" and time.monotonic() < deadline:
                time.sleep(0.5)  # queued on "vms" until the agent has routed it to the node
                job = api.job(waiting["pinned"])
            assert job["status"] == "queued" and job["queue"] == f"vms.{node}", job
            assert f"no live worker serves queue 'vms.{node}'" in job["waiting"], job

        elif command.endswith(" start"):
            assert api is not None
            shared = api.job(waiting["shared"], wait=90)
            assert shared["status"] == "succeeded" and shared["node"] == node, shared
            pinned = api.job(waiting["pinned"], wait=90)
            # it ran on the node; test:///default forgot the VM when the worker restarted
            assert pinned["status"] in ("succeeded", "failed") and pinned["node"] == node, pinned
            print(f"drained and back: the pinned job ended {pinned['status']} on {node}")

    assert set(waiting) == {"shared", "pinned"}, "the guide's drain steps did not run"

    # Redis is reached only over TLS, on the control address alone
    project = control.env["COMPOSE_PROJECT_NAME"]
    label = f"label=com.docker.compose.project={project}"
    published = subprocess.run(
        ["docker", "ps", "--format", "{{.Ports}}", "--filter", label],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert f"{net.ADDRESS}:{control.env['NUBE_REDIS_PORT']}->6380/tcp" in published, published

    for step in removal:
        (control if step.host == "control" else worker).run(step, timeout=300)
    for host in (control, worker):
        project = host.env["COMPOSE_PROJECT_NAME"]
        left = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
        assert left == [], (project, left)
