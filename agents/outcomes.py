"""The agent's outcome listener: every operation's Celery events, appended to the audit log.

Events carry only what Celery puts in them; nube's tasks keep them free of secrets (redacted
``argsrepr``/``kwargsrepr``, no result repr), so the listener records the outcome and the job's
tenant and operation from the job record.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Celery

from nube.audit.log import AuditEvent, AuditLog
from nube.broker import job_of_task
from nube.jobs import JobStore

log = logging.getLogger(__name__)

OUTCOMES = {
    "task-started": "started",
    "task-succeeded": "succeeded",
    "task-failed": "failed",
    "task-retried": "retried",
    "task-revoked": "revoked",
}


class OutcomeListener(threading.Thread):
    """Consumes Celery events until stopped; reconnects when the broker goes away."""

    def __init__(self, app: Celery, jobs: JobStore, audit: AuditLog) -> None:
        super().__init__(name="nube-outcomes", daemon=True)
        self.app, self.jobs, self.audit = app, jobs, audit
        self._stop_event = threading.Event()
        self._receiver: Any = None

    def run(self) -> None:
        handlers = {name: self.record for name in OUTCOMES}
        while not self._stop_event.is_set():
            try:
                with self.app.connection_for_read() as conn:
                    self._receiver = self.app.events.Receiver(conn, handlers=handlers)
                    if self._stop_event.is_set():
                        return
                    # No timeout: one subscription for as long as the connection lives. On Redis
                    # events are pub/sub messages, and an event published while the receiver
                    # resubscribed (a consume ended by a timeout) was never seen. stop() sets
                    # should_stop, which consume checks after each second's drain.
                    for _ in self._receiver.consume(limit=None, timeout=None, wakeup=False):
                        pass
            except Exception as e:
                if self._stop_event.is_set():
                    return
                log.warning("event listener lost its connection (%s); reconnecting", e)
                time.sleep(1)

    def record(self, event: dict[str, Any]) -> None:
        """Append one outcome record for an operation's event (relay tasks are skipped)."""
        job_id, relay = job_of_task(str(event.get("uuid", "")))
        job = self.jobs.peek(job_id) if job_id and not relay else None
        if job is None:
            return
        detail = {"node": event.get("hostname")}
        if event["type"] == "task-failed":
            detail["error"] = job.error.code if job.error else "failed"
        self.audit.append(
            AuditEvent(
                operation=job.operation,
                outcome=OUTCOMES[event["type"]],
                tenant=job.tenant,
                job_id=job.id,
                target=job.target,
                actor="worker",
                detail={k: v for k, v in detail.items() if v},
            )
        )

    def stop(self) -> None:
        self._stop_event.set()
        if self._receiver is not None:
            self._receiver.should_stop = True
