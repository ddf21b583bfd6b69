"""Node liveness: the agent declares a node lost when its workers have all been silent for
``NUBE_NODE_LOST_SECONDS``, and fails the jobs pinned to it.

Workers heartbeat into the registry (:mod:`nube.registry`, a key with a TTL per instance). The
watch copies the newest heartbeat of each node into ``nube.nodes.LAST_SEEN``, so a node stays
known after its keys expired (and across agent restarts). A node not heard from for longer than
the setting is lost: it is listed in ``nube.nodes.LOST`` (read with
:func:`nube.nodes.lost_nodes`) with the VMs placed on it, and every job waiting on, or running
from, one of its pinned queues (``<service>.<node>``) fails ``node_lost``, within one scan. A
partition shorter than the setting only delays those jobs: they wait in their queue (the API says
no live worker serves it) and run when the node is back. A node that heartbeats again leaves the
lost list; a job already failed stays failed, and its message, if the node still holds it, is
skipped by the worker (terminal jobs are never run).

Jobs on shared queues are left alone: any other node may take them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutdown

from nube.catalog import CATALOG
from nube.errors import NubeError
from nube.jobs import Job, JobStatus, JobStore
from nube.nodes import LAST_SEEN, LOST, lost_nodes
from nube.placement import Placements
from nube.registry import Registry
from nube.settings import Settings

log = logging.getLogger(__name__)

LOCK = "nube:node-watch"
#: How an error names the target of a pinned job, by service.
KINDS = {"vms": "VM", "containers": "container"}


class NodeLost(NubeError):
    code = "node_lost"
    status = 503
    title = "Node lost"
    template = (
        "{what} is on node '{node}', which is unreachable: none of its workers has "
        "heartbeated for {silent} s (NUBE_NODE_LOST_SECONDS={limit}); {outcome}"
    )


def pinned_node(job: Job) -> str | None:
    """The node whose own queue (``<service>.<node>``) the job was routed to, if any."""
    service, dot, node = job.queue.partition(".")
    return node if dot and service in CATALOG.services() else None


class NodeWatch(threading.Thread):
    """Scans the registry every few seconds until stopped (one agent at a time)."""

    def __init__(self, jobs: JobStore, limit: int) -> None:
        super().__init__(name="nube-node-watch", daemon=True)
        self.jobs, self.limit = jobs, limit
        self.redis: redis.Redis = jobs.redis
        self.interval = max(1.0, min(10.0, limit / 4))
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                if self.redis.set(LOCK, "1", nx=True, px=int(self.interval * 1000)):
                    self.scan()
            except redis.RedisError as e:
                log.warning("node watch: Redis unavailable (%s)", e)

    def stop(self) -> None:
        self._stop_event.set()

    def scan(self, now: float | None = None) -> list[str]:
        """One pass: record heartbeats, declare the silent nodes lost, fail their pinned jobs;
        returns the ids of the jobs it failed."""
        now = time.time() if now is None else now
        seen = self._record_heartbeats()
        lost = {node: at for node, at in seen.items() if now - at > self.limit}
        self._update_lost(lost, now)
        if not lost:
            return []
        failed = []
        for job_id in list(self.jobs.pending_ids()):
            job = self.jobs.peek(job_id)  # what the job is; its sealed result is not needed
            node = pinned_node(job) if job else None
            if job and node in lost and not job.status.terminal:
                assert node is not None
                if self._fail(job, node, round(now - lost[node])):
                    failed.append(job_id)
        return failed

    def _record_heartbeats(self) -> dict[str, float]:
        seen = {str(k): float(v) for k, v in self.redis.hgetall(LAST_SEEN).items()}
        for inst in Registry(self.redis).live():
            if inst.kind in CATALOG.services() and inst.heartbeat_at > seen.get(inst.node, 0):
                seen[inst.node] = inst.heartbeat_at
                self.redis.hset(LAST_SEEN, inst.node, str(inst.heartbeat_at))
        return seen

    def _update_lost(self, lost: dict[str, float], now: float) -> None:
        known = lost_nodes(self.redis)
        for node in set(known) - set(lost):
            self.redis.hdel(LOST, node)
            log.warning("node %s is back", node)
        for node, at in lost.items():
            record = {
                "last_seen": at,
                "declared_at": known.get(node, {}).get("declared_at", now),
                "vms": self._vms_on(node),
            }
            self.redis.hset(LOST, node, json.dumps(record))
            if node not in known:
                log.warning("node %s lost: no heartbeat for %.0f s", node, now - at)

    def _vms_on(self, node: str) -> list[dict[str, str]]:
        on_node = Placements(self.redis).on_node("vms", node)
        return [{"tenant": tenant, "name": name} for tenant, name in on_node]

    def _fail(self, job: Job, node: str, silent: int) -> bool:
        kind = KINDS.get(job.operation.split(".")[0], "the resource")
        what = f"{kind} '{job.target}'" if job.target else f"the target of {job.operation}"
        outcome = (
            "the job did not run"
            if job.status == JobStatus.QUEUED
            else "the job was running there: its outcome is unknown"
        )
        error = NodeLost(what=what, node=node, silent=silent, limit=self.limit, outcome=outcome)
        done = self.jobs.fail(job.id, error.to_dict()) is not None
        if done:
            log.warning("job %s failed: node %s lost", job.id, node)
        return done


def watch_nodes(jobs: JobStore, settings: Settings) -> None:
    """Run a :class:`NodeWatch` in this Celery worker (the agent) while it serves."""
    if not settings.node_lost_seconds:
        return

    @worker_ready.connect(weak=False)
    def start(**_: Any) -> None:
        watch = NodeWatch(jobs, settings.node_lost_seconds)
        watch.start()
        worker_shutdown.connect(lambda **_: watch.stop(), weak=False)
