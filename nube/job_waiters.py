"""Every job waiter of a process woken through one pub/sub connection.

:meth:`nube.jobs.JobStore.wait` on its own opens a pub/sub connection per wait (redis-py closes a
``PubSub``'s connection when it is done with it): a connect, ``HELLO`` and ``AUTH`` for every
read the API answers after waiting. :class:`JobWaiters` keeps one subscriber connection for the
process and a reader thread (a greenlet under gunicorn's gevent workers) that wakes the waiters
of a job when its channel speaks. A waiter subscribes to its job's channel, waits until Redis
confirms the subscription, and only then reads the record: a completion published after that
read always wakes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from nube.redis_client import REDIS_ERRORS

if TYPE_CHECKING:
    from nube.jobs import Job, JobStore

log = logging.getLogger(__name__)

#: How long a waiter waits for Redis to confirm its subscription before reading anyway.
SUBSCRIBE_TIMEOUT = 2.0
#: A waiter reads the record again at least this often, whatever it heard.
RECHECK_SECONDS = 5.0


@dataclass
class _Channel:
    subscribed: threading.Event = field(default_factory=threading.Event)
    wakers: set[threading.Event] = field(default_factory=set)


class JobWaiters:
    """Waits for jobs through one shared subscriber connection (made on first use, again
    after a fork)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._lock = threading.Lock()
        self._channels: dict[str, _Channel] = {}
        self._pubsub: Any = None
        self._pid = 0

    def wait(self, store: JobStore, job_id: str, timeout: float) -> Job | None:
        """Block up to ``timeout`` s until the job is terminal (as :meth:`JobStore.wait`)."""
        deadline = time.monotonic() + timeout
        channel = store.channel(job_id)
        waker = threading.Event()
        entry = self._join(channel, waker)
        try:
            entry.subscribed.wait(min(SUBSCRIBE_TIMEOUT, timeout))
            job = store.find(job_id)  # after the subscription: no completion slips between
            while job is not None and not job.status.terminal:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                waker.wait(min(remaining, RECHECK_SECONDS))
                waker.clear()
                job = store.find(job_id)
            return job
        finally:
            self._leave(channel, waker)

    def close(self) -> None:
        """Stop the reader, which closes the subscriber connection within a second (a new wait
        opens them again)."""
        with self._lock:
            self._pubsub = None
            self._channels = {}

    # --- the shared subscription --------------------------------------------------------------
    def _join(self, channel: str, waker: threading.Event) -> _Channel:
        with self._lock:
            self._ensure_reader()
            entry = self._channels.get(channel)
            if entry is None:
                entry = self._channels[channel] = _Channel()
                self._send("subscribe", channel)
            entry.wakers.add(waker)
            return entry

    def _leave(self, channel: str, waker: threading.Event) -> None:
        with self._lock:
            entry = self._channels.get(channel)
            if entry is None:
                return
            entry.wakers.discard(waker)
            if not entry.wakers:
                del self._channels[channel]
                self._send("unsubscribe", channel)

    def _send(self, command: str, channel: str) -> None:
        with contextlib.suppress(*REDIS_ERRORS):  # the reader reconnects and resubscribes
            getattr(self._pubsub, command)(channel)

    def _ensure_reader(self) -> None:
        if self._pubsub is not None and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._channels = {}
        self._pubsub = self.redis.pubsub()
        # subscribe to a channel of our own first, so that the connection exists and the reader
        # has something to read before any waiter comes
        self._pubsub.subscribe(f"nube:waiters:{os.getpid()}")
        threading.Thread(target=self._read, args=(self._pubsub,), daemon=True).start()

    def _read(self, pubsub: Any) -> None:
        try:
            while pubsub is self._pubsub:
                try:
                    message = pubsub.get_message(timeout=1.0)
                except REDIS_ERRORS as e:
                    log.warning("job waiters lost their subscription (%s); reconnecting", e)
                    time.sleep(0.5)
                    self._wake_all()  # they read their records again
                    continue
                if message is not None:
                    self._dispatch(message)
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                pubsub.close()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, channel = message.get("type"), message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        with self._lock:
            entry = self._channels.get(str(channel))
            if entry is None:
                return
            if kind == "subscribe":
                entry.subscribed.set()
            elif kind == "message":
                for waker in entry.wakers:
                    waker.set()

    def _wake_all(self) -> None:
        with self._lock:
            for entry in self._channels.values():
                entry.subscribed.set()
                for waker in entry.wakers:
                    waker.set()
