"""Glue between the sealed serializers and Celery: binding, redaction, refusals, completion.

Wire with :func:`install` (one call per Celery app, in the worker/agent/API bootstrap):

- :class:`SealedAMQP` as the app's AMQP: :func:`bind_and_redact` puts the binding into the
  embed of every task message it sends and replaces ``argsrepr``/``kwargsrepr`` (in the headers
  and in the ``task-sent`` event) with a redacted summary (operation, target, tenant).
- :class:`nube.sealing.events.SealedEvents` as the app's events (redacted, then sealed) and
  :func:`nube.sealing.control.seal_control_channel` for broadcasts.
- :func:`verify_request` at the start of every task.
- :func:`complete_request` on ``task_postrun``: marks the message's nonce DONE.
- :class:`SealedRequest` as every task's ``Request``: the pool runs the body the consumer
  opened, so a message is decrypted and admitted by the replay guard once, not twice.
- :class:`RefusingConsumer` as ``worker_consumer``: every message the worker cannot accept
  (plaintext, pickle, tampered, unknown key, replayed, unknown task, a sealed body copied under
  another task name or id) is reported to one callback (audit it, fail its job where that is
  right) before Celery acks or rejects it. A misbound copy is refused before it is decoded, so
  it never touches the original's nonce.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from celery import Celery, current_task, signals, states
from celery.app.amqp import AMQP
from celery.exceptions import Ignore
from celery.worker.consumer import Consumer
from celery.worker.request import Request
from vine import promise

from nube.broker import job_of_task
from nube.errors import EnvelopeError, MessageMisbound, MessageNotSealed
from nube.redis_client import REDIS_ERRORS
from nube.sealing.control import seal_control_channel
from nube.sealing.refusals import (
    Refusal,
    RefusalHandler,
    RefusalReporter,
    RefusalThrottle,
    decode_reason,
    describe_refusal,
)
from nube.sealing.replay import ReplayGuard
from nube.sealing.sealer import Binding, peek_header
from nube.sealing.serializer import (
    BINDING_KEY,
    EVENT_SERIALIZER,
    RESULT_CONTENT_TYPE,
    RESULT_SERIALIZER,
    SEAL_KEY,
    TASK_CONTENT_TYPE,
    TASK_SERIALIZER,
    cause_of,
    registered_codec,
)

logger = logging.getLogger(__name__)

PUBLISH_HEADER = "nube"
#: Every sealed task's ``Request`` class (``@app.task(Request=...)``).
SEALED_REQUEST = "nube.sealing.celery_hooks:SealedRequest"
"""Header a publisher may set: ``{"tenant", "job", "op", "target"}``; moved into the seal
(:mod:`nube.publish` sets it on every message)."""
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
    """An operation's tenant: ``kwargs["job"]["tenant"]`` (its :class:`nube.wire.JobMeta`)."""
    job = kwargs.get("job") if isinstance(kwargs, dict) else None
    tenant = job.get("tenant") if isinstance(job, dict) else None
    return tenant if isinstance(tenant, str) else None


def bind_and_redact(body: Any, headers: dict[str, Any]) -> None:
    """Put the binding into a task body's embed; keep argument values out of its headers."""
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


def misbinding(
    sealed_task: Any, sealed_job: Any, task: str, task_id: str
) -> MessageMisbound | None:
    """Why a sealed binding does not belong to the message carrying it (None when it does).

    An operation's task id is its job id; a relay message's is ``relay-<job id>``.
    """
    if sealed_task != task:
        return MessageMisbound(field="task", sealed=sealed_task, actual=task, job=task_id)
    if sealed_job != job_of_task(task_id)[0]:
        return MessageMisbound(field="job", sealed=sealed_job, actual=task_id, job=task_id)
    return None


REFUSED = "nube_refused"
"""Set on a task request refused at start: its nonce is left as it was."""


