"""Counts what a process's sealer and audit log do, by wrapping the two objects it made.

:func:`instrument_security` is called by :func:`nube.bootstrap.bootstrap` before anything uses
them: each ``seal``/``open`` and audit ``append`` of the process then adds to an in-memory
counter (a few hundred nanoseconds; no round trip). An audited refusal (a message refused before
any task ran) is counted by its reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from nube.audit.log import AuditEvent, AuditLog
from nube.observability import metrics
from nube.sealing.sealer import Sealer

T = TypeVar("T")


def instrument_security(sealer: Sealer, audit: AuditLog) -> None:
    """Count the seals, opens and audit appends of ``sealer`` and ``audit`` (idempotent)."""
    if getattr(sealer, "_nube_counted", False):
        return
    sealer.seal = _counted("seal", sealer.seal)  # type: ignore[method-assign]
    sealer.open = _counted("open", sealer.open)  # type: ignore[method-assign]
    sealer._nube_counted = True  # type: ignore[attr-defined]
    metrics.SEALING_KEY.labels(sealer.keyring.current.kid).set(1)
    audit.append = _audited(audit.append)  # type: ignore[method-assign]


def _counted(action: str, call: Callable[..., T]) -> Callable[..., T]:
    ok = metrics.SEALING.labels(action, "ok")
    failed = metrics.SEALING.labels(action, "failed")

    @functools.wraps(call)
    def counted(*args: Any, **kwargs: Any) -> T:
        try:
            result = call(*args, **kwargs)
        except Exception as e:
            failed.inc()
            metrics.SEALING_FAILURES.labels(action, type(e).__name__).inc()
            raise
        ok.inc()
        return result

    return counted


def _audited(append: Callable[[AuditEvent], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    @functools.wraps(append)
    def audited(event: AuditEvent) -> dict[str, Any]:
        actor = event.actor or "-"
        try:
            record = append(event)
        except Exception:
            metrics.AUDIT_WRITES.labels("failed", actor).inc()
            raise
        metrics.AUDIT_WRITES.labels("written", actor).inc()
        if event.outcome == "refused" and actor == "worker":  # refused by the sealing layer
            suppressed = event.detail.get("suppressed") or 0
            reason = str(event.detail.get("reason") or "-")
            metrics.REFUSED.labels(reason).inc(1 + int(suppressed))
        return record

    return audited
