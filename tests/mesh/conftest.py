"""The mesh tests' stack: nube across network namespaces (:mod:`nube.tools.mesh`), and how they
count jobs (accepted, terminal, lost, duplicate effects).

Each test module starts its own mesh; whatever a crashed run left is removed first, and the
network is removed afterwards even when a test fails. The messages go through the mesh's Redis,
or (``broker="rabbitmq"``) through a private RabbitMQ node (:class:`tests.brokers.RabbitNode`)
listening on the bridge address, so every node reaches it; the job store stays on Redis.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nube.placement import Placements
from nube.tokens import Scope, TokenStore
from nube.tools import mesh_net
from nube.tools.client import NubeClient
from nube.tools.mesh import Mesh
from nube.tools.mesh_net import HOST
from tests.brokers import RabbitNode, rabbitmq_available
from tests.conftest import (
    TEST_POLICY,
    Report,
    docker_available,
    libvirt_available,
    logs_shown_on_failure,
    need,
)
from tests.faults.test_message_path_faults import _container_creations
from tests.faults.test_worker_and_redis_faults import records

TERMINAL = {"succeeded", "failed", "cancelled"}
#: A detached container: its create is keyed by the job id, so a second delivery of the job (a
#: partitioned node's job restored by the reconciler's dead-holder sweep) makes no second one.
DETACHED = {"image": "busybox:latest", "command": ["sleep", "1"], "detach": True}


def need_mesh() -> None:
    need(os.geteuid() == 0 and shutil.which("ip") is not None, "root and iproute2")
    need(shutil.which("redis-server") is not None, "redis-server")
    need(docker_available(), "Docker")


@contextlib.contextmanager
def running_mesh(workdir: Path, broker: str = "redis", **env: str) -> Iterator[Mesh]:
    """The default layout (ctl: API and agent; edge: an API; n1, n2: container and VM
    workers) with ``env`` added to every service's settings, on ``broker`` (``redis`` or
    ``rabbitmq``)."""
    need_mesh()
    if broker == "rabbitmq":
        need(rabbitmq_available(), "rabbitmq-server")
    mesh_net.down()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "policy.yaml").write_text(TEST_POLICY)
    extra = {
        "NUBE_POLICY_FILE": str(workdir / "policy.yaml"),
        "NUBE_AUDIT_FILE": str(workdir / "audit.jsonl"),
        "NUBE_RATE_LIMIT": "0",
        **env,
    }
    uri = "qemu:///system" if libvirt_available() else "test:///default"
    mesh = Mesh(workdir=workdir, libvirt_uri=uri, extra_env=extra)
    rabbit: RabbitNode | None = None
    try:
        with logs_shown_on_failure(workdir):
            if broker == "rabbitmq":
                mesh.build_network()  # the node listens on the bridge address
                rabbit = RabbitNode(workdir / "rabbitmq", host=HOST)
                rabbit.start()
                mesh.broker_url_override = rabbit.take_vhost()
            mesh.start_mesh()
            yield mesh
    finally:
        mesh.stop_all()
        if rabbit is not None:
            rabbit.stop()
        mesh_net.down()


def broker_of(mesh: Mesh) -> str:
    return "rabbitmq" if mesh.broker_url_override else "redis"


def serving(mesh: Mesh, api: NubeClient, timeout: float = 90) -> dict[str, float]:
    """Until the mesh serves again: every queue has a live consumer, and a probe pinned to each
    worker node's VM queue (a read of a VM placed there that does not exist) has ended on that
    node. Returns the seconds each node's probe took."""
    exited = {name: proc.returncode for name, proc in mesh.procs.items() if proc.poll() is not None}
    if exited:
        pytest.fail(f"services exited (name: exit code): {exited}; see {mesh.workdir}/<name>.log")
    mesh.wait_served(mesh.queues(), timeout=timeout)
    placements = Placements(mesh.redis())
    tenant = api.tenant  # type: ignore[attr-defined]
    names = {
        node: f"probe-{node}-{secrets.token_hex(3)}"
        for node, roles in mesh.layout.items()
        if "vms" in roles
    }
    took: dict[str, float] = {}
    try:
        sent: dict[str, tuple[str, float]] = {}
        for node, name in names.items():
            placements.record("vms", tenant, name, node)
            sent[node] = (api.submit("GET", f"/v1/vms/{name}")["id"], time.monotonic())
        deadline = time.monotonic() + timeout
        while len(took) < len(sent):
            if time.monotonic() > deadline:
                pytest.fail(f"the probes of {sorted(set(sent) - set(took))} did not end")
            for node, (job_id, at) in sent.items():
                job = api.job(job_id) if node not in took else {}
                if job.get("status") in TERMINAL:
                    assert job.get("node") == node, job
                    took[node] = time.monotonic() - at
            time.sleep(0.2)
    finally:
        for name in names.values():
            placements.forget("vms", tenant, name)
    return took


