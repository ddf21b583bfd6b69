"""The API's requests as metrics, spans and log context; ``GET /metrics`` for Prometheus.

Before each request: the request id (``X-Request-ID`` when the client sent a usable one, else a
new one; echoed on the answer), the log context, and the request's span, continuing the
client's W3C ``traceparent`` when it sent one. After it: the request counted by route and status
and timed, and one access log line (method, path, status, duration: never the query or body).
``/metrics`` serves every gunicorn worker's metrics (multiprocess mode) and the cluster's gauges
read from Redis (:class:`~nube.observability.cluster.ClusterCollector`).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator

from flask import Flask, Response, g, request
from opentelemetry.trace import Status, StatusCode
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


def _route() -> str:
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def _before() -> None:
    given = request.headers.get(REQUEST_ID, "")
    g.nube_request_id = given if USABLE_ID.fullmatch(given) else uuid.uuid4().hex
    g.nube_started = time.perf_counter()
    parent = tracing.context_of(request.headers.get("traceparent"))
    span = tracing.start_span(
        f"{request.method} {_route()}",
        parent,
        attributes={"http.request.method": request.method, "http.route": _route()},
    )
    g.nube_span, g.nube_span_token = span, tracing.attach(span)
    job_id = (request.view_args or {}).get("job_id")
    g.nube_log_token = context.bind(
        request_id=g.nube_request_id,
        trace_id=tracing.active_trace_id(),
        job_id=job_id if isinstance(job_id, str) else None,
    )


def _after(response: Response) -> Response:
    response.headers[REQUEST_ID] = g.get("nube_request_id", "")
    started = g.get("nube_started")
    if started is None or request.path == "/metrics":
        return response
    route, elapsed = _route(), time.perf_counter() - started
    metrics.HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    metrics.HTTP_DURATION.labels(request.method, route).observe(elapsed)
    span = g.get("nube_span")
    if span is not None:
        span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= 500:
            span.set_status(Status(StatusCode.ERROR))
    job_id = _job_of(response)
    if job_id:  # the job the request made: its id in the access line
        context.bind(job_id=job_id)  # undone with the request's own binding (teardown)
    access.info(
        "%s %s %d %.1f ms", request.method, request.path, response.status_code, elapsed * 1000
    )
    return response


def _job_of(response: Response) -> str | None:
    """The job an answer links to (its ``Location``, ``/v1/jobs/<id>``)."""
    _, found, rest = response.headers.get("Location", "").partition("/v1/jobs/")
    return rest.split("/", 1)[0] or None if found else None


def _teardown(_: BaseException | None) -> None:
    span, token = g.pop("nube_span", None), g.pop("nube_span_token", None)
    if span is not None:
        span.end()
        tracing.detach(token)
    log_token = g.pop("nube_log_token", None)
    if log_token is not None:
        context.unbind(log_token)
