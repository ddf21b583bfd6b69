"""What a driver method is told about the job it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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
    hardening: dict[str, Any] = field(default_factory=dict)
    """Defaults the agent's policy requires for a create (``cap_drop_all``, ``pids_limit``...)."""
    report_progress: Callable[[dict[str, Any]], None] = field(default=_no_progress)

    @property
    def labels(self) -> dict[str, str]:
        return {"nube.tenant": self.tenant, "nube.job": self.job_id}
