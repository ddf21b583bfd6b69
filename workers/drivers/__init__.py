"""Driver selection: one driver per backend kind, chosen by configuration."""

from __future__ import annotations

from typing import Any

from nube.settings import Settings


def load_driver(service: str, settings: Settings) -> Any:
    """The driver that serves ``service`` (``containers`` or ``vms``)."""
    if service == "containers":
        from workers.drivers.docker import DockerDriver

        return DockerDriver(base_url=settings.docker_host)
    if service == "vms":
        from workers.drivers.libvirt import LibvirtDriver

        return LibvirtDriver(
            uri=settings.libvirt_uri,
            node=settings.node,
            domain_type=settings.vm_domain_type,
            pool_root=str(settings.vm_pool_root),
        )
    raise ValueError(f"no driver for service {service!r}")
