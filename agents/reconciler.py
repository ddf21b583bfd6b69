"""The reconciler: republishes accepted jobs whose messages were lost, and (on Redis) hands a
dead worker's unacknowledged messages back to their queues without waiting for the visibility
timeout.

Lost messages (Redis). Redis keeps every acknowledged write (AOF ``appendfsync always``), yet a
message can still vanish: a task running in the agent or a worker when the broker connection
died is neither acknowledged nor requeued by Celery. The job record and its kept relay request
survive, so the agent looks, every ``NUBE_RECONCILE_SECONDS``, for jobs that are not terminal and
whose messages are in no queue and not held unacknowledged; a job found so on two scans in a row,
and unchanged for a while, is relayed again (its effects are keyed by the job id, so a second
delivery makes no second resource).

Dead holders (Redis). kombu's Redis transport keeps a delivered, unacknowledged message in the
``unacked`` hash and puts it back on its queue only once ``NUBE_VISIBILITY_TIMEOUT`` (an hour by
default) has passed: a worker killed cold leaves its job stuck that long. Every
:data:`SWEEP_SECONDS` the reconciler asks every service over the sealed control channel which of
those messages it holds (Celery's ``query_task``: active, reserved or scheduled). A message that
no service that answered holds, and whose queue no live but silent service serves (live: its
heartbeat key has not expired, :mod:`nube.registry`), for :data:`ORPHAN_SECONDS`, is held by a
process that is dead: it goes back to its queue (kombu's own ``restore_by_tag``). A service that
is merely slow still heartbeats; one that heartbeats but does not answer in time keeps every
message of the queues it serves where it is, so a slow worker's message is never handed to
another worker.

On RabbitMQ neither is needed, nor could be seen from Redis: the broker holds each message until
its consumer acknowledges it and requeues it as soon as that consumer's channel closes (a dead
worker's job is redelivered at once), and publisher confirms make a publish either stored or an
error. The reconciler does nothing there.

One agent reconciles at a time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from celery import Celery

from nube.broker import relay_task_id
from nube.jobs import Job, JobStore
from nube.publish import publish_request
from nube.registry import Registry, ServiceInstance
from nube.settings import AMQP_SCHEMES

log = logging.getLogger(__name__)
LOCK = "nube:reconciler"
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"
#: How often the dead-holder sweep runs (at most ``NUBE_RECONCILE_SECONDS``).
SWEEP_SECONDS = 2.0
#: How long the sweep waits for the services' answers.
QUERY_TIMEOUT = 1.5
#: How long a message must have been held by no live service before it is restored.
ORPHAN_SECONDS = 4.0


def message_ids(client: redis.Redis) -> set[str]:
    """Task ids of every message in a queue (a Redis list) or held unacknowledged."""
    ids: set[str] = set()
    for queue in client.scan_iter(count=500, _type="list"):
        ids.update(_ids(client.lrange(queue, 0, -1)))
    ids.update(_ids(client.hvals(UNACKED), unacked=True))
    return ids


def _ids(raws: Iterable[str | bytes], unacked: bool = False) -> Iterable[str]:
    for raw in raws:
        try:
            message = json.loads(raw)
            yield str((message[0] if unacked else message)["headers"]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            continue


@dataclass(frozen=True)
class Delivery:
    """A message delivered to some consumer and not acknowledged yet (kombu's Redis QoS), and
    the queue it came from (its routing key: nube's queues and their exchanges share a name)."""

    tag: str
    task_id: str
    queue: str


def unacked_deliveries(client: redis.Redis) -> list[Delivery]:
    out = []
    for tag, raw in client.hgetall(UNACKED).items():
        try:
            _, exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        for task_id in _ids([raw], unacked=True):
            out.append(Delivery(_text(tag), task_id, str(routing_key or exchange or "")))
    return out


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def held_by_the_living(app: Celery, task_ids: list[str]) -> tuple[set[str], set[str]]:
    """Which of ``task_ids`` the services hold (active, reserved or scheduled), asked of all of
    them (also one too new to heartbeat yet), and the names of those that answered within
    :data:`QUERY_TIMEOUT`."""
    replies = app.control.inspect(timeout=QUERY_TIMEOUT).query_task(*task_ids) or {}
    held = {task_id for reply in replies.values() for task_id in (reply or {})}
    return held, set(replies)


def orphaned(
    deliveries: list[Delivery], held: set[str], answered: set[str], live: list[ServiceInstance]
) -> list[Delivery]:
    """The deliveries no live service can hold: none that answered holds it, and none that is
    live (its heartbeat key has not expired) but silent serves its queue (a delivery from an
    unknown queue waits while any live service is silent)."""
    silent = [i for i in live if i.name not in answered]
    silent_queues = {q for i in silent for q in i.queues}
    return [
        d
        for d in deliveries
        if d.task_id not in held and d.queue not in silent_queues and (d.queue or not silent)
    ]


class Reconciler(threading.Thread):
    """Scans for lost jobs and dead holders until stopped."""

    def __init__(self, app: Celery, jobs: JobStore, interval: float) -> None:
        super().__init__(name="nube-reconciler", daemon=True)
        self.app, self.jobs, self.interval = app, jobs, interval
        self.on_redis = not str(app.conf.broker_url or "").startswith(AMQP_SCHEMES)
        self.tick = min(interval, SWEEP_SECONDS)
        self.suspects: set[str] = set()
        self.orphans: dict[Delivery, float] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        if not self.on_redis:
            log.info("reconciler: the broker is RabbitMQ, which requeues for itself; idle")
            return
        next_scan = time.monotonic() + self.interval
        while not self._stop_event.wait(self.tick):
            try:
                if not self.jobs.redis.set(LOCK, "1", nx=True, ex=max(1, int(self.tick))):
                    continue
                self.sweep()
                if time.monotonic() >= next_scan:
                    next_scan = time.monotonic() + self.interval
                    self.scan()
            except redis.RedisError as e:
                log.warning("reconciler: Redis unavailable (%s); next try in %s s", e, self.tick)

    # --- dead holders ---------------------------------------------------------------------------
    def sweep(self) -> list[str]:
        """One pass over the unacknowledged messages; returns the tags it restored."""
        deliveries = unacked_deliveries(self.jobs.redis)
        if not deliveries:
            self.orphans = {}
            return []
        live = Registry(self.jobs.redis).live()
        try:
            held, answered = held_by_the_living(self.app, sorted({d.task_id for d in deliveries}))
        except Exception as e:  # the control channel is down: decide nothing
            log.warning("reconciler: cannot ask the live services what they hold: %s", e)
            self.orphans = {}
            return []
        now = time.monotonic()
        orphans = orphaned(deliveries, held, answered, live)
        self.orphans = {d: self.orphans.get(d, now) for d in orphans}
        restore = sorted(
            (d for d, since in self.orphans.items() if now - since >= ORPHAN_SECONDS),
            key=lambda d: d.tag,
        )
        for delivery in restore:
            self._restore(delivery)
        return [d.tag for d in restore]

    def _restore(self, delivery: Delivery) -> None:
        log.warning(
            "message %s (task %s) is held by no live service: its consumer died; requeued",
            delivery.tag,
            delivery.task_id,
        )
        with self.app.connection_for_write() as conn:  # its transport and options
            conn.default_channel.qos.restore_by_tag(delivery.tag)
        self.orphans.pop(delivery, None)

    # --- lost messages --------------------------------------------------------------------------
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
