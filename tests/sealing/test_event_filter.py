"""Which Celery events nube publishes: all but a relay task's ``task-started``."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from nube.sealing import celery_hooks
from nube.sealing.keyring import Keyring
from nube.sealing.replay import RedisNonceStore, ReplayGuard
from nube.sealing.sealer import Sealer
from nube.sealing.serializer import register, unregister


@pytest.fixture
def app(redis_url: str, ring: Keyring, r: redis.Redis) -> Iterator[Celery]:
    guard = ReplayGuard(RedisNonceStore(r), window_s=600)
    register(Sealer(ring), guard)
    app = Celery("t", broker=redis_url, set_as_current=False)
    app.conf.update(worker_send_task_events=True)
    celery_hooks.install(app, guard, on_refused=lambda _: None)
    yield app
    celery_hooks.uninstall(app)
    unregister()


def test_a_relay_tasks_started_event_is_not_published(app: Celery) -> None:
    seen: list[tuple[str, str]] = []
    ready = threading.Event()

    def listen() -> None:
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(
                conn, handlers={"*": lambda e: seen.append((e["type"], e.get("uuid", "")))}
            )
            ready.set()
            with contextlib.suppress(TimeoutError):
                for _ in receiver.consume(limit=None, timeout=3, wakeup=False):
                    if ("task-succeeded", "job-1") in seen:
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    ready.wait(5)
    time.sleep(0.5)
    with app.connection_for_write() as conn:
        dispatcher = app.events.Dispatcher(conn, buffer_group=["task"])
        sent: list[dict[str, Any]] = [
            {"type": "task-received", "uuid": "relay-job-1", "name": "agent.relay"},
            {"type": "task-started", "uuid": "relay-job-1"},
            {"type": "task-succeeded", "uuid": "relay-job-1"},
            {"type": "task-received", "uuid": "job-1", "name": "vms.list"},
            {"type": "task-started", "uuid": "job-1"},
        ]
        for event in sent:
            dispatcher.send(**event)
        dispatcher.flush()  # a buffered batch, as a worker's event loop sends them
        dispatcher.send(type="task-started", uuid="relay-job-2")  # and one on its own
        dispatcher.send(type="task-succeeded", uuid="job-1")
        dispatcher.flush()
    listener.join(15)
    assert seen == [
        ("task-received", "relay-job-1"),
        ("task-succeeded", "relay-job-1"),
        ("task-received", "job-1"),
        ("task-started", "job-1"),
        ("task-succeeded", "job-1"),
    ]
