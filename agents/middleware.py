"""The relay's middleware chain (after dramatiq's ``Middleware`` and ``Broker.emit_before``).

Each middleware sees every message twice: ``before_relay`` in chain order (it may change the
message or refuse it by raising a :class:`~nube.errors.NubeError`) and ``after_relay`` in reverse
order once the message was forwarded or refused. A middleware that fails unexpectedly is logged
and the message is refused: nothing is ever half-forwarded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nube.errors import MiddlewareFailed, NubeError
from nube.wire import Hardening, JobMeta, RelayRequest

log = logging.getLogger(__name__)


@dataclass
class RelayMessage:
    """A relay request on its way from the API to a worker queue, as the middlewares see and
    change it."""

    job_id: str
    operation: str
    tenant: str
    params: dict[str, Any]
    token_id: str | None = None
    admin: bool = False
    queue: str | None = None
    """Set by routing: the worker queue the message goes to."""
    hardening: Hardening = field(default_factory=Hardening)
    """Set by the policy: what it requires of a container create."""
    notes: dict[str, Any] = field(default_factory=dict)
    """What middlewares tell each other (decisions)."""

    @classmethod
    def of(cls, request: RelayRequest) -> RelayMessage:
        """The message of a validated relay request."""
        return cls(
            job_id=request.job_id,
            operation=request.operation,
            tenant=request.tenant,
            params=dict(request.params),
            token_id=request.token_id,
            admin=request.admin,
        )

    def job_meta(self) -> JobMeta:
        """The job as the worker receives it with the operation."""
        return JobMeta(tenant=self.tenant, admin=self.admin, hardening=self.hardening)


class Middleware:
    """Base class: every hook is a no-op."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def before_relay(self, message: RelayMessage) -> None:
        """Inspect or change the message; raise a ``NubeError`` to refuse it."""

    def after_relay(self, message: RelayMessage, error: NubeError | None) -> None:
        """Called after forwarding (``error`` None) or refusal; must not raise."""


class Chain:
    """Runs middlewares in order; isolates the ones that fail unexpectedly."""

    def __init__(self, middlewares: Sequence[Middleware]) -> None:
        self.middlewares = list(middlewares)

    def before(self, message: RelayMessage) -> None:
        for middleware in self.middlewares:
            try:
                middleware.before_relay(message)
            except NubeError:
                raise
            except Exception as e:
                log.exception("middleware %s failed on job %s", middleware.name, message.job_id)
                raise MiddlewareFailed(middleware=middleware.name) from e

    def after(self, message: RelayMessage, error: NubeError | None) -> None:
        for middleware in reversed(self.middlewares):
            try:
                middleware.after_relay(message, error)
            except Exception:
                log.exception("after-hook of %s failed on job %s", middleware.name, message.job_id)
