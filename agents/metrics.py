"""The relay's outcomes as metrics, and each middleware as a span.

:func:`observed` wraps the chain that :func:`agents.relay.default_middlewares` builds: an
:class:`Outcomes` middleware first (so its ``after_relay`` runs last and sees the final
decision), and, when traces are exported, each middleware inside a :class:`Spanned` that makes
one span of its ``before_relay`` and one of its ``after_relay``, children of the relay's span.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from opentelemetry.trace import Status, StatusCode

from agents.middleware import Middleware, RelayMessage
from nube.errors import NubeError
from nube.observability import metrics, tracing


class Outcomes(Middleware):
    """Counts each relay's decision: routed, denied (policy) or refused, with the error code;
    a refused relay fails its job."""

    def after_relay(self, message: RelayMessage, error: NubeError | None) -> None:
        if error is None:
            _routed(message.operation).inc()
            return
        outcome = "denied" if error.code == "policy_denied" else "refused"
        metrics.RELAYS.labels(message.operation, outcome, error.code).inc()
        metrics.JOBS_ENDED.labels(message.operation, "failed").inc()


class Spanned(Middleware):
    """``inner`` with a span around each of its hooks."""

    def __init__(self, inner: Middleware) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    def before_relay(self, message: RelayMessage) -> None:
        span = tracing.start_span(f"middleware {self.name}")
        try:
            self.inner.before_relay(message)
        except Exception as e:
            span.set_status(Status(StatusCode.ERROR, getattr(e, "code", type(e).__name__)))
            raise
        finally:
            span.end()

    def after_relay(self, message: RelayMessage, error: NubeError | None) -> None:
        span = tracing.start_span(f"middleware {self.name} after")
        try:
            self.inner.after_relay(message, error)
        finally:
            span.end()


def observed(middlewares: Sequence[Middleware]) -> list[Middleware]:
    """``middlewares`` counted, and traced when traces are exported."""
    if not tracing.enabled():
        return [Outcomes(), *middlewares]
    return [Outcomes(), *(Spanned(m) for m in middlewares)]


@functools.cache
def _routed(operation: str) -> Any:
    return metrics.RELAYS.labels(operation, "routed", "")
