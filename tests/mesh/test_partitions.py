"""Partitions and node loss across network namespaces (shared/reliability.md rows 28 and 30).

One mesh per broker (Redis, then RabbitMQ; ctl: API and agent; edge: a second API; n1, n2:
container and VM workers). A node is cut off by taking the host side of its link down. In every
case each accepted job ends, none is lost and none has a duplicate effect; the counts are printed,
with the broker's name.

The tests run in order: the last but one kills a worker node for good. Each test that takes
``api`` starts once the mesh serves again (:func:`tests.mesh.conftest.serving`).
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from nube.nodes import lost_nodes
from nube.registry import Registry
from nube.tools.client import NubeClient
from nube.tools.mesh import Mesh
from nube.tools.mesh_net import HOST
from tests.brokers import BROKERS
from tests.conftest import remove_docker_resources
from tests.faults.test_worker_and_redis_faults import records
from tests.mesh.conftest import (
    DETACHED,
    TERMINAL,
    Report,
    all_terminal,
    broker_of,
    client_for,
    count,
    remove_vm,
    running_mesh,
    serving,
    submit_all,
    timeline,
    wait_until,
)

#: NUBE_NODE_LOST_SECONDS in this mesh: longer than the partitions the tests heal.
LOST_SECONDS = 30
WORKER_NODES = ("n1", "n2")
#: A container run that waits for its container (not detached), for longer than a delivery.
LONG_RUN = {"image": "busybox:latest", "command": ["sleep", "8"]}


@pytest.fixture(scope="module", params=BROKERS)
def mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp(f"mesh-{request.param}")
    lost = str(LOST_SECONDS)
    with running_mesh(workdir, request.param, NUBE_NODE_LOST_SECONDS=lost) as m:
        yield m


@pytest.fixture
def api(mesh: Mesh) -> Iterator[NubeClient]:
    """A client of a fresh tenant, once the mesh serves again (after the previous test's
    partition: every node's workers take jobs)."""
    client = client_for(mesh)
    serving(mesh, client)
    vms: list[str] = []
    client.vms = vms  # type: ignore[attr-defined]
    yield client
    for node in mesh.layout:
        mesh.heal(node)
    remove_docker_resources(client.tenant)  # type: ignore[attr-defined]
    for name in vms:
        remove_vm(mesh, name)


def define_vm(api: NubeClient) -> tuple[str, str]:
    """A VM defined on whichever worker node takes the job: (its name, its node)."""
    name = f"mesh-{secrets.token_hex(4)}"
    api.vms.append(name)  # type: ignore[attr-defined]
    job = api.submit("POST", "/v1/vms", {"name": name, "memory_mib": 64}, wait=60)
    assert job["status"] == "succeeded", job
    return name, str(job["node"])


def waiting_reason(api: NubeClient, job_id: str) -> str | None:
    """Why the job waits, as the API says (None: nothing keeps it waiting)."""
    return api.job(job_id).get("waiting")


def containers(n: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [("POST", "/v1/containers", DETACHED)] * n


def vm_infos(name: str, n: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [("GET", f"/v1/vms/{name}", None)] * n


def test_each_service_runs_in_its_node(mesh: Mesh) -> None:
    """The services run in their nodes' namespaces under their node names; Redis (and
    RabbitMQ) listen on the bridge address alone."""
    for name, proc in mesh.procs.items():
        where = subprocess.run(
            ["ip", "netns", "identify", str(proc.pid)], capture_output=True, text=True
        ).stdout.strip()
        expected = "" if name == "redis" else mesh.nodes[name.split(".")[0]].netns
        assert where == expected, (name, where)
    live = Registry(mesh.redis()).live()
    assert {(i.kind, i.node) for i in live} == {
        ("agent", "ctl"),
        *((kind, node) for kind in ("containers", "vms") for node in WORKER_NODES),
    }
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", mesh.redis_port), 2):
        pass
    if mesh.broker_url_override:
        assert urlsplit(mesh.broker_url).hostname == HOST
        port = urlsplit(mesh.broker_url).port
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port or 5672), 2):
            pass


def test_worker_node_cut_off_during_a_burst_then_healed(
    mesh: Mesh, api: NubeClient, report: Report
) -> None:
    """Row 28: while a worker node's link is down, the shared-queue jobs submitted meanwhile
    run on the other node; the jobs pinned to the cut node wait, saying that no live worker
    serves its queue, and run there once the link is back (as do the jobs the node held when
    it was cut). A task the cut node starts during the cut waits for the job store: its replay
    guard's nonce claim waits up to ``CLAIM_PATIENCE_S`` (before, on RabbitMQ, the failed decode
    made Celery ack the message, and the job stayed queued for ever)."""
    vm, cut = define_vm(api)
    other = next(n for n in WORKER_NODES if n != cut)
    since = time.time()
    before = submit_all(api, containers(6))
    mesh.cut(cut)
    cut_at = time.monotonic()
    after = submit_all(api, containers(14))
    pinned = submit_all(api, vm_infos(vm, 3))
    queue = f"vms.{cut}"
    for job_id in pinned:
        waiting = wait_until(partial(waiting_reason, api, job_id), 30, "a waiting reason")
        assert queue in waiting, waiting
        assert api.job(job_id)["status"] == "queued"

    def done_elsewhere() -> list[dict[str, Any]]:
        jobs = records(mesh, before + after).values()
        done = [j for j in jobs if j["status"] in TERMINAL]
        return done if len(done) >= 3 else []

    done_during = wait_until(done_elsewhere, 25, f"jobs to finish on {other}")
    assert {j["node"] for j in done_during} == {other}, done_during
    mesh.heal(cut)
    partition = time.monotonic() - cut_at
    assert partition < LOST_SECONDS, f"the partition lasted {partition:.0f} s"

    healed_at = time.monotonic()
    ids = before + after + pinned
    open_at_heal = [i for i, j in records(mesh, ids).items() if j["status"] not in TERMINAL]
    jobs = all_terminal(mesh, ids, 120)
    for job_id in open_at_heal:
        report(f"  open at the heal: {timeline(jobs[job_id])}")
    label = (
        f"[{broker_of(mesh)}] node {cut} cut {partition:.0f} s, {len(done_during)} jobs done on "
        f"{other} meanwhile, "
        f"all done {time.monotonic() - healed_at:.0f} s after the heal"
    )
    counts = count(jobs, before + after, since, label, report)
    assert counts["lost"] == 0 and counts["duplicates"] == 0
    assert counts["statuses"] == {"succeeded": len(jobs)}, counts
    assert {jobs[i]["node"] for i in pinned} == {cut}


def test_agent_node_cut_off_the_api_keeps_accepting(mesh: Mesh, report: Report) -> None:
    """While the node of the agent (and of the first API) is cut off, the API on another node
    accepts every job (12); they wait in the ingress queue and all run once the node is back."""
    api = client_for(mesh, node="edge")
    try:
        since = time.time()
        mesh.cut("ctl")
        cut_at = time.monotonic()
        ids = submit_all(api, containers(12))
        waiting = wait_until(partial(waiting_reason, api, ids[-1]), 30, "a waiting reason")
        assert "nube.ingress" in waiting, waiting
        assert {j["status"] for j in records(mesh, ids).values()} == {"queued"}
        mesh.heal("ctl")
        partition = time.monotonic() - cut_at
        jobs = all_terminal(mesh, ids, 120)
        label = f"[{broker_of(mesh)}] agent's node cut {partition:.0f} s"
        counts = count(jobs, ids, since, label, report)
        assert counts["lost"] == 0 and counts["duplicates"] == 0
        assert counts["statuses"] == {"succeeded": len(ids)}, counts
    finally:
        mesh.heal("ctl")
        remove_docker_resources(api.tenant)  # type: ignore[attr-defined]


def test_long_partition_of_a_node_running_a_job(
    mesh: Mesh, api: NubeClient, report: Report
) -> None:
    """A node cut for 25 s while it runs a container run that waits for its container. On
    Redis the cut is longer than the reconciler's dead-holder detection (~15 s): the job is
    delivered again, to the other node, while the cut node (which still reaches Docker through
    its socket) finishes its run but cannot record the result. The ended container is kept until
    a result is recorded, so the second delivery collects it. On RabbitMQ the message stays
    unacknowledged on the cut node's connection (well within its heartbeat timeout) and the run
    is recorded there after the heal. Either way: one container, and the job succeeds with its
    output. Then how long the healed node takes to serve again is measured and printed."""
    since = time.time()
    job_id = api.submit("POST", "/v1/containers", {**LONG_RUN})["id"]
    running = wait_until(lambda: records(mesh, [job_id])[job_id].get("node"), 30, "the run")
    mesh.cut(running)
    time.sleep(25)
    mesh.heal(running)
    healed_at = time.time()
    took = serving(mesh, api)  # a probe pinned to each node, sent once every queue is served
    report(
        f"[{broker_of(mesh)}] node {running} serving again {time.time() - healed_at:.1f} s after "
        f"the heal (probes: {', '.join(f'{n} {s:.1f} s' for n, s in sorted(took.items()))})"
    )
    jobs = all_terminal(mesh, [job_id], 90)
    label = f"[{broker_of(mesh)}] node {running} cut 25 s while running a job"
    counts = count(jobs, [job_id], since, label, report)
    assert counts["lost"] == 0 and counts["duplicates"] == 0, counts
    assert jobs[job_id]["status"] == "succeeded", timeline(jobs[job_id])
    assert api.job(job_id)["result"]["exit_code"] == 0
    # The next test must not find the node's last heartbeat from before the cut.
    wait_until(partial(heartbeats_since, mesh, running, healed_at), 60, f"{running}'s heartbeats")


def heartbeats_since(mesh: Mesh, node: str, since: float) -> bool:
    """Every worker of ``node`` has heartbeated since ``since`` (epoch seconds)."""
    beats = {i.kind: i.heartbeat_at for i in Registry(mesh.redis()).live() if i.node == node}
    return set(beats) == set(mesh.layout[node]) and min(beats.values()) > since


def test_worker_node_gone_for_good(mesh: Mesh, api: NubeClient, report: Report) -> None:
    """Row 30: a node killed for good. The jobs pinned to it fail ``node_lost`` once its workers
    have been silent for NUBE_NODE_LOST_SECONDS (and within a scan after that), naming the VM
    and the node; the node is listed lost with its VMs; a new job for its VM fails as soon as
    it is relayed; shared-queue jobs run on the other node."""
    vm, dead = define_vm(api)
    other = next(n for n in WORKER_NODES if n != dead)
    since = time.time()
    mesh.stop_node(dead)
    mesh.cut(dead)
    killed_at = time.monotonic()
    pinned = submit_all(api, vm_infos(vm, 3))
    shared = submit_all(api, containers(6))

    jobs = all_terminal(mesh, pinned, LOST_SECONDS + 40)
    ended_after = time.monotonic() - killed_at
    assert all(j["status"] == "failed" for j in jobs.values()), jobs
    for job in jobs.values():
        error = api.job(job["id"])["error"]
        assert error["code"] == "node_lost" and error["status"] == 503, error
        assert f"VM '{vm}'" in error["message"] and f"node '{dead}'" in error["message"], error
    assert LOST_SECONDS - 5 < ended_after < LOST_SECONDS + 40, ended_after

    lost = lost_nodes(mesh.redis())
    assert set(lost) == {dead}, lost
    assert {"tenant": api.tenant, "name": vm} in lost[dead]["vms"]  # type: ignore[attr-defined]

    started = time.monotonic()
    late = submit_all(api, vm_infos(vm, 1))
    late_job = all_terminal(mesh, late, 30)[late[0]]
    assert late_job["status"] == "failed", late_job
    late_after = time.monotonic() - started

    everything = all_terminal(mesh, pinned + shared + late, 90)
    counts = count(
        everything,
        shared,
        since,
        f"[{broker_of(mesh)}] node {dead} gone: pinned jobs failed after {ended_after:.0f} s "
        f"(NUBE_NODE_LOST_SECONDS={LOST_SECONDS}), a later one after {late_after:.0f} s",
        report,
    )
    assert counts["lost"] == 0 and counts["duplicates"] == 0
    assert all(everything[i]["status"] == "succeeded" for i in shared)
    assert {everything[i]["node"] for i in shared} == {other}


def test_the_network_is_removed(mesh: Mesh, tmp_path: Path) -> None:
    """What the harness made is all gone after ``stop_mesh`` (and ``down`` again is a no-op)."""
    from nube.tools import mesh_net

    assert mesh_net.namespaces() and mesh_net.links()
    mesh.stop_mesh()
    assert mesh_net.namespaces() == [] and mesh_net.links() == []
    assert mesh_net.down() == []
