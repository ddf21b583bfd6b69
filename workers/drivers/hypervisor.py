"""The hypervisor driver interface. Tasks speak only to this; libvirt lives behind it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from nube.catalog import NoParams
from nube.catalog.vms import VmList
from workers.context import JobContext


class HypervisorDriver(ABC):
    """Runs VM operations against one hypervisor connection.

    Contract for every method: JSON-able results; only :mod:`nube.errors` are raised (a lost
    connection is ``BackendUnavailable`` after reconnecting failed); creates are keyed by the job
    id kept in the domain's metadata; reads show only the tenant's objects.
    """

    name: str = "abstract"

    @abstractmethod
    def version(self) -> str:
        """Backend version string, for the worker's heartbeat."""

    @abstractmethod
    def hypervisor_info(self, params: NoParams, ctx: JobContext) -> dict[str, Any]:
        """Hostname, node info, max vCPUs, hypervisor and libvirt versions, URI."""

    @abstractmethod
    def list_domains(self, params: VmList, ctx: JobContext) -> dict[str, Any]:
        """The tenant's domains as ``{"vms": [...]}``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
