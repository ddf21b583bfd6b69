"""Celery signals that time, count and trace every task of the agent and the workers.

Installed once per process by :func:`install` (the agent: ``role="agent"``; a worker: its
service). Nothing here touches Redis: each signal updates in-memory metrics and spans.

- ``before/after_task_publish`` — publishes per hop (the API's and reconciler's relay requests,
  the agent's operations), their latency and a ``publish <task>`` span;
- ``task_prerun`` — the queue wait (``sent_at`` inside the sealed message to now), a redelivery,
  the log context (job, tenant, operation, trace) and the task's span, continued from the
  ``traceparent`` inside the sealed message;
- ``task_postrun`` / ``task_failure`` / ``task_retry`` — the run's duration and outcome, failures
  by error code, retries;
- ``worker_process_init`` — a prefork child's own tracer provider.
"""

from __future__ import annotations

import functools
import time
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from celery.signals import (
    after_task_publish,
    before_task_publish,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    worker_process_init,
)
from opentelemetry.trace import Span, Status, StatusCode

from nube.broker import RELAY_TASK
from nube.observability import context, metrics, tracing

#: A task's outcome, by its final Celery state.
OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried", "IGNORED": "ignored"}


@dataclass
class _Run:
    operation: str
    started: float
    span: Span | None
    span_token: object
    log_token: Token[dict[str, str]]


_runs: dict[str, _Run] = {}
_publishing: dict[str, tuple[float, Span | None]] = {}
_state = {"role": "api"}


def install(role: str) -> None:
    """Connect the signals for a process of ``role`` (``api``, ``agent`` or a service)."""
    _state["role"] = role
    before_task_publish.connect(_before_publish, weak=False)
    after_task_publish.connect(_after_publish, weak=False)
    if role == "api":
        return
    task_prerun.connect(_prerun, weak=False)
    task_postrun.connect(_postrun, weak=False)
    task_failure.connect(_failure, weak=False)
    task_retry.connect(_retry, weak=False)
    worker_process_init.connect(_after_fork, weak=False)


def _after_fork(**_: Any) -> None:
    tracing.setup_after_fork()


def hop_of(task_name: str) -> str:
    return "ingress" if task_name == RELAY_TASK else "worker"


def _before_publish(sender: str | None = None, headers: Any = None, **_: Any) -> None:
    name = str(sender or "")
    if not isinstance(headers, dict) or not headers.get("id") or name.startswith("celery."):
        return
    span = None
    if tracing.enabled():
        span = tracing.start_span(f"publish {name}", attributes={"nube.hop": hop_of(name)})
    _publishing[str(headers["id"])] = (time.perf_counter(), span)


def _after_publish(sender: str | None = None, headers: Any = None, **_: Any) -> None:
    """``sender`` is the task's name: ``agent.relay`` on the ingress hop, else the operation."""
    task_id = str(headers.get("id")) if isinstance(headers, dict) else ""
    started, span = _publishing.pop(task_id, (None, None))
    name = str(sender or "")
    if started is None or not name:
        return
    hop, role = hop_of(name), _state["role"]
    _child(metrics.PUBLISHED, hop, role, name).inc()
    _child(metrics.PUBLISH_DURATION, hop, name).observe(time.perf_counter() - started)
    if span is not None:
        span.end()
    if hop == "ingress" and role == "agent":  # the agent sends a relay request again
        metrics.RECONCILER_RELAYS.inc()


def _message_of(task: Any, args: Any, kwargs: Any) -> tuple[str, dict[str, Any]]:
    """The operation and the sealed fields (a relay request or a job meta) of a task."""
    if task.name == RELAY_TASK:
        request = args[0] if args else (kwargs or {}).get("request")
        request = request if isinstance(request, dict) else {}
        return str(request.get("operation") or "-"), request
    meta = (kwargs or {}).get("job")
    return task.name, meta if isinstance(meta, dict) else {}


def _prerun(
    task_id: str = "", task: Any = None, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    if task is None or task.name.startswith("celery."):
        return
    role = _state["role"]
    operation, fields = _message_of(task, args, kwargs)
    hop = hop_of(task.name)
    now = time.time()
    request = task.request
    redelivered = bool((request.delivery_info or {}).get("redelivered"))
    if redelivered:
        _child(metrics.REDELIVERIES, role, operation).inc()
    raw_sent = fields.get("sent_at")
    sent_at = float(raw_sent) if isinstance(raw_sent, float | int) else now
    waited = raw_sent is not None and not redelivered and not request.retries
    if waited:
        _child(metrics.QUEUE_WAIT, hop, operation).observe(max(0.0, now - sent_at))
    job_id = str(fields.get("job_id") or task_id)
    traceparent = fields.get("traceparent")
    span = span_token = None
    if tracing.enabled():
        parent = tracing.context_of(traceparent)
        if waited:
            tracing.start_span(
                f"queue wait {hop}",
                parent,
                start_time=int(sent_at * 1e9),
                attributes={"nube.queue": str(request.delivery_info.get("routing_key") or "")},
            ).end(int(now * 1e9))
        span = tracing.start_span(
            f"{'relay' if hop == 'ingress' else 'run'} {operation}",
            parent,
            attributes={"nube.job_id": job_id, "nube.operation": operation, "nube.role": role},
        )
        span_token = tracing.attach(span)
        trace_id = tracing.active_trace_id()
    else:
        trace_id = tracing.trace_id_of(traceparent) if traceparent else None
    log_token = context.bind(
        job_id=job_id, tenant=fields.get("tenant"), operation=operation, trace_id=trace_id
    )
    _runs[task_id] = _Run(operation, time.perf_counter(), span, span_token, log_token)


def _postrun(task_id: str = "", task: Any = None, state: str | None = None, **_: Any) -> None:
    run = _runs.pop(task_id, None)
    if run is None:
        return
    role = _state["role"]
    _child(metrics.TASK_DURATION, role, run.operation).observe(time.perf_counter() - run.started)
    outcome = OUTCOMES.get(state or "", str(state).lower())
    _child(metrics.TASKS, role, run.operation, outcome).inc()
    if role != "agent" and outcome in ("succeeded", "failed"):
        _child(metrics.JOBS_ENDED, run.operation, outcome).inc()
    if run.span is not None:
        run.span.set_attribute("nube.outcome", outcome)
        run.span.end()
        tracing.detach(run.span_token)
    context.unbind(run.log_token)


def _failure(task_id: str = "", exception: BaseException | None = None, **_: Any) -> None:
    run = _runs.get(task_id)
    if run is None:
        return
    code = str(getattr(exception, "code", None) or type(exception).__name__)
    _child(metrics.TASK_FAILURES, run.operation, code).inc()
    if run.span is not None:
        run.span.set_status(Status(StatusCode.ERROR, code))


def _retry(request: Any = None, **_: Any) -> None:
    run = _runs.get(str(getattr(request, "id", "")))
    if run is not None:
        _child(metrics.TASK_RETRIES, run.operation).inc()


@functools.cache
def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once (labels() costs a lock and a few dict
    look-ups; operations and codes are few)."""
    return metric.labels(*labels)
