"""Live services: each worker and agent announces itself with a heartbeat key that expires.

A service that stops heartbeating disappears within :data:`HEARTBEAT_TTL` seconds, so the API can
tell a client that no live worker serves the queue its job waits on. The names of announced
services are kept in one set (:data:`NAMES`), so reading who is live costs two commands
whatever else Redis holds (a key-space ``SCAN`` would walk every job record); Redis's own
expiry decides liveness, so hosts need not agree on the time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutdown
from pydantic import BaseModel, Field

from nube.redis_client import connect
from nube.settings import Settings

HEARTBEAT_INTERVAL = 3.0
HEARTBEAT_TTL = 10
PREFIX = "nube:service:"
NAMES = "nube:services"


class ServiceInstance(BaseModel):
    """One running agent or worker."""

    name: str
    kind: str = Field(description="`agent`, `containers` or `vms`")
    node: str
    queues: list[str]
    driver: str | None = None
    backend_version: str | None = None
    capacity: int = 1
    started_at: float
    heartbeat_at: float = 0.0


class Registry:
    """Reads and writes service heartbeats in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._served: tuple[float, set[str]] | None = None

    def announce(self, instance: ServiceInstance) -> None:
        instance.heartbeat_at = time.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(PREFIX + instance.name, instance.model_dump_json(), ex=HEARTBEAT_TTL)
        pipe.sadd(NAMES, instance.name)
        pipe.execute()

    def withdraw(self, name: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(PREFIX + name)
        pipe.srem(NAMES, name)
        pipe.execute()

    def live(self) -> list[ServiceInstance]:
        names = sorted(str(n) for n in self.redis.smembers(NAMES))
        raws = self.redis.mget([PREFIX + n for n in names]) if names else []
        gone = [n for n, raw in zip(names, raws, strict=True) if not raw]
        if gone:  # expired heartbeats: forget the names (announcing again re-adds them)
            self.redis.srem(NAMES, *gone)
        return [ServiceInstance.model_validate_json(r) for r in raws if r]

    def served_queues(self, max_age: float = 0.0) -> set[str]:
        """The queues live services consume; an answer read at most ``max_age`` seconds ago
        may be given again (a job's representation says whether anyone serves its queue: a
        second's staleness is far below the heartbeat's own ``HEARTBEAT_TTL``)."""
        now = time.monotonic()
        if max_age and self._served is not None and now - self._served[0] <= max_age:
            return set(self._served[1])
        served = {q for inst in self.live() for q in inst.queues}
        self._served = (now, served)
        return set(served)


class Heartbeat(threading.Thread):
    """Announces an instance every few seconds until stopped; with ``queues``, each beat
    names the queues that callable gives (None: keep the last ones)."""

    def __init__(
        self,
        registry: Registry,
        instance: ServiceInstance,
        queues: Callable[[], list[str] | None] | None = None,
    ) -> None:
        super().__init__(name=f"heartbeat-{instance.name}", daemon=True)
        self.registry = registry
        self.instance = instance
        self._queues = queues
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            current = self._queues() if self._queues is not None else None
            if current is not None:
                self.instance.queues = current
            with contextlib.suppress(redis.RedisError):  # Redis restarting: beat again next time
                self.registry.announce(self.instance)
            self._stop_event.wait(HEARTBEAT_INTERVAL)

    def stop(self) -> None:
        self._stop_event.set()
        with contextlib.suppress(redis.RedisError):
            self.registry.withdraw(self.instance.name)


def describe(instances: list[ServiceInstance]) -> list[dict[str, Any]]:
    return [i.model_dump(mode="json") for i in instances]


def heartbeat_while_serving(
    settings: Settings, describe_self: Callable[[], ServiceInstance]
) -> None:
    """Announce this Celery worker process once it is ready, until it shuts down."""

    @worker_ready.connect(weak=False)
    def start(sender: Any = None, **_: Any) -> None:
        registry = Registry(connect(settings))
        heartbeat = Heartbeat(registry, describe_self(), lambda: consumed_queues(sender))
        heartbeat.start()
        worker_shutdown.connect(lambda **_: heartbeat.stop(), weak=False)


def consumed_queues(consumer: Any) -> list[str] | None:
    """The queues Celery's worker ``consumer`` takes messages from now (a ``cancel_consumer``
    or ``add_consumer`` broadcast changes them); None while it has no task consumer."""
    task_consumer = getattr(consumer, "task_consumer", None)
    if task_consumer is None:
        return None
    return sorted(str(q.name) for q in list(task_consumer.queues))
