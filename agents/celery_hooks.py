"""Glue between the sealed serializers and Celery: binding, redaction, refusals, completion.

Wire with :func:`install` (one call per Celery app, in the worker/agent/API bootstrap), or
connect the pieces yourself:

- :func:`bind_and_redact` on ``before_task_publish``: puts the binding into the embed and
  replaces ``argsrepr``/``kwargsrepr`` with a redacted summary (operation, target, tenant).
- :func:`verify_request` at the start of every task (the Task base class ``__call__``).
- :func:`complete_request` on ``task_postrun``: marks the message's nonce DONE.
- :class:`RefusingConsumer` as ``worker_consumer``: every message the worker cannot accept
  (plaintext, pickle, tampered, unknown key, replayed, unknown task) is reported to one
  callback (audit it, fail its job) before Celery acks or rejects it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery, current_task, signals
from celery.worker.consumer import Consumer

from agents.envelope import Binding, ReplayGuard, peek_header
from agents.errors import MessageMisbound, MessageNotSealed
from agents.serializer import (
    BINDING_KEY,
    RESULT_CONTENT_TYPE,
    RESULT_SERIALIZER,
    SEAL_KEY,
    TASK_CONTENT_TYPE,
    TASK_SERIALIZER,
    envelope_error_of,
)

logger = logging.getLogger(__name__)

PUBLISH_HEADER = "nube"
"""Header a publisher may set: ``{"tenant", "job", "op", "target"}``; moved into the seal."""
SYSTEM_TENANT = "-"


def redacted_repr(operation: str, target: str | None, tenant: str) -> tuple[str, str]:
    """``(argsrepr, kwargsrepr)`` that Flower and events show: never argument values."""
    summary = {"operation": operation, "target": target, "tenant": tenant}
    return "()", json.dumps(summary, sort_keys=True)


def _inherited(task_id: str) -> dict[str, Any]:
    """The binding of the running task when it republishes itself (``retry``)."""
    task = current_task
    request = getattr(task, "request", None) if task else None
    bound = getattr(request, BINDING_KEY, None) if request else None
    if isinstance(bound, dict) and getattr(request, "id", None) == task_id:
        return bound
    return {}


def _tenant_in_kwargs(kwargs: Any) -> str | None:
    """The relay's forwarded shape: ``kwargs["job"]["tenant"]``."""
    job = kwargs.get("job") if isinstance(kwargs, dict) else None
    tenant = job.get("tenant") if isinstance(job, dict) else None
    return tenant if isinstance(tenant, str) else None


def bind_and_redact(body: Any, headers: dict[str, Any], **_: Any) -> None:
    """``before_task_publish`` receiver: seal the binding in, keep secrets out of headers."""
    task_name, task_id = headers["task"], headers["id"]
    given = headers.pop(PUBLISH_HEADER, None) or {}
    present = body[2].get(BINDING_KEY)
    bound = {**_inherited(task_id), **(present if isinstance(present, dict) else {}), **given}
    if bound.get("task", task_name) != task_name:
        raise MessageMisbound(field="task", sealed=bound["task"], actual=task_name, job=task_id)
    tenant = bound.get("tenant") or _tenant_in_kwargs(body[1]) or SYSTEM_TENANT
    binding = Binding(task_name, str(bound.get("job") or task_id), tenant)
    body[2][BINDING_KEY] = binding.as_dict()
    operation = str(bound.get("op") or task_name)
    headers["argsrepr"], headers["kwargsrepr"] = redacted_repr(
        operation, bound.get("target"), binding.tenant
    )


def request_binding(request: Any) -> dict[str, Any]:
    """The decoded binding of a task request (``{task, job, tenant, seal}``)."""
    bound = getattr(request, BINDING_KEY, None)
    if not isinstance(bound, dict):
        raise MessageNotSealed(why="the task request carries no sealed binding")
    return bound


def verify_request(task: Any, job_is_task_id: bool = True) -> Binding:
    """Check the sealed binding against the message that carried it; return it.

    Raises :class:`MessageMisbound` when the sealed task name (or, for operations, the job id)
    differs from the Celery message's: a sealed body copied into another message never runs.
    """
    bound = request_binding(task.request)
    if bound.get("task") != task.name:
        raise MessageMisbound(field="task", sealed=bound.get("task"), actual=task.name)
    if job_is_task_id and bound.get("job") != task.request.id:
        raise MessageMisbound(field="job", sealed=bound.get("job"), actual=task.request.id)
    return Binding(bound["task"], bound["job"], bound["tenant"])


