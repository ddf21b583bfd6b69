"""The context of the work in hand, as log lines carry it: request, job, trace, tenant, operation.

Set by the API for a request, by the task signals for a relay or an operation
(:mod:`nube.observability.tasks`); read by the log filter (:mod:`nube.observability.logs`).
A ``ContextVar`` is per thread (the agent's thread pool) and per greenlet (gevent in the API).
Only identifiers go here, never a parameter's value.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

#: The fields a log line may carry, beside ``service`` and ``node``.
FIELDS = ("request_id", "job_id", "trace_id", "tenant", "operation")

_CURRENT: ContextVar[dict[str, str]] = ContextVar("nube_log_context", default={})  # noqa: B039


def current() -> dict[str, str]:
    """The fields known here (a copy is not made: do not change it)."""
    return _CURRENT.get()


def bind(**fields: str | None) -> Token[dict[str, str]]:
    """Add ``fields`` (those not None) to the context; :func:`unbind` with the token."""
    known = {k: v for k, v in fields.items() if v is not None and k in FIELDS}
    return _CURRENT.set({**_CURRENT.get(), **known})


def unbind(token: Token[dict[str, str]]) -> None:
    _CURRENT.reset(token)


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """``fields`` in the context for the ``with`` block."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)
