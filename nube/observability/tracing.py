"""Traces with OpenTelemetry: one trace per job, from the HTTP request to the worker's run.

The API accepts a W3C ``traceparent`` header (or starts a trace); the trace context travels
*inside* the sealed messages (the ``traceparent`` field of :class:`~nube.wire.RelayRequest` and
:class:`~nube.wire.JobMeta`, never a plaintext header), and the agent and the worker continue it
(:mod:`nube.observability.tasks`).

Spans are exported when something is configured, else tracing costs next to nothing (the API's
no-op tracer):

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` — OTLP over HTTP (the SDK's own variables apply);
- ``NUBE_TRACE_PATH`` — each span as one JSON line appended to that file (tests, debugging).

Each process calls :func:`setup` once (from :func:`nube.bootstrap.bootstrap`); a prefork child
sets up its own provider after the fork (:func:`setup_after_fork`).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, SpanContext, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACE_FILE_VARIABLE = "NUBE_TRACE_PATH"
OTLP_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
_PROPAGATOR = TraceContextTextMapPropagator()
_state: dict[str, Any] = {"provider": None, "service": None, "pid": 0}


class JsonLinesExporter(SpanExporter):
    """Appends each span to a file as one JSON line (several processes may share the file:
    each line is one ``write`` in append mode)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_dict(s)) + "\n" for s in spans)
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing is held open."""


def span_dict(span: ReadableSpan) -> dict[str, Any]:
    """A span as the trace file holds it: ids in hex, times in ns since the epoch."""
    ctx, parent = span.context, span.parent
    assert ctx is not None
    return {
        "name": span.name,
        "service": span.resource.attributes.get("service.name"),
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


def setup(service: str, environ: dict[str, str] | None = None) -> bool:
    """Install this process's tracer provider when an exporter is configured; whether one is."""
    env = os.environ if environ is None else environ
    trace_file, endpoint = env.get(TRACE_FILE_VARIABLE), env.get(OTLP_VARIABLE)
    _state["service"] = service
    if not (trace_file or endpoint):
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": f"nube-{service}"}))
    if trace_file:
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(trace_file)))
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _state["provider"], _state["pid"] = provider, os.getpid()
    return True


def setup_after_fork() -> None:
    """In a prefork child: a provider of its own (a batch processor's thread does not fork)."""
    if _state["provider"] is not None and _state["pid"] != os.getpid():
        setup(_state["service"])


def tracer() -> Tracer:
    """This process's tracer (a no-op one when nothing exports)."""
    provider = _state["provider"]
    if provider is None:
        return trace.NoOpTracer()
    return provider.get_tracer("nube")


def enabled() -> bool:
    return _state["provider"] is not None


def shutdown() -> None:
    """Flush and stop the exporters (at the end of a process)."""
    provider = _state["provider"]
    if provider is not None:
        provider.shutdown()


def context_of(traceparent: str | None) -> Context | None:
    """The remote parent that ``traceparent`` names (None when absent or malformed)."""
    if not traceparent:
        return None
    ctx = _PROPAGATOR.extract({"traceparent": traceparent})
    span_ctx = trace.get_current_span(ctx).get_span_context()
    return ctx if span_ctx.is_valid else None


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the span in hand (None outside a recorded span)."""
    span_ctx = trace.get_current_span().get_span_context()
    if not span_ctx.is_valid:
        return None
    return format_traceparent(span_ctx)


def format_traceparent(span_ctx: SpanContext) -> str:
    return f"00-{span_ctx.trace_id:032x}-{span_ctx.span_id:016x}-{int(span_ctx.trace_flags):02x}"


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) in a ``traceparent``."""
    ctx = context_of(traceparent)
    if ctx is None:
        return None
    return f"{trace.get_current_span(ctx).get_span_context().trace_id:032x}"


def active_trace_id() -> str | None:
    """The trace id of the span in hand, if one is recorded."""
    span_ctx = trace.get_current_span().get_span_context()
    return f"{span_ctx.trace_id:032x}" if span_ctx.is_valid else None


def start_span(
    name: str,
    parent: Context | None = None,
    start_time: int | None = None,
    attributes: dict[str, Any] | None = None,
) -> Span:
    """A span (not made current); ``parent`` None: a child of the current span, if any."""
    return tracer().start_span(name, context=parent, start_time=start_time, attributes=attributes)


def attach(span: Span) -> object:
    """Make ``span`` current; :func:`detach` with the token."""
    return otel_context.attach(trace.set_span_in_context(span))


def detach(token: object) -> None:
    otel_context.detach(token)  # type: ignore[arg-type]
