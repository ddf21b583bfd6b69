"""Virtual machine operations (libvirt), served by the ``vms`` queue."""

from __future__ import annotations

from pydantic import Field

from nube.catalog import NoParams, Operation, Params


class VmList(Params):
    """List the caller's domains."""

    state: str = Field(
        default="all",
        pattern="^(all|active|inactive|persistent|transient|running|paused|shutoff)$",
        description="Which domains to list",
    )


OPERATIONS = [
    Operation(
        name="vms.hypervisor_info",
        params=NoParams,
        method="GET",
        path="/v1/hypervisors",
        summary="Hypervisor and node information of the VM worker's libvirt connection",
        handler="hypervisor_info",
        scope="read",
        time_limit=30,
    ),
    Operation(
        name="vms.list",
        params=VmList,
        method="GET",
        path="/v1/vms",
        summary="List the caller's virtual machines",
        handler="list_domains",
        scope="read",
        time_limit=30,
    ),
]
