"""The reconciler: republishes accepted jobs whose messages were lost.

Redis keeps every acknowledged write (AOF ``appendfsync always``), yet a message can still
vanish: a task running in the agent or a worker when the broker connection died is neither
acknowledged nor requeued by Celery. The job record and its kept relay request survive, so the
agent looks, every ``NUBE_RECONCILE_SECONDS``, for jobs that are not terminal and whose messages
are in no queue and not held unacknowledged; a job found so on two scans in a row, and unchanged
for a while, is relayed again (its effects are keyed by the job id, so a second delivery makes no
second resource). One agent reconciles at a time.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

import redis
from celery import Celery

from nube.broker import relay_task_id
from nube.jobs import Job, JobStore
from nube.publish import publish_request

log = logging.getLogger(__name__)
LOCK = "nube:reconciler"


def message_ids(client: redis.Redis) -> set[str]:
    """Task ids of every message in a queue (a Redis list) or held unacknowledged."""
    ids: set[str] = set()
    for queue in client.scan_iter(count=500, _type="list"):
        ids.update(_ids(client.lrange(queue, 0, -1)))
    ids.update(_ids(client.hvals("unacked"), unacked=True))
    return ids


def _ids(raws: Iterable[str | bytes], unacked: bool = False) -> Iterable[str]:
    for raw in raws:
        try:
            message = json.loads(raw)
            yield str((message[0] if unacked else message)["headers"]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            continue


class Reconciler(threading.Thread):
    """Scans for lost jobs until stopped."""

    def __init__(self, app: Celery, jobs: JobStore, interval: float) -> None:
        super().__init__(name="nube-reconciler", daemon=True)
        self.app, self.jobs, self.interval = app, jobs, interval
        self.suspects: set[str] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                if self.jobs.redis.set(LOCK, "1", nx=True, ex=max(1, int(self.interval))):
                    self.scan()
            except redis.RedisError as e:
                log.warning(
                    "reconciler: Redis unavailable (%s); next scan in %s s", e, self.interval
                )

    def scan(self) -> list[str]:
        """One pass; returns the ids of the jobs it republished."""
        present = message_ids(self.jobs.redis)
        lost = {i for i in self.jobs.pending_ids() if self._lost(i, present)}
        republish, self.suspects = lost & self.suspects, lost - self.suspects
        for job_id in sorted(republish):
            self._republish(job_id)
        return sorted(republish)

    def _lost(self, job_id: str, present: set[str]) -> bool:
        if job_id in present or relay_task_id(job_id) in present:
            return False
        job = self.jobs.find(job_id)
        return job is not None and not job.status.terminal and self._quiet(job)

    def _quiet(self, job: Job) -> bool:
        last = datetime.fromisoformat(job.history[-1].at.replace("Z", "+00:00"))
        return (datetime.now(UTC) - last).total_seconds() > 2 * self.interval

    def _republish(self, job_id: str) -> None:
        job, request = self.jobs.find(job_id), self.jobs.kept_request(job_id)
        if job is None or request is None:
            return
        log.warning("job %s was accepted but its message is lost; relaying it again", job_id)
        self.jobs.update(job_id, "republished", "its message was lost; relayed again")
        publish_request(self.app, self.jobs, job, request)

    def stop(self) -> None:
        self._stop_event.set()