def client_for(mesh: Mesh, node: str = "ctl", tenant: str | None = None) -> NubeClient:
    """A client of a fresh tenant talking to the API of ``node``."""
    tenant = tenant or f"t{secrets.token_hex(4)}"
    secret, _ = TokenStore(mesh.redis()).create(tenant, [Scope.READ, Scope.WRITE])
    # longer than the API's longest wait (NUBE_MAX_WAIT_SECONDS, 60 s): a submit that waits
    # for its job must not give up before the API answers
    client = NubeClient(mesh.api_url_of(node), secret, timeout=75)
    client.tenant = tenant  # type: ignore[attr-defined]
    return client


def submit_all(
    client: NubeClient, calls: list[tuple[str, str, dict[str, Any] | None]]
) -> list[str]:
    """Submit each ``(method, path, body)``; every one must be accepted (202 and a job)."""
    return [client.submit(method, path, body)["id"] for method, path, body in calls]


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def all_terminal(mesh: Mesh, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Wait until every job has ended (or ``timeout``); returns the records."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = records(mesh, ids)
        if all(j.get("status") in TERMINAL for j in jobs.values()) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.5)


def count(
    jobs: dict[str, dict[str, Any]],
    creating: list[str],
    since: float,
    label: str,
    say: Report = print,
) -> dict[str, Any]:
    """Count like a queue checker and report it: accepted, terminal, lost (never ended),
    duplicates (a container job that created more than one container)."""
    statuses = Counter(str(j.get("status", "missing")) for j in jobs.values())
    lost = sorted(i for i, j in jobs.items() if j.get("status") not in TERMINAL)
    duplicates = sorted(i for i in creating if _container_creations(i, since) > 1)
    counts = {
        "accepted": len(jobs),
        "terminal": sum(statuses[s] for s in TERMINAL),
        "lost": len(lost),
        "duplicates": len(duplicates),
        "statuses": dict(statuses),
    }
    say(f"{label}: {counts}")
    for job_id in duplicates:
        say(f"  duplicate effect of job {job_id}: {timeline(jobs[job_id])}")
    return counts


def timeline(job: dict[str, Any]) -> str:
    """The job's history on one line: ``event hh:mm:ss detail``, ..."""
    return ", ".join(
        f"{e['event']} {e['at'][11:19]}" + (f" {e['detail']}" if e.get("detail") else "")
        for e in job.get("history", [])
    )


def remove_vm(mesh: Mesh, name: str) -> None:
    """Undefine the VM ``name`` (its domain is ``<tenant prefix>-<name>``) with virsh: its
    node may be gone."""
    if not mesh.libvirt_uri.startswith("qemu") or not shutil.which("virsh"):
        return
    virsh = ["virsh", "-c", mesh.libvirt_uri]
    listed = subprocess.run([*virsh, "list", "--all", "--name"], capture_output=True, text=True)
    for domain in listed.stdout.split():
        if domain == name or domain.endswith(f"-{name}"):
            subprocess.run([*virsh, "undefine", domain], capture_output=True, timeout=30)
