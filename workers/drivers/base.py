"""What every driver shares, and all a driver needs from its caller.

A driver package imports nothing from ``workers`` outside ``workers.drivers``: the job it runs
arrives as a :class:`JobContext`, and the worker's runtime sees a driver as a :class:`Driver`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from nube.errors import Conflict
from nube.wire import Hardening

Result = dict[str, Any]
"""What a driver operation returns: JSON-able data."""


def _no_progress(progress: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class JobContext:
    """The job a driver call belongs to.

    Drivers label every resource they create with :attr:`labels` so that a redelivered create
    finds what an earlier attempt made, and so that lists show only the caller's resources.
    """

    job_id: str
    tenant: str
    operation: str
    admin: bool = False
    attempt: int = 0
    """Which delivery of the job this is (1 for the first); 0 when unknown (a direct call). On
    a first delivery no earlier attempt can have made anything, so a create need not look."""
    hardening: Hardening = field(default_factory=Hardening)
    """What the agent's policy requires of a container create (backend-neutral: each container
    driver maps it to its backend's options); empty for every other operation."""
    report_progress: Callable[[dict[str, Any]], None] = field(default=_no_progress)
    after_recorded: list[Callable[[], None]] | None = None
    """What to do once the job's result is in its record: the runner gives a list and runs it
    after writing the result; ``None`` (a direct call, nobody records it) runs each at once."""

    @property
    def may_have_made(self) -> bool:
        """Whether an earlier delivery of this job may have made its resource already."""
        return self.attempt != 1

    @property
    def labels(self) -> dict[str, str]:
        return {"nube.tenant": self.tenant, "nube.job": self.job_id}

    def when_recorded(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the job's result is recorded (a finished run's container is
        removed then: until the job is terminal, a redelivery must find it, see
        :meth:`~workers.drivers.containers.ContainerDriver.run`)."""
        if self.after_recorded is None:
            action()
        else:
            self.after_recorded.append(action)


def name_taken(kind: str, name: str) -> Conflict:
    """The answer to a create (or rename) with a name the caller's tenant already holds.

    Names are scoped per tenant (:mod:`workers.drivers.names`): another tenant's ``web`` is
    another backend name, so this is only ever about the caller's own names (or, once in four
    billion, a tenant whose prefix collides: the same answer, naming nobody). It says the user's
    name only, never an id or state (the backend's own message would name the holder's id)."""
    return Conflict(f"the {kind} name '{name}' is already in use", kind=kind, name=name)


def job_tag(job_id: str) -> str:
    """A short, stable, name-safe tag of a job id (for names of what the job creates)."""
    return hashlib.sha256(job_id.encode()).hexdigest()[:8]


@runtime_checkable
class Driver(Protocol):
    """What the worker's runtime knows of any driver, whatever its backend kind.

    Operations are looked up by the catalog's ``handler`` name and called as
    ``handler(params, ctx)``; both :class:`~workers.drivers.containers.ContainerDriver` and
    :class:`~workers.drivers.hypervisor.HypervisorDriver` satisfy this.
    """

    name: str
    """The backend's name (``docker``, ``libvirt``, ``fake``), for the worker's heartbeat."""

    def version(self) -> str:
        """Backend version string, for the worker's heartbeat."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