def verify_request(task: Any) -> Binding:
    """Check the sealed binding against the message that carried it; return it.

    A sealed body copied into another message (another task name or id) never runs: it is
    reported as a refusal and the task is ignored, leaving the original's nonce untouched.
    The consumer refuses such copies before decoding them; this is the check after decoding.
    """
    bound = request_binding(task.request)
    error = misbinding(bound.get("task"), bound.get("job"), task.name, task.request.id)
    if error is not None:
        setattr(task.request, REFUSED, True)
        _reporter(task.app).report(_refusal_of_request(task, bound, error))
        raise Ignore()
    return Binding(bound["task"], bound["job"], bound["tenant"])


def _refusal_of_request(task: Any, bound: dict[str, Any], error: MessageMisbound) -> Refusal:
    return Refusal(
        reason=str(error.details["reason"]),
        message=error.message,
        job_id=task.request.id,
        task=task.name,
        tenant=bound.get("tenant"),
        content_type=TASK_CONTENT_TYPE,
    )


def complete_request(guard: ReplayGuard, request: Any) -> None:
    """Mark the request's message DONE in the replay guard (call when the task finished)."""
    if getattr(request, REFUSED, False):
        return
    bound = getattr(request, BINDING_KEY, None)
    seal = bound.get(SEAL_KEY) if isinstance(bound, dict) else None
    if isinstance(seal, dict) and isinstance(seal.get("nonce"), str):
        guard.complete(seal["nonce"])


class SealedAMQP(AMQP):
    """Celery's AMQP; every task message is bound and redacted before it is sent.

    Here rather than in ``before_task_publish``: the ``task-sent`` event is built from the
    message before that signal, and must show the redacted summary too.
    """

    def _create_task_sender(self) -> Any:
        send = super()._create_task_sender()

        def send_task_message(
            producer: Any, name: str, message: Any, *, headers: Any = None, **kwargs: Any
        ) -> Any:
            merged = {**message.headers, **(headers or {})}
            bind_and_redact(message.body, merged)
            message.headers.clear()
            message.headers.update(merged)
            if message.sent_event is not None:
                message.sent_event.update(args=merged["argsrepr"], kwargs=merged["kwargsrepr"])
            return send(producer, name, message, **kwargs)

        return send_task_message


# --- refusals ----------------------------------------------------------------------------------


def _reporter(app: Celery) -> RefusalReporter:
    reporter: RefusalReporter | None = getattr(app, "nube_refusals", None)
    return reporter or RefusalReporter(None, RefusalThrottle())


def _is_control(message: Any) -> bool:
    exchange = (getattr(message, "delivery_info", None) or {}).get("exchange") or ""
    return str(exchange).endswith("pidbox")


def _misbound_copy(message: Any) -> EnvelopeError | None:
    """Why a task message must be refused before it is decoded: a sealed body under another
    message's task name or id (None when its readable header matches the message).

    A mismatching header is then authenticated, so a tampered message is refused as tampered
    (checks keep their order: authentication, then binding); the replay guard is never asked.
    """
    headers = getattr(message, "headers", None) or {}
    body = getattr(message, "body", b"") or b""
    peek = peek_header(body)
    if peek is None or not isinstance(headers.get("task"), str) or "id" not in headers:
        return None
    misbound = misbinding(peek.task, peek.job, headers["task"], str(headers["id"]))
    codec = registered_codec()
    if misbound is not None and codec is not None:
        try:
            codec.sealer.open(body)
        except EnvelopeError as e:
            return e
    return misbound


