"""Celery signals that time, count and trace every task of the agent and the workers.

Installed once per process by :func:`install` (the agent: ``role="agent"``; a worker: its
service). Nothing here touches Redis: each signal updates in-memory metrics and spans.

- ``before/after_task_publish`` — publishes per hop (the API's and reconciler's relay requests,
  the agent's operations) and their latency;
- ``task_prerun`` — the queue wait (``sent_at`` inside the sealed message to now), a redelivery,
  the log context (job, tenant, operation, trace) and the task's span, continued from the
  ``traceparent`` inside the sealed message;
- ``task_postrun`` / ``task_failure`` / ``task_retry`` — the run's duration and outcome, failures
  by error code, retries;
- ``worker_process_init`` — a prefork child's own tracer provider.
"""

from __future__ import annotations

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
from nube.sealing.celery_hooks import PUBLISH_HEADER

#: A task's outcome, by its final Celery state.
OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried", "IGNORED": "ignored"}


@dataclass
class _Run:
    operation: str
    started: float
    span: Span
    span_token: object
    log_token: Token[dict[str, str]]


_runs: dict[str, _Run] = {}
_publishing: dict[str, tuple[float | None, str]] = {}
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
    if not isinstance(headers, dict) or not headers.get("id"):
        return
    binding = headers.get(PUBLISH_HEADER)
    operation = binding.get("op") if isinstance(binding, dict) else None
    _publishing[str(headers["id"])] = (time.perf_counter(), str(operation or sender or "-"))


def _after_publish(sender: str | None = None, headers: Any = None, **_: Any) -> None:
    task_id = str(headers.get("id")) if isinstance(headers, dict) else ""
    started, operation = _publishing.pop(task_id, (None, str(sender or "-")))
    name = str(sender or "")
    if not name or name.startswith("celery."):
        return
    hop, role = hop_of(name), _state["role"]
    metrics.PUBLISHED.labels(hop, role, operation).inc()
    if started is not None:
        metrics.PUBLISH_DURATION.labels(hop, operation).observe(time.perf_counter() - started)
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
    parent = tracing.context_of(fields.get("traceparent"))
    request = task.request
    redelivered = bool((request.delivery_info or {}).get("redelivered"))
    if redelivered:
        metrics.REDELIVERIES.labels(role, operation).inc()
    sent_at = fields.get("sent_at")
    if isinstance(sent_at, float | int) and not redelivered and not request.retries:
        metrics.QUEUE_WAIT.labels(hop, operation).observe(max(0.0, now - sent_at))
        if tracing.enabled():
            tracing.start_span(
                f"queue wait {hop}",
                parent,
                start_time=int(sent_at * 1e9),
                attributes={"nube.queue": str(request.delivery_info.get("routing_key") or "")},
            ).end(int(now * 1e9))
    job_id = str(fields.get("job_id") or task_id)
    span = tracing.start_span(
        f"{'relay' if hop == 'ingress' else 'run'} {operation}",
        parent,
        attributes={"nube.job_id": job_id, "nube.operation": operation, "nube.role": role},
    )
    span_token = tracing.attach(span)
    log_token = context.bind(
        job_id=job_id,
        tenant=fields.get("tenant"),
        operation=operation,
        trace_id=tracing.active_trace_id(),
    )
    _runs[task_id] = _Run(operation, time.perf_counter(), span, span_token, log_token)


def _postrun(task_id: str = "", task: Any = None, state: str | None = None, **_: Any) -> None:
    run = _runs.pop(task_id, None)
    if run is None:
        return
    role = _state["role"]
    metrics.TASK_DURATION.labels(role, run.operation).observe(time.perf_counter() - run.started)
    outcome = OUTCOMES.get(state or "", str(state).lower())
    metrics.TASKS.labels(role, run.operation, outcome).inc()
    if role != "agent" and outcome in ("succeeded", "failed"):
        metrics.JOBS_ENDED.labels(run.operation, outcome).inc()
    run.span.set_attribute("nube.outcome", outcome)
    run.span.end()
    tracing.detach(run.span_token)
    context.unbind(run.log_token)


def _failure(task_id: str = "", exception: BaseException | None = None, **_: Any) -> None:
    run = _runs.get(task_id)
    if run is None:
        return
    code = str(getattr(exception, "code", None) or type(exception).__name__)
    metrics.TASK_FAILURES.labels(run.operation, code).inc()
    run.span.set_status(Status(StatusCode.ERROR, code))


def _retry(request: Any = None, **_: Any) -> None:
    run = _runs.get(str(getattr(request, "id", "")))
    if run is not None:
        metrics.TASK_RETRIES.labels(run.operation).inc()
