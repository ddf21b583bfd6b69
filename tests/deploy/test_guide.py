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
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_the_guide_runs_step_by_step(guide_hosts: tuple[Host, Host]) -> None:
    control, worker = guide_hosts
    all_steps = steps()
    assert {s.host for s in all_steps} >= set(GUIDE_HOSTS), all_steps
    removal = removal_steps(all_steps)
    assert [s.host for s in removal] == ["worker", "control"], removal
    node = worker.env["NODE"]
    t0 = time.monotonic()
    for step in all_steps:
        if step.host == "copy":
            assert 'scp -p "$SECRETS"/worker/*' in step.script, step.script
            copy_step(control, worker)
        elif step.host in ("control", "worker") and step not in removal:
            (control if step.host == "control" else worker).run(step)
    print(f"guide up to its checks: {time.monotonic() - t0:.0f} s")

    # what the guide's check block printed: /v1/nodes, the VM define, its start, a container run
    nodes, define, start, run = _json_lines(control.outputs[-1])
    by_name = {n["name"]: n for n in nodes["nodes"]}
    assert {s["kind"] for s in by_name[node]["services"]} == {"containers", "vms"}, nodes
    assert {s["kind"] for s in by_name["control"]["services"]} == {"agent"}, nodes
    assert define["status"] == "succeeded" and define["node"] == node, define
    assert start["status"] == "succeeded", start
    assert start["queue"] == f"vms.{node}" and start["node"] == node, start
    assert run["status"] == "succeeded" and run["node"] == node, run
    assert run["result"]["stdout"] == "hi\n", run

    # Redis is reached only over TLS, on the control address alone
    published = subprocess.run(
        [
            "docker",
            "ps",
            "--filter",
            f"label=com.docker.compose.project={control.env['COMPOSE_PROJECT_NAME']}",
            "--format",
            "{{.Ports}}",
        ],
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
