"""Driver selection: one driver per backend kind, chosen by configuration.

``NUBE_CONTAINER_DRIVER`` (``docker`` or ``fake``) serves ``containers``, ``NUBE_VM_DRIVER``
(``libvirt`` or ``fake``) serves ``vms``. A backend's library is imported only when its driver
is chosen, so a worker with fake drivers needs neither Docker nor libvirt.
"""

from __future__ import annotations

from typing import Literal, overload

from nube.settings import Settings
from workers.drivers.base import Driver, JobContext, Result
from workers.drivers.containers import ContainerDriver
from workers.drivers.hypervisor import HypervisorDriver
from workers.drivers.peers import parse_peers

__all__ = [
    "ContainerDriver",
    "Driver",
    "HypervisorDriver",
    "JobContext",
    "Result",
    "load_driver",
]


@overload
def load_driver(service: Literal["containers"], settings: Settings) -> ContainerDriver: ...
@overload
def load_driver(service: Literal["vms"], settings: Settings) -> HypervisorDriver: ...
@overload
def load_driver(service: str, settings: Settings) -> Driver: ...
def load_driver(service: str, settings: Settings) -> Driver:
    """The driver that serves ``service`` (``containers`` or ``vms``); else ``ValueError``."""
    if service == "containers":
        return _container_driver(settings)
    if service == "vms":
        return _hypervisor_driver(settings)
    raise ValueError(f"no driver for service {service!r}")


def _container_driver(settings: Settings) -> ContainerDriver:
    if settings.container_driver == "fake":
        from workers.drivers.fake import FakeContainerDriver

        return FakeContainerDriver()
    from workers.drivers.docker import DockerDriver

    return DockerDriver(base_url=settings.docker_host)


def _hypervisor_driver(settings: Settings) -> HypervisorDriver:
    peers = parse_peers(settings.libvirt_peers)
    if settings.vm_driver == "fake":
        from workers.drivers.fake import FakeHypervisorDriver

        return FakeHypervisorDriver(
            node=settings.node, pool_root=str(settings.vm_pool_root), peers=peers
        )
    from workers.drivers.libvirt import LibvirtDriver

    return LibvirtDriver(
        uri=settings.libvirt_uri,
        node=settings.node,
        domain_type=settings.vm_domain_type,
        pool_root=str(settings.vm_pool_root),
        peers=peers,
        migration_hosts=parse_peers(settings.libvirt_migration_hosts),
    )
