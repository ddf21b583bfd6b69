"""The API's requests as metrics, spans and log context; ``GET /metrics`` for Prometheus.

Before each request: the request id (``X-Request-ID`` when the client sent a usable one, else a
new one; echoed on the answer), the log context, and the request's span, continuing the
client's W3C ``traceparent`` when it sent one. After it: the request counted by route and status
and timed, and one access log line (method, path, status, duration: never the query or body).
``/metrics`` serves every gunicorn worker's metrics (multiprocess mode) and the cluster's gauges
read from Redis (:class:`~nube.observability.cluster.ClusterCollector`).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Iterator
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, request
from opentelemetry.trace import Span, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric

from api.services import Services
from nube.observability import context, metrics, tracing
from nube.observability.cluster import ClusterCollector

REQUEST_ID = "X-Request-ID"
#: A client's request id is used when it is short and plain; else a new one is made.
USABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
access = logging.getLogger("nube.access")


def register(app: Flask, svc: Services) -> None:
    """Hook the request cycle of ``app`` and add ``GET /metrics``."""
    collector = ClusterCollector(svc.redis, svc.jobs, svc.registry)
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        registry = metrics.registry()
        body = generate_latest(registry) + generate_latest(_Single(collector))
        return Response(body, mimetype=CONTENT_TYPE_LATEST)


class _Single:
    """One collector as a registry (``generate_latest`` calls ``collect``)."""

    def __init__(self, collector: ClusterCollector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        return self.collector.collect()


@dataclass
class _Request:
    """What the hooks keep for one request (``g.nube``)."""

    request_id: str
    route: str
    started: float
    log_token: Token[dict[str, str]]
    span: Span | None = None
    span_token: object = None


def _route() -> str:
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def _before() -> None:
    given = request.headers.get(REQUEST_ID, "")
    request_id = given if USABLE_ID.fullmatch(given) else os.urandom(16).hex()
    route, started = _route(), time.perf_counter()
    span = span_token = trace_id = None
    if tracing.enabled():
        span = tracing.start_span(
            f"{request.method} {route}",
            tracing.context_of(request.headers.get("traceparent")),
            attributes={"http.request.method": request.method, "http.route": route},
        )
        span_token, trace_id = tracing.attach(span), tracing.active_trace_id()
    job_id = request.view_args.get("job_id") if request.view_args else None
    log_token = context.bind(
        request_id=request_id,
        trace_id=trace_id,
        job_id=job_id if isinstance(job_id, str) else None,
    )
    g.nube = _Request(request_id, route, started, log_token, span, span_token)


def _after(response: Response) -> Response:
    state: _Request | None = g.get("nube")
    if state is None:
        return response
    response.headers[REQUEST_ID] = state.request_id
    if state.route == "/metrics":
        return response
    elapsed, status = time.perf_counter() - state.started, response.status_code
    _requests(request.method, state.route, status).inc()
    _durations(request.method, state.route).observe(elapsed)
    if state.span is not None:
        state.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            state.span.set_status(Status(StatusCode.ERROR))
    job_id = _job_of(response)
    if job_id:  # the job the request made: its id in the access line
        context.bind(job_id=job_id)  # undone with the request's own binding (teardown)
    access.info("%s %s %d %.1f ms", request.method, request.path, status, elapsed * 1000)
    return response


@functools.cache
def _requests(method: str, route: str, status: int) -> Any:
    return metrics.HTTP_REQUESTS.labels(method, route, str(status))


@functools.cache
def _durations(method: str, route: str) -> Any:
    return metrics.HTTP_DURATION.labels(method, route)


def _job_of(response: Response) -> str | None:
    """The job an answer links to (its ``Location``, ``/v1/jobs/<id>``)."""
    location = response.headers.get("Location")
    if not location:
        return None
    _, found, rest = location.partition("/v1/jobs/")
    return rest.split("/", 1)[0] or None if found else None


def _teardown(_: BaseException | None) -> None:
    state: _Request | None = g.pop("nube", None)
    if state is None:
        return
    if state.span is not None:
        state.span.end()
        tracing.detach(state.span_token)
    context.unbind(state.log_token)
