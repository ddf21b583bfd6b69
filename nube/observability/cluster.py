"""What is the same for the whole cluster, read from Redis when Prometheus scrapes the API.

Queue depths and the age of each queue's oldest message, live consumers per queue (the
registry's heartbeats), jobs by status (counts the job store's scripts keep) and the audit
chain's length: a handful of commands per scrape, none on
the message path. The oldest message of a queue is the last of its Redis list (kombu pushes on
the left and pops on the right); its age is the time since its job last changed (submitted,
relayed or retried), read from the job record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from nube.audit.log import HEAD
from nube.broker import INGRESS_QUEUE, job_of_task
from nube.catalog import CATALOG
from nube.jobs import JobStore
from nube.registry import Registry


class ClusterCollector(Collector):
    """Gauges of the queues, consumers and audit chain, read at each scrape."""

    def __init__(self, client: redis.Redis, jobs: JobStore, registry: Registry) -> None:
        self.redis, self.jobs, self.registry = client, jobs, registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        consumers: dict[str, int] = {}
        for instance in self.registry.live():
            for queue in instance.queues:
                consumers[queue] = consumers.get(queue, 0) + 1
        queues = sorted({INGRESS_QUEUE, *(op.queue for op in CATALOG), *consumers})
        depth = GaugeMetricFamily(
            "nube_queue_messages", "Messages waiting in a queue", None, ["queue"]
        )
        age = GaugeMetricFamily(
            "nube_queue_oldest_message_age_seconds",
            "Age of a queue's oldest waiting message (0 when empty)",
            None,
            ["queue"],
        )
        served = GaugeMetricFamily(
            "nube_queue_consumers", "Live services consuming a queue", None, ["queue"]
        )
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
            pipe.lindex(queue, -1)
        answers = pipe.execute()
        now = datetime.now().astimezone()
        for i, queue in enumerate(queues):
            length, oldest = int(answers[2 * i]), answers[2 * i + 1]
            depth.add_metric([queue], length)
            age.add_metric([queue], self._age(oldest, now) if length else 0.0)
            served.add_metric([queue], consumers.get(queue, 0))
        limit = GaugeMetricFamily(
            "nube_queue_time_limit_seconds",
            "The longest time limit of the operations a queue carries (a pinned queue "
            "``<service>.<node>`` has its service's)",
            None,
            ["queue"],
        )
        for queue in queues:
            if (seconds := time_limit_of(queue)) is not None:
                limit.add_metric([queue], seconds)
        yield from (depth, age, served, limit)
        jobs = GaugeMetricFamily(
            "nube_jobs",
            "Jobs by status: queued and running now; the terminal ones, every job that ended "
            "since the counts began",
            None,
            ["status"],
        )
        for status, count in self.jobs.status_counts().items():
            jobs.add_metric([status], count)
        yield jobs
        head = self.redis.hget(HEAD, "seq")
        audit = GaugeMetricFamily(
            "nube_audit_records", "Records in the audit chain (its head's sequence number)"
        )
        audit.add_metric([], float(_int(head)))
        yield audit

    def _age(self, raw: Any, now: datetime) -> float:
        """Seconds since the job of the message ``raw`` last changed (0 when unknown)."""
        try:
            task_id = json.loads(raw)["headers"]["id"]
            job = self.jobs.peek(job_of_task(str(task_id))[0])
        except (ValueError, KeyError, TypeError):
            return 0.0
        if job is None:
            return 0.0
        times = [job.submitted_at, *(event.at for event in job.history)]
        last = max(datetime.fromisoformat(t) for t in times if t)
        return max(0.0, (now - last).total_seconds())


def time_limit_of(queue: str) -> float | None:
    """The longest time limit of the catalog operations sent to ``queue`` (or to the shared
    queue a pinned queue belongs to)."""
    limits = [op.time_limit for op in CATALOG if queue in (op.queue, *_pinned(op.queue, queue))]
    return float(max(limits)) if limits else None


def _pinned(shared: str, queue: str) -> tuple[str, ...]:
    return (queue,) if queue.startswith(shared + ".") else ()


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
