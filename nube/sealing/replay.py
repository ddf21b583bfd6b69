"""The replay guard: a sealed message is admitted while fresh, and not again once its task
finished.

Every envelope carries its sealing time and a random 96-bit nonce (:mod:`nube.sealing.sealer`).
The guard refuses an envelope older than the window (or from the future) and keeps each nonce
in a :class:`NonceStore` (Redis in production), ``open`` until its task finishes, then
``done``; a copy of a finished message is refused as replayed. It is asked only about
envelopes the sealer has already authenticated.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nube.errors import MessageExpired, MessageReplayed
from nube.sealing.sealer import Clock, Header, header_ids

#: Seconds a nonce claim waits for an unreachable Redis (retrying each second) before it fails.
#: A worker's node cut off for a moment must not lose the message it was starting: a claim that
#: fails makes kombu's DecodeError, and Celery acknowledges the message of a failed task. Below
#: the shortest operation's soft time limit (26 s), which also bounds a decode in a pool child.
CLAIM_PATIENCE_S = 15.0


class NonceState(StrEnum):
    OPEN = "open"
    """Seen, its job not finished: a redelivery by the broker is let through."""
    DONE = "done"
    """Its task finished: any further copy is a replay."""


class NonceStore(Protocol):
    """Where seen nonces are kept, with expiry."""

    def claim(self, nonce: str, ttl_s: int) -> NonceState | None:
        """Record ``nonce`` as OPEN unless present; return the state it already had, if any."""

    def finish(self, nonce: str, ttl_s: int) -> None:
        """Record ``nonce`` as DONE."""


class MemoryNonceStore:
    """A dict-backed :class:`NonceStore` for tests and single-process use."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self.entries: dict[str, tuple[NonceState, float]] = {}

    def claim(self, nonce: str, ttl_s: int) -> NonceState | None:
        now = self._clock()
        entry = self.entries.get(nonce)
        if entry is not None and entry[1] > now:
            return entry[0]
        self.entries[nonce] = (NonceState.OPEN, now + ttl_s)
        return None

    def finish(self, nonce: str, ttl_s: int) -> None:
        self.entries[nonce] = (NonceState.DONE, self._clock() + ttl_s)


class RedisNonceStore:
    """A :class:`NonceStore` in Redis: ``SET key open NX EX ttl``; ``SET key done EX ttl``."""

    def __init__(self, redis: Any, prefix: str = "nube:nonce:") -> None:
        self._redis = redis
        self._prefix = prefix

    def claim(self, nonce: str, ttl_s: int) -> NonceState | None:
        """The nonce's state before this claim (None: new); waits up to
        :data:`CLAIM_PATIENCE_S` for Redis to be reachable."""
        deadline = time.monotonic() + CLAIM_PATIENCE_S
        while True:
            try:
                return self._claim(nonce, ttl_s)
            except (RedisConnectionError, RedisTimeoutError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)

    def _claim(self, nonce: str, ttl_s: int) -> NonceState | None:
        key = self._prefix + nonce
        if self._redis.set(key, NonceState.OPEN.value, nx=True, ex=ttl_s):
            return None
        value = self._redis.get(key)
        if value is None:  # expired between the two calls: treat as new
            return self._claim(nonce, ttl_s)
        return NonceState(value.decode() if isinstance(value, bytes) else value)

    def finish(self, nonce: str, ttl_s: int) -> None:
        self._redis.set(self._prefix + nonce, NonceState.DONE.value, ex=ttl_s)


class ReplayGuard:
    """Refuses messages older than the window (or from the future) and finished ones again.

    A message is *admitted* if it is fresh and its nonce is new or still OPEN: the Redis
    transport redelivers the very same bytes after a worker crash (acks_late), and RabbitMQ
    requeues a message a task rejected, so a seen-but-unfinished nonce must pass (the pool runs
    the body its consumer opened: :class:`nube.sealing.celery_hooks.SealedRequest`). When its task
    finishes, :meth:`complete` marks the nonce DONE and any later copy is
    :class:`~nube.errors.MessageReplayed`. Records expire after the window plus skew, when the
    window check alone refuses the message.
    """

    def __init__(
        self, store: NonceStore, window_s: int = 86400, skew_s: int = 300, clock: Clock = time.time
    ) -> None:
        self.store = store
        self.window_s = window_s
        self.skew_s = skew_s
        self._clock = clock

    @property
    def ttl_s(self) -> int:
        return self.window_s + self.skew_s

    def check_fresh(self, header: Header, window_s: int | None = None) -> None:
        """Raise :class:`MessageExpired` outside ``[now - window, now + skew]``."""
        window_s = self.window_s if window_s is None else window_s
        age_ms = int(self._clock() * 1000) - header.ts
        if age_ms > window_s * 1000 or -age_ms > self.skew_s * 1000:
            raise MessageExpired(
                age_s=round(age_ms / 1000), window_s=window_s, **header_ids(header)
            )

    def admit(self, header: Header) -> None:
        """Check freshness and claim the nonce; raise if expired or already completed."""
        self.check_fresh(header)
        if self.store.claim(header.nonce, self.ttl_s) is NonceState.DONE:
            raise MessageReplayed(nonce=header.nonce, **header_ids(header))

    def admit_once(self, header: Header, scope: str, window_s: int) -> None:
        """Admit a broadcast once per receiver: fresh within ``window_s``, never seen by
        ``scope`` before (every node gets its own copy of a fanout message)."""
        self.check_fresh(header, window_s)
        if self.store.claim(f"{header.nonce}@{scope}", window_s + self.skew_s) is not None:
            raise MessageReplayed(nonce=header.nonce, **header_ids(header))

    def complete(self, nonce: str) -> None:
        """Mark the message's nonce DONE: its task finished (succeeded, failed or retried)."""
        self.store.finish(nonce, self.ttl_s)
