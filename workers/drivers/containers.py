"""The container driver interface. Tasks speak only to this; Docker lives behind it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from nube.catalog.containers import ContainerList, ContainerRun
from workers.context import JobContext


class ContainerDriver(ABC):
    """Runs container operations for one engine.

    Contract for every method: it returns JSON-able data; it raises only :mod:`nube.errors`
    (``NotFound``, ``Conflict``, ``BackendUnavailable`` for a transient engine fault, ...); it
    never lets the backend library's exception types escape. Creates are keyed by
    ``ctx.job_id`` (the ``nube.job`` label): called twice for one job they make one resource.
    Reads show only resources labelled with ``ctx.tenant``.
    """

    name: str = "abstract"

    @abstractmethod
    def version(self) -> str:
        """Backend version string, for the worker's heartbeat."""

    @abstractmethod
    def run(self, params: ContainerRun, ctx: JobContext) -> dict[str, Any]:
        """Create and start a container, wait for it to exit, return exit code and output.

        The container is removed afterwards. A redelivered call finds the container of the first
        attempt (by its ``nube.job`` label) and waits for it instead of starting another.
        """

    @abstractmethod
    def list(self, params: ContainerList, ctx: JobContext) -> dict[str, Any]:
        """The tenant's containers as ``{"containers": [...]}``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