class RefusingConsumer(Consumer):
    """Celery's consumer, reporting every refused message before it is acked or rejected."""

    def _report(self, message: Any, exc: BaseException | None, reason: str) -> None:
        channel = "control" if _is_control(message) else "task"
        _reporter(self.app).report(describe_refusal(message, exc, reason, channel=channel))

    def create_task_handler(self, promise: Any = promise) -> Any:
        handle = super().create_task_handler(promise)

        def on_task_received(message: Any) -> Any:
            refused = _misbound_copy(message)
            if refused is None:
                return handle(message)
            self._report(message, refused, "misbound")
            message.ack()
            return None

        return on_task_received

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        # Not Celery's: it logs the body (which may hold secrets) with a traceback. On Redis,
        # the control channel's undecodable messages land here too.
        if _redis_failed(exc):  # the replay guard could not reach Redis: not the message's fault
            logger.warning(
                "message left for redelivery: Redis unavailable while opening it (%s)", exc
            )
            with contextlib.suppress(Exception):
                message.reject(requeue=True)
            return
        self._report(message, exc, decode_reason(exc))
        with contextlib.suppress(Exception):
            message.ack()

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._report(message, exc, "not_sealed")
        super().on_invalid_task(body, message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._report(message, None, "unknown_format")
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._report(message, exc, "unknown_task")
        super().on_unknown_task(body, message, exc)


class SealedRequest(Request):
    """Celery's request, carrying the body its consumer opened to the pool.

    Celery decodes a protocol-2 message in the consumer (to read it) and again in the pool (to
    run it). Sealed, that is a second decryption and a second nonce claim in Redis per message;
    and a pool that could not reach Redis for that claim would have Celery acknowledge the
    message as a failed task (its job lost on RabbitMQ), or, on the agent's thread pool, drop
    the failure and hold the message unacknowledged. The pool (a child process or a thread of
    the same worker) gets the opened payload instead: nothing crosses the broker differently.
    """

    def __init__(
        self, message: Any, *args: Any, body: Any = None, decoded: bool = False, **kwargs: Any
    ) -> None:
        if not decoded and message.content_type == TASK_CONTENT_TYPE:
            body, decoded = message.payload, True  # opened (and admitted) once, by the consumer
        super().__init__(message, *args, body=body, decoded=decoded, **kwargs)


def _redis_failed(exc: BaseException | None) -> bool:
    """Whether a Redis error (lost connection, a failover, no replica in time) is behind
    ``exc``."""
    return cause_of(exc, REDIS_ERRORS) is not None


def configure(app: Celery) -> None:
    """Make sealed content the only content ``app`` sends and accepts: tasks, results, events
    and the control channel."""
    app.conf.update(
        task_serializer=TASK_SERIALIZER,
        result_serializer=RESULT_SERIALIZER,
        event_serializer=EVENT_SERIALIZER,
        accept_content=[TASK_CONTENT_TYPE],
        result_accept_content=[RESULT_CONTENT_TYPE],
        worker_consumer="nube.sealing.celery_hooks:RefusingConsumer",
    )
    # Celery builds these lazily from the class names; drop any already built.
    app.amqp_cls = "nube.sealing.celery_hooks:SealedAMQP"
    app.events_cls = "nube.sealing.events:SealedEvents"
    for built in ("amqp", "events", "control"):
        app.__dict__.pop(built, None)


def install(
    app: Celery,
    guard: ReplayGuard | None,
    on_refused: RefusalHandler | None = None,
    throttle: RefusalThrottle | None = None,
) -> None:
    """Configure ``app`` and connect the completion hook; refusals go to ``on_refused``.

    Register the serializers first (:func:`nube.sealing.serializer.register`). Task-start
    verification stays with the task: call :func:`verify_request` first thing.
    """
    configure(app)
    app.nube_refusals = RefusalReporter(on_refused, throttle or RefusalThrottle())
    seal_control_channel(app, app.nube_refusals)
    if guard is not None:

        def _postrun(task: Any = None, state: str | None = None, **_: Any) -> None:
            # No state: the task was interrupted (SystemExit when a SIGTERM reaches the pool
            # child at shutdown), its message is requeued, and the redelivery must be admitted.
            # REJECTED: the message went back to the broker (requeued), so it is not finished.
            if (
                task is not None
                and task.app is app
                and state is not None
                and state != states.REJECTED
            ):
                complete_request(guard, task.request)

        signals.task_postrun.connect(_postrun, weak=False, dispatch_uid=f"nube.postrun.{id(app)}")


def uninstall(app: Celery) -> None:
    """Disconnect what :func:`install` connected (tests; the signals are process-global)."""
    signals.task_postrun.disconnect(dispatch_uid=f"nube.postrun.{id(app)}")
    app.nube_refusals = None
