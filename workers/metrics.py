"""A worker's driver calls as spans.

The worker's tasks are timed, counted and traced by Celery signals
(:mod:`nube.observability.tasks`, installed by :func:`nube.bootstrap.bootstrap`); this module
adds the driver call itself: :func:`instrument` makes the runtime hand out drivers whose
operation handlers (the catalog's ``handler`` names) each run inside a ``driver <handler>``
span, a child of the task's ``run`` span. Without a trace exporter it changes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import Status, StatusCode

from nube.catalog import CATALOG
from nube.observability import tracing
from workers.drivers import Driver
from workers.runner import Runtime

HANDLERS = frozenset(op.handler for op in CATALOG)


class TracedDriver:
    """``driver`` whose handlers run inside a span; everything else is the driver's own."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._driver, name)
        if name not in HANDLERS or not callable(attr):
            return attr
        return _spanned(f"driver {name}", attr)


def _spanned(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def spanned(*args: Any, **kwargs: Any) -> Any:
        span = tracing.start_span(name)
        try:
            return call(*args, **kwargs)
        except Exception as e:
            span.set_status(Status(StatusCode.ERROR, getattr(e, "code", type(e).__name__)))
            raise
        finally:
            span.end()

    return spanned


def instrument(runtime: Runtime) -> None:
    """Make ``runtime`` hand out traced drivers (when traces are exported)."""
    if not tracing.enabled():
        return
    driver = runtime.driver
    runtime.driver = lambda service: TracedDriver(driver(service))  # type: ignore[method-assign]
