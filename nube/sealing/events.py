"""Celery's events, sealed and redacted: the broker's pub/sub channels carry nothing readable.

Events are how Flower and the agent's outcome listener follow tasks. Celery fills some of their
fields from the task itself: ``args``/``kwargs`` (a repr of the arguments), ``exception`` and
``traceback`` (error texts that may quote a parameter), ``result``. :class:`RedactingDispatcher`
rewrites every event, from any nube process, before it is published, so what Flower shows is the
redacted summary (operation, target, tenant) and the error's class; the events are then sealed
with the ``nube-sealed-event`` serializer. :class:`SealedReceiver` accepts sealed events only, so
a forged plaintext event is refused (reported once per sender and interval) and never believed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from celery.app.events import Events
from celery.events.dispatcher import EventDispatcher
from celery.events.receiver import EventReceiver

from nube.broker import RELAY_ID_PREFIX
from nube.sealing.refusals import decode_reason, describe_refusal
from nube.sealing.serializer import EVENT_CONTENT_TYPE

SUMMARY_FIELDS = frozenset({"operation", "target", "tenant"})
_EXCEPTION_CLASS = re.compile(r"[A-Za-z_][\w.]*")


def _is_summary(kwargsrepr: Any) -> bool:
    """Whether ``kwargsrepr`` is nube's redacted summary (and so safe to show)."""
    try:
        summary = json.loads(kwargsrepr)
    except (TypeError, ValueError):
        return False
    return isinstance(summary, dict) and set(summary) <= SUMMARY_FIELDS


def redact_event(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``event`` without argument values, results or error texts."""
    out = dict(event)
    if "args" in out:
        out["args"] = "()"
    if "kwargs" in out and not _is_summary(out["kwargs"]):
        out["kwargs"] = "{}"
    if "result" in out:
        out["result"] = ""
    if "traceback" in out:
        out["traceback"] = ""
    if "exception" in out:
        match = _EXCEPTION_CLASS.match(str(out["exception"]))
        out["exception"] = match.group(0) if match else "Exception"
    return out


def _wanted(event: Any) -> bool:
    """All events but a relay task's ``task-started``: a relay runs for milliseconds, and its
    ``task-received`` (which names it) and ``task-succeeded`` tell Flower all there is."""
    return not (
        isinstance(event, dict)
        and event.get("type") == "task-started"
        and str(event.get("uuid", "")).startswith(RELAY_ID_PREFIX)
    )


class RedactingDispatcher(EventDispatcher):
    """Celery's dispatcher; every event (single or a buffered batch) is redacted first."""

    def _publish(self, event: Any, producer: Any, routing_key: str, **kwargs: Any) -> Any:
        if isinstance(event, list):
            event = [redact_event(e) for e in event if _wanted(e)]
            if not event:
                return None
        elif isinstance(event, dict):
            if not _wanted(event):
                return None
            event = redact_event(event)
        return super()._publish(event, producer, routing_key, **kwargs)


class SealedReceiver(EventReceiver):
    """Celery's receiver, accepting sealed events only; others are reported and dropped."""

    def __init__(self, channel: Any, *args: Any, accept: Any = None, **kwargs: Any) -> None:
        super().__init__(channel, *args, accept=accept or {EVENT_CONTENT_TYPE}, **kwargs)

    def get_consumers(self, Consumer: Any, channel: Any) -> list[Any]:
        return [
            Consumer(
                queues=[self.queue],
                callbacks=[self._receive],
                no_ack=True,
                accept=self.accept,
                on_decode_error=self._refuse,
            )
        ]

    def _refuse(self, message: Any, exc: Exception) -> None:
        reporter = getattr(self.app, "nube_refusals", None)
        if reporter is not None:
            reporter.report(describe_refusal(message, exc, decode_reason(exc), channel="event"))


class SealedEvents(Events):
    """``app.events`` of a nube app: the redacting dispatcher and the sealed receiver."""

    dispatcher_cls = "nube.sealing.events:RedactingDispatcher"
    receiver_cls = "nube.sealing.events:SealedReceiver"
