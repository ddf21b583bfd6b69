"""What crosses the broker, as named models (the one wire format of nube's own messages).

Two messages carry a job from the API to a worker:

- a :class:`RelayRequest` — the API asks the agent to relay one job (the ``agent.relay`` task's
  one argument on ``nube.ingress``; the job store keeps it until the job ends, so the agent's
  reconciler can publish it again);
- an operation — the agent forwards the job to a worker queue as the catalog operation's task,
  ``(params, job)``: the parameters the relay validated and the :class:`JobMeta`.

:mod:`nube.publish` builds and sends both; readers validate what arrives with these models, and
a malformed message is refused naming the field (:func:`field_error`), never a value. Sealing
(:mod:`nube.sealing`) wraps the serialized message in an envelope; these are what is inside.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nube.observability.tracing import current_traceparent


class WireModel(BaseModel):
    """A message (or part of one): unknown fields and coerced types are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Hardening(WireModel):
    """What the agent's policy requires of a container it allowed, backend-neutral.

    Each field fills only what the request left unset; it never loosens what the request asked.
    The default (every field off or unset) adds nothing. Only a container driver maps it to its
    backend's options (the Docker driver: :func:`workers.drivers.docker.specs.hardening_kwargs`).
    """

    drop_all_capabilities: bool = False
    """Drop every Linux capability."""
    no_new_privileges: bool = False
    """The processes cannot gain privileges (setuid binaries, file capabilities)."""
    memory: int | None = Field(default=None, ge=1)
    """Memory limit in bytes, when the request gives none."""
    cpus: float | None = Field(default=None, gt=0)
    """CPU limit in CPUs, when the request gives none."""
    pids_limit: int | None = Field(default=None, ge=1)
    """Process limit, when the request gives none."""


class RelayRequest(WireModel):
    """What the API sends the agent for one job: who asks to run which operation with what."""

    job_id: str
    operation: str
    """The catalog operation's name (``containers.run``)."""
    tenant: str
    params: dict[str, Any] = Field(default_factory=dict)
    """The parameters as the API validated them (the agent validates them again)."""
    token_id: str | None = None
    """The token that submitted the job (for the audit log)."""
    admin: bool = False
    """Whether that token is an admin's (the policy's ``admin_bypass``; routing to another
    tenant's VM)."""
    traceparent: str | None = Field(default_factory=current_traceparent)
    """The W3C trace context of the span that made the request (the API's request), so that the
    agent continues the job's trace; None when nothing is traced."""
    sent_at: float = Field(default_factory=time.time)
    """When it was made (Unix time): the agent measures the wait in ``nube.ingress``."""


class JobMeta(WireModel):
    """The job an operation belongs to, as the agent forwards it to a worker (the ``job``
    argument of every operation task; the job id is the task id)."""

    tenant: str
    admin: bool = False
    hardening: Hardening = Field(default_factory=Hardening)
    """What the policy requires of a container create (empty for every other operation)."""
    traceparent: str | None = Field(default_factory=current_traceparent)
    """The W3C trace context of the agent's relay span (the worker continues the trace)."""
    sent_at: float = Field(default_factory=time.time)
    """When the agent made it (Unix time): the worker measures the wait in its queue."""


def field_error(e: ValidationError) -> str:
    """``<field>: <why>`` of the first error: the field's name, never its value (a value may be
    a parameter)."""
    err = e.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "message"
    return f"{where}: {err['msg']}"