def complete_request(guard: ReplayGuard, request: Any) -> None:
    """Mark the request's message DONE in the replay guard (call when the task finished)."""
    bound = getattr(request, BINDING_KEY, None)
    seal = bound.get(SEAL_KEY) if isinstance(bound, dict) else None
    if isinstance(seal, dict) and isinstance(seal.get("nonce"), str):
        guard.complete(seal["nonce"])


# --- refusals ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A message the worker refused: what it claimed to be, and why it was refused."""

    reason: str
    message: str
    job_id: str | None
    task: str | None
    tenant: str | None
    content_type: str | None

    @property
    def code(self) -> str:
        return "message_rejected"


RefusalHandler = Callable[[Refusal], None]


def describe_refusal(message: Any, exc: BaseException | None, reason: str) -> Refusal:
    """Build a :class:`Refusal` from a kombu message and the error that refused it."""
    headers = getattr(message, "headers", None) or {}
    env_err = envelope_error_of(exc)
    peek = peek_header(getattr(message, "body", b"") or b"")
    return Refusal(
        reason=env_err.reason if env_err else reason,
        message=str(env_err or exc or reason),
        job_id=headers.get("id") or (peek.job if peek else None),
        task=headers.get("task") or (peek.task if peek else None),
        tenant=peek.tenant if peek else None,
        content_type=getattr(message, "content_type", None),
    )


class RefusingConsumer(Consumer):
    """Celery's consumer, reporting every refused message before it is acked or rejected."""

    def _report(self, message: Any, exc: BaseException | None, reason: str) -> None:
        handler: RefusalHandler | None = getattr(self.app, "nube_on_refused", None)
        refusal = describe_refusal(message, exc, reason)
        logger.warning("refused message job=%s reason=%s", refusal.job_id, refusal.reason)
        if handler is None:
            return
        try:
            handler(refusal)
        except Exception:  # the refusal must still be acked, never redelivered in a loop
            logger.exception("refusal handler failed for job %s", refusal.job_id)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self._report(message, exc, "undecodable")
        super().on_decode_error(message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._report(message, exc, "not_sealed")
        super().on_invalid_task(body, message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._report(message, None, "unknown_format")
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._report(message, exc, "unknown_task")
        super().on_unknown_task(body, message, exc)


def configure(app: Celery) -> None:
    """Make the sealed serializers the only accepted content of ``app``."""
    app.conf.update(
        task_serializer=TASK_SERIALIZER,
        result_serializer=RESULT_SERIALIZER,
        accept_content=[TASK_CONTENT_TYPE],
        result_accept_content=[RESULT_CONTENT_TYPE],
        worker_consumer="agents.celery_hooks:RefusingConsumer",
    )


def install(
    app: Celery, guard: ReplayGuard | None, on_refused: RefusalHandler | None = None
) -> None:
    """Configure ``app`` and connect the publish and completion hooks.

    Register the serializers first (:func:`agents.serializer.register`). Task-start
    verification stays with the Task base class: call :func:`verify_request` in ``__call__``.
    """
    configure(app)
    app.nube_on_refused = on_refused
    signals.before_task_publish.connect(
        bind_and_redact, weak=False, dispatch_uid="nube.bind_and_redact"
    )
    if guard is not None:

        def _postrun(task: Any = None, state: str | None = None, **_: Any) -> None:
            # No state: the task was interrupted (SystemExit when a SIGTERM reaches the pool
            # child at shutdown), its message is requeued, and the redelivery must be admitted.
            if task is not None and task.app is app and state is not None:
                complete_request(guard, task.request)

        signals.task_postrun.connect(_postrun, weak=False, dispatch_uid=f"nube.postrun.{id(app)}")


def uninstall(app: Celery) -> None:
    """Disconnect what :func:`install` connected (tests; the signals are process-global)."""
    signals.before_task_publish.disconnect(dispatch_uid="nube.bind_and_redact")
    signals.task_postrun.disconnect(dispatch_uid=f"nube.postrun.{id(app)}")
    app.nube_on_refused = None
