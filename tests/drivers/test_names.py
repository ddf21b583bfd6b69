"""Names another tenant holds, on both driver kinds (fake and real): the contract of
:func:`workers.drivers.base.name_taken`.

Names are per backend (a Docker engine's containers, networks and volumes; a libvirt
connection's domains), so a name another tenant holds cannot be used. A create (or rename) with
such a name gets the one answer a taken name always gets, the same as for a name the caller
holds itself: ``Conflict`` "the <kind> name '<name>' is not available", with no id, state or
owner of what holds it (Docker's own message would name the holder's container id).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nube.catalog.container_models import (
    ContainerCreate,
    ContainerList,
    ContainerNetworkCreate,
    ContainerRename,
    ContainerRun,
    ContainerVolumeCreate,
)
from nube.catalog.vm_models import VmDefine
from nube.errors import Conflict, NubeError
from workers.drivers import ContainerDriver, HypervisorDriver, JobContext

from .conftest import IMAGE, TENANT_B, MakeCtx, Name


def taken(call: Any) -> dict[str, Any]:
    """The error a call with a taken name raises, as a job stores it."""
    with pytest.raises(Conflict) as info:
        call()
    error: NubeError = info.value
    return error.to_dict()


def answer_for(kind: str, name: str) -> dict[str, Any]:
    return {
        "code": "conflict",
        "status": 409,
        "message": f"the {kind} name '{name}' is not available",
        "retryable": False,
        "details": {"kind": kind, "name": name},
        "title": "Conflict",
    }


def test_container_network_and_volume_names_another_tenant_holds(
    container_driver: ContainerDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    box, net, vol = name("box"), name("net"), name("vol")
    held = container_driver.create(ContainerCreate(image=IMAGE, name=box), ctx)
    container_driver.network_create(ContainerNetworkCreate(name=net), ctx)
    container_driver.volume_create(ContainerVolumeCreate(name=vol), ctx)
    theirs = container_driver.create(ContainerCreate(image=IMAGE), make_ctx(tenant=TENANT_B))
    d = container_driver

    def other() -> JobContext:
        """A new job of tenant B (one job makes one thing: a redelivery finds it)."""
        return make_ctx(tenant=TENANT_B)

    answers = {
        "create": taken(lambda: d.create(ContainerCreate(image=IMAGE, name=box), other())),
        "run": taken(lambda: d.run(ContainerRun(image=IMAGE, name=box, detach=True), other())),
        "rename": taken(lambda: d.rename(ContainerRename(id=theirs["id"], name=box), other())),
        "network": taken(lambda: d.network_create(ContainerNetworkCreate(name=net), other())),
        "volume": taken(lambda: d.volume_create(ContainerVolumeCreate(name=vol), other())),
    }
    assert answers == {
        "create": answer_for("container", box),
        "run": answer_for("container", box),
        "rename": answer_for("container", box),
        "network": answer_for("network", net),
        "volume": answer_for("volume", vol),
    }
    assert held["id"] not in json.dumps(answers) and held["id"][:12] not in json.dumps(answers)
    # the holder itself gets the very same answer: it tells nobody whose the name is
    mine = make_ctx()
    assert (
        taken(lambda: d.create(ContainerCreate(image=IMAGE, name=box), mine)) == answers["create"]
    )
    assert (
        taken(lambda: d.volume_create(ContainerVolumeCreate(name=vol), mine)) == answers["volume"]
    )
    # and nothing was made for the other tenant
    listed = d.list(ContainerList(all=True), other())["containers"]
    assert [c["id"] for c in listed] == [theirs["id"]]


def test_a_vm_name_another_tenant_holds(
    hypervisor: HypervisorDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    vm = name("vm")
    hypervisor.define_domain(VmDefine(name=vm, memory_mib=64), ctx)
    theirs = taken(
        lambda: hypervisor.define_domain(
            VmDefine(name=vm, memory_mib=64), make_ctx(tenant=TENANT_B)
        )
    )
    own = taken(lambda: hypervisor.define_domain(VmDefine(name=vm, memory_mib=64), make_ctx()))
    assert theirs == own == answer_for("VM", vm)
