"""One error tree for all of nube.

Every error has a stable ``code`` (the problem+json ``code`` member), an HTTP ``status``, a
``title`` and a message template. Layers raise the leaves; the API maps any :class:`NubeError` to
problem+json in one handler, and workers store ``to_dict()`` on the failed job. Backend libraries'
own exception types never leave a driver: drivers translate them into these.

A message (and its details) may quote an operation's parameters or a backend's own text, so only
the job's owner reads it: the job record keeps it sealed, and what leaves a worker through Celery
(results, events, log lines) is :meth:`NubeError.redacted`, which says no more than the title.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self


class NubeError(Exception):
    """Base of every error nube reports to a client."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    retryable: ClassVar[bool] = False
    template: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.details = details
        self.message = message or self._format(details)
        super().__init__(self.message)

    @classmethod
    def _format(cls, details: dict[str, Any]) -> str:
        try:
            return cls.template.format(**details)
        except (KeyError, IndexError):
            return cls.template

    def to_dict(self) -> dict[str, Any]:
        """The job's ``error`` member: code, HTTP status, message, retryable, details (and the
        ``title``, which the job store keeps readable where it seals the message)."""
        return {
            "code": self.code,
            "status": self.status,
            "message": self.message,
            "retryable": self.retryable,
            "details": _jsonable(self.details),
            "title": self.title,
        }

    def redacted(self) -> Self:
        """A copy that tells only what kind of error this is: the same class (so the same
        ``code``, ``status`` and ``retryable``), the class's ``title`` as its message, no
        details, and no cause. Workers raise this one through Celery, whose results, events
        and log lines are read by more than the job's owner."""
        copy = type(self).__new__(type(self))
        NubeError.__init__(copy, self.title)
        return copy


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in details.items():
        out[key] = (
            value
            if isinstance(value, (str, int, float, bool, list, dict, type(None)))
            else str(value)
        )
    return out


# --- client errors -----------------------------------------------------------------------------


class InvalidRequest(NubeError):
    code = "invalid_request"
    status = 422
    title = "Invalid request"
    template = "the request is not valid"


class MalformedBody(InvalidRequest):
    status = 400
    template = "the body is not valid JSON"


class PayloadTooLarge(InvalidRequest):
    status = 413
    title = "Payload too large"
    template = "the body is larger than {limit} bytes"


class Unauthorized(NubeError):
    code = "unauthorized"
    status = 401
    title = "Unauthorized"
    template = "a valid bearer token is required"


class Forbidden(NubeError):
    code = "forbidden"
    status = 403
    title = "Forbidden"
    template = "the token lacks the '{scope}' scope"


class PolicyDenied(NubeError):
    code = "policy_denied"
    status = 403
    title = "Denied by policy"
    template = "denied by policy rule '{rule}'"


class NotFound(NubeError):
    code = "not_found"
    status = 404
    title = "Not found"
    template = "{kind} '{id}' was not found"


class Conflict(NubeError):
    code = "conflict"
    status = 409
    title = "Conflict"
    template = "the request conflicts with the current state"


class IdempotencyKeyReused(NubeError):
    code = "idempotency_key_reused"
    status = 422
    title = "Idempotency key reused"
    template = "this Idempotency-Key was used with another request body"


