"""The swarm variant of the multi-host guide (docs/operations.md, "The swarm variant"), its
shell blocks run as written on a one-node swarm the test makes and leaves.

The swarm advertises and listens on the test's own address (:mod:`tests.deploy.net`), its overlay
networks come from a range the test picks; the stack deploys with the locally built images
(``NUBE_IMAGE_TAG=test``, the compose test's), a job runs end to end, and ``docker service
scale`` takes the container workers to 3: three tasks running and three container workers
registered. The guide's removal block runs at the end (and again, with ``docker_gwbridge``
removed when the swarm made it, whatever happened). Refuses to run on a machine that is already
in a swarm.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from nube.tools.devstack import free_port
from tests.conftest import docker_available, need
from tests.deploy import net
from tests.deploy.guide import Step, steps
from tests.deploy.test_guide import Host, _json_lines, host_env

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1200)]

#: The overlay networks' range: used by no other test (the mesh, libvirt networks, the bridge).
SWARM_POOL = "10.227.0.0/16"
WORKERS = 3


def _docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=60
    ).stdout.strip()


def swarm_state() -> str:
    return _docker("info", "--format", "{{.Swarm.LocalNodeState}}")


def _has_network(name: str) -> bool:
    return name in _docker("network", "ls", "--format", "{{.Name}}").split()


@pytest.fixture(scope="module")
def swarm_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    need(docker_available(), "Docker")
    need(net.can_make(), "root and iproute2")
    if swarm_state() != "inactive":
        pytest.fail(f"this Docker engine is in a swarm already ({swarm_state()}): not touched")
    had_gwbridge = _has_network("docker_gwbridge")
    workdir: Path = tmp_path_factory.mktemp("swarm")
    host = Host(
        "swarm",
        workdir,
        host_env(
            SWARM_ADDR=net.ADDRESS,
            SWARM_POOL=SWARM_POOL,
            NUBE_IMAGE_TAG="test",
            NUBE_API_PORT=str(free_port()),
            NUBE_FLOWER_PORT=str(free_port()),
        ),
    )
    net.make()
    try:
        yield host
    finally:
        if swarm_state() != "inactive":
            host.run(steps_of("swarm")[-1], timeout=300, check=False)
            _docker("swarm", "leave", "--force")
        if not had_gwbridge and _has_network("docker_gwbridge"):
            _docker("network", "rm", "docker_gwbridge")
        net.remove()


def steps_of(host: str) -> list[Step]:
    return [s for s in steps() if s.host == host]


def test_the_stack_deploys_runs_a_job_and_scales(swarm_host: Host) -> None:
    init, deploy, check, remove = steps_of("swarm")
    assert "docker swarm leave --force" in remove.script
    t0 = time.monotonic()
    for step in (init, deploy):
        swarm_host.run(step)
    swarm_host.run(check)
    print(f"swarm: deployed, a job and the scale in {time.monotonic() - t0:.0f} s")

    (job,) = _json_lines(swarm_host.outputs[-1])
    assert job["status"] == "succeeded", job
    assert job["result"]["stdout"] == "hi\n", job

    replicas = _docker(
        "service", "ls", "--filter", "name=nube_containers-worker", "--format", "{{.Replicas}}"
    )
    assert replicas == f"{WORKERS}/{WORKERS}", replicas
    tasks = _docker(
        "service",
        "ps",
        "nube_containers-worker",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
    ).splitlines()
    assert len(tasks) == WORKERS and all(t.startswith("Running") for t in tasks), tasks

    api = f"http://127.0.0.1:{swarm_host.env['NUBE_API_PORT']}"
    container = _docker("ps", "-q", "-f", "label=com.docker.swarm.service.name=nube_api")
    token = next(
        line
        for line in _docker(
            "exec",
            container.split()[0],
            "nube",
            "tokens",
            "create",
            "--tenant",
            "swarmtest",
            "--scope",
            "admin",
        ).splitlines()
        if line.startswith("nube_")
    )
    deadline = time.monotonic() + 60
    while True:
        nodes = requests.get(
            api + "/v1/nodes", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()["nodes"]
        workers = [s["instance"] for n in nodes for s in n["services"] if s["kind"] == "containers"]
        if len(workers) == WORKERS or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert len(set(workers)) == WORKERS, json.dumps(nodes)
    # one swarm node: the replicas share its host name as their node name
    assert len({n["name"] for n in nodes}) == 1, nodes

    swarm_host.run(remove, timeout=300)
    assert swarm_state() == "inactive"
    assert _docker("ps", "-aq", "-f", "label=com.docker.stack.namespace=nube") == ""
    assert "nube_redis-data" not in _docker("volume", "ls", "--format", "{{.Name}}").split()
