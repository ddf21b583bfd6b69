"""Errors of the agent layer: envelope refusals, keyring, audit and policy configuration.

Every leaf subclasses :class:`nube.errors.NubeError`, so a refused message that carries a job id
fails that job with a stable ``code`` and a message that names the cause.
"""

from __future__ import annotations

from typing import ClassVar

from nube.errors import NubeError


class AgentError(NubeError):
    """Sub-base for the agent layer."""


# --- sealed envelope ---------------------------------------------------------------------------


class EnvelopeError(AgentError):
    """A message was refused: it is not a valid, fresh, sealed message for this keyring.

    ``reason`` is a short stable word (``tampered``, ``unknown_key`` ...) kept in ``details``
    and in the audit record, so operators can tell the leaves apart without parsing messages.
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


# --- configuration -----------------------------------------------------------------------------


class KeyringInvalid(AgentError):
    code = "invalid_configuration"
    template = "the keyring is invalid: {why}"


class PolicyInvalid(AgentError):
    code = "invalid_configuration"
    template = "the policy file {path} is invalid: {why}"


class AuditUnavailable(AgentError):
    code = "backend_unavailable"
    status = 503
    retryable = True
    template = "the audit log could not be written: {why}"


class MiddlewareFailed(AgentError):
    """A middleware raised something it should not have: the message is failed, not forwarded."""

    code = "internal"
    template = "the agent's '{middleware}' step failed unexpectedly"
