"""Refused messages: what was refused and why, reported once to one handler.

A task message names a job, so each refusal is reported (the handler audits it and, for most
reasons, fails the job). A control broadcast or an event names none and can arrive every few
seconds from a misconfigured sender, so those are reported once per sender and reason per
interval (:class:`RefusalThrottle`), with the count of those suppressed since, and logged as one
line, never a traceback.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kombu.exceptions import ContentDisallowed

from nube.sealing.sealer import peek_header
from nube.sealing.serializer import envelope_error_of

log = logging.getLogger(__name__)

#: Refusals that never change the job a message names: a copy or replay of a real message must
#: not fail the job its header claims (the original still runs, or already ran).
KEEPS_JOB = frozenset({"replayed", "misbound_task_name", "misbound_task_id", "misbound_tenant"})


@dataclass(frozen=True)
class Refusal:
    """A message a process refused: what it claimed to be, and why it was refused."""

    reason: str
    message: str
    job_id: str | None
    task: str | None
    tenant: str | None
    content_type: str | None
    channel: str = "task"
    """``task`` (a task queue), ``control`` (a broadcast or reply) or ``event``."""
    sender: str | None = None
    """Who sent it, as the message claims (unauthenticated): for throttling and audit only."""
    suppressed: int = 0
    """How many like it were refused, unreported, since the last report."""

    @property
    def code(self) -> str:
        return "message_rejected"

    @property
    def fails_job(self) -> bool:
        return self.channel == "task" and self.reason not in KEEPS_JOB


RefusalHandler = Callable[[Refusal], None]


def decode_reason(exc: BaseException) -> str:
    """``not_sealed`` for content of a type nube does not accept, else ``undecodable``."""
    return "not_sealed" if isinstance(exc, ContentDisallowed) else "undecodable"


def describe_refusal(
    message: Any, exc: BaseException | None, reason: str, channel: str = "task"
) -> Refusal:
    """Build a :class:`Refusal` from a kombu message and the error that refused it."""
    headers = getattr(message, "headers", None) or {}
    env_err = envelope_error_of(exc)
    body = getattr(message, "body", b"") or b""
    peek = peek_header(body)
    return Refusal(
        reason=str(env_err.details.get("reason", env_err.reason)) if env_err else reason,
        message=env_err.message if env_err else reason,
        job_id=headers.get("id") or (peek.job if peek and channel == "task" else None),
        task=headers.get("task") or (peek.task if peek else None),
        tenant=peek.tenant if peek else None,
        content_type=getattr(message, "content_type", None),
        channel=channel,
        sender=_sender(headers, body),
    )


def _sender(headers: dict[str, Any], body: bytes | str) -> str | None:
    """The sender a message claims: its ``hostname`` header, or a broadcast's reply queue."""
    if isinstance(headers.get("hostname"), str):
        return str(headers["hostname"])
    try:
        reply_to = json.loads(body).get("reply_to") or {}
        return str(reply_to.get("routing_key")) if reply_to.get("routing_key") else None
    except (ValueError, TypeError, AttributeError):
        return None


class RefusalThrottle:
    """Lets one refusal per ``(channel, sender, reason)`` through per ``interval_s``."""

    def __init__(self, interval_s: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str | None, str], float] = {}
        self._suppressed: dict[tuple[str, str | None, str], int] = {}

    def admit(self, refusal: Refusal) -> Refusal | None:
        """The refusal to report (with the count suppressed since the last), or None."""
        key = (refusal.channel, refusal.sender, refusal.reason)
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._last[key] = now
            return replace(refusal, suppressed=self._suppressed.pop(key, 0))


class RefusalReporter:
    """Logs a refusal as one line and hands it to the handler; never raises."""

    def __init__(self, handler: RefusalHandler | None, throttle: RefusalThrottle) -> None:
        self.handler = handler
        self.throttle = throttle

    def report(self, refusal: Refusal) -> None:
        if refusal.channel != "task":
            admitted = self.throttle.admit(refusal)
            if admitted is None:
                return
            refusal = admitted
        log.warning(
            "refused %s message job=%s task=%s sender=%s reason=%s (suppressed since: %d)",
            refusal.channel,
            refusal.job_id,
            refusal.task,
            refusal.sender,
            refusal.reason,
            refusal.suppressed,
        )
        if self.handler is None:
            return
        try:
            self.handler(refusal)
        except Exception as e:  # a refusal must still be acked, never redelivered in a loop
            log.error("refusal handler failed for job %s: %s", refusal.job_id, type(e).__name__)