class RateLimited(NubeError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"
    template = "rate limit exceeded; retry after {retry_after} s"


# --- job outcomes --------------------------------------------------------------------------------


class Cancelled(NubeError):
    code = "cancelled"
    status = 409
    title = "Cancelled"
    template = "the job was cancelled"


class Timeout(NubeError):
    code = "timeout"
    status = 504
    title = "Timed out"
    template = "the operation ran past its time limit of {limit} s"


class WorkerLost(NubeError):
    code = "worker_lost"
    status = 500
    title = "Worker lost"
    template = "the worker running this job died {attempts} times"


# --- backend errors ------------------------------------------------------------------------------


class BackendError(NubeError):
    """Sub-base for what a driver reports about its backend."""


class BackendUnavailable(BackendError):
    code = "backend_unavailable"
    status = 503
    title = "Backend unavailable"
    retryable = True
    template = "the {backend} backend is unavailable"


class BackendFailed(BackendError):
    code = "internal"
    status = 500
    title = "Backend error"
    template = "the backend failed: {reason}"


class BrokerUnavailable(NubeError):
    code = "backend_unavailable"
    status = 503
    title = "Broker unavailable"
    retryable = True
    template = "the message broker is unavailable"


# --- sealed messages (nube.sealing) --------------------------------------------------------------


class SealingError(NubeError):
    """Sub-base for the sealing layer: refused messages and an unusable keyring."""


class EnvelopeError(SealingError):
    """A message was refused: it is not a valid, fresh, sealed message for this keyring.

    ``reason`` is a short stable word (``tampered``, ``unknown_key`` ...) kept in ``details``
    and in the audit record, so operators can tell the leaves apart without parsing messages.
    A refused message that carries a job id fails that job with this ``code``.
    """

    code = "message_rejected"
    status = 400
    title = "Message rejected"
    reason: ClassVar[str] = "rejected"
    template = "the message was rejected"

    def __init__(self, message: str | None = None, **details: object) -> None:
        details.setdefault("reason", self.reason)
        super().__init__(message, **details)


class MessageNotSealed(EnvelopeError):
    reason = "not_sealed"
    template = "the message is not a sealed nube envelope ({why})"


class MessageTampered(EnvelopeError):
    reason = "tampered"
    template = "the message failed authentication with key '{kid}' (tampered or wrong key)"


class KeyUnknown(EnvelopeError):
    reason = "unknown_key"
    template = (
        "cannot decrypt: the message was sealed with key id '{kid}', which is not in the "
        "keyring (known: {known})"
    )


class MessageExpired(EnvelopeError):
    reason = "expired"
    template = "the message is outside the replay window ({age_s} s old, window {window_s} s)"


class MessageReplayed(EnvelopeError):
    reason = "replayed"
    template = "the message was already processed (nonce {nonce}); a replay is refused"


class MessageMisbound(EnvelopeError):
    """A sealed body under another message's task name or id (a copy, or a forgery)."""

    reason = "misbound"
    template = (
        "the sealed binding does not match the message: {field} is {sealed!r}, not {actual!r}"
    )
    #: The audit reason per mismatched field: ``task`` is the task name, ``job`` its id.
    FIELD_REASONS: ClassVar[dict[str, str]] = {
        "task": "misbound_task_name",
        "job": "misbound_task_id",
        "tenant": "misbound_tenant",
    }

    def __init__(self, message: str | None = None, **details: object) -> None:
        details.setdefault("reason", self.FIELD_REASONS.get(str(details.get("field")), "misbound"))
        super().__init__(message, **details)


class ModeNotAllowed(EnvelopeError):
    reason = "mode"
    template = "a '{alg}' (signed but readable) message is refused in active mode"


class KeyringInvalid(SealingError):
    code = "invalid_configuration"
    template = "the keyring is invalid: {why}"


# --- the audit log (nube.audit) ------------------------------------------------------------------


class AuditError(NubeError):
    """Sub-base for the audit log."""


class AuditUnavailable(AuditError):
    code = "backend_unavailable"
    status = 503
    retryable = True
    template = "the audit log could not be written: {why}"


# --- the agent's relay (agents) ------------------------------------------------------------------


class RelayError(NubeError):
    """Sub-base for the agent's relay: its policy file and its middleware chain."""


class PolicyInvalid(RelayError):
    code = "invalid_configuration"
    template = "the policy file {path} is invalid: {why}"


class MiddlewareFailed(RelayError):
    """A middleware raised something it should not have: the message is failed, not forwarded."""

    code = "internal"
    template = "the agent's '{middleware}' step failed unexpectedly"


# --- from a stored error back to its class ------------------------------------------------------


def error_class(code: str, title: str | None = None) -> type[NubeError]:
    """The error class a stored error (a job's ``error``) came from: the class with that
    ``code`` and ``title`` (``invalid_request`` is 422, 400 or 413 by class), else the most
    general class with that ``code``, else :class:`NubeError` (``internal``, 500).

    Lets the API answer a failed job with the error's own status and title when the record
    carries only its code (and, where it was sealed, its title)."""
    by_code: type[NubeError] | None = None
    for cls in _classes():
        if cls.code != code:
            continue
        if title is None or cls.title == title:
            return cls
        by_code = by_code or cls
    return by_code or NubeError


def _classes() -> list[type[NubeError]]:
    """Every error class, the more general first (breadth first from :class:`NubeError`)."""
    found: list[type[NubeError]] = []
    level: list[type[NubeError]] = [NubeError]
    while level:
        found += level
        level = [sub for cls in level for sub in cls.__subclasses__() if sub not in found]
    return found
