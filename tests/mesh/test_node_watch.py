"""The agent's node watch on a real Redis, without a mesh: which jobs it fails, and when."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from agents.node_watch import NodeWatch
from nube.jobs import Job, JobStatus, JobStore, now_iso
from nube.nodes import LAST_SEEN, lost_nodes
from nube.placement import Placements
from nube.registry import PREFIX, Registry, ServiceInstance
from nube.tools.devstack import Stack

LIMIT = 30


@pytest.fixture
def r(redis_only: Stack) -> Iterator[redis.Redis]:
    client = redis_only.redis()
    yield client
    client.flushdb()


def beat(r: redis.Redis, node: str, at: float, kind: str = "vms") -> None:
    """A worker of ``node`` whose last heartbeat was at ``at`` (its key not yet expired)."""
    inst = ServiceInstance(
        name=f"{kind}.{uuid.uuid4().hex[:8]}@{node}",
        kind=kind,
        node=node,
        queues=[kind, f"{kind}.{node}"],
        started_at=at,
        heartbeat_at=at,
    )
    Registry(r).announce(inst)
    inst.heartbeat_at = at
    r.set(PREFIX + inst.name, inst.model_dump_json(), ex=10)


def job(jobs: JobStore, queue: str, target: str = "web", status: str = "queued") -> str:
    made = Job(
        id=str(uuid.uuid4()),
        operation="vms.info",
        tenant="t",
        queue=queue,
        target=target,
        submitted_at=now_iso(),
        status=JobStatus(status),
        node=queue.partition(".")[2] or None,
    )
    jobs.create(made)
    jobs.redis.set(jobs.request_key(made.id), "kept")  # accepted, not ended
    return made.id


def test_the_jobs_pinned_to_a_silent_node_fail_node_lost(r: redis.Redis) -> None:
    jobs = JobStore(r)
    now = time.time()
    beat(r, "gone", now - LIMIT - 5)
    beat(r, "alive", now - 1)
    Placements(r).record("vms", "t", "web", "gone")
    queued, running = job(jobs, "vms.gone"), job(jobs, "vms.gone", status="running")
    shared, elsewhere = job(jobs, "vms"), job(jobs, "vms.alive")

    failed = NodeWatch(jobs, LIMIT).scan(now)

    assert sorted(failed) == sorted([queued, running])
    for job_id, outcome in ((queued, "did not run"), (running, "outcome is unknown")):
        error = jobs.get(job_id).error
        assert error is not None and error.code == "node_lost" and error.status == 503
        assert "VM 'web' is on node 'gone'" in error.message and outcome in error.message
        assert f"NUBE_NODE_LOST_SECONDS={LIMIT}" in error.message
    assert jobs.get(shared).status == JobStatus.QUEUED
    assert jobs.get(elsewhere).status == JobStatus.QUEUED
    lost = lost_nodes(r)
    assert set(lost) == {"gone"} and lost["gone"]["vms"] == [{"tenant": "t", "name": "web"}]


def test_a_node_is_remembered_after_its_keys_expire_and_forgiven_when_back(
    r: redis.Redis,
) -> None:
    jobs = JobStore(r)
    watch = NodeWatch(jobs, LIMIT)
    now = time.time()
    beat(r, "n1", now)
    assert watch.scan(now) == [] and lost_nodes(r) == {}
    r.delete(*r.keys(PREFIX + "*"))  # its heartbeat keys expired: the node is silent
    pinned = job(jobs, "vms.n1")
    assert watch.scan(now + LIMIT - 1) == []  # silent, not yet for long enough
    assert watch.scan(now + LIMIT + 1) == [pinned]
    assert set(lost_nodes(r)) == {"n1"} and float(r.hget(LAST_SEEN, "n1") or 0) == now

    beat(r, "n1", now + LIMIT + 2)
    watch.scan(now + LIMIT + 3)
    assert lost_nodes(r) == {}
    assert jobs.get(pinned).status == JobStatus.FAILED  # a failed job stays failed
