"""Tenant-scoped names, on both driver kinds (fake and real): :mod:`workers.drivers.names`.

A name is unique per tenant: tenant B may create a container, network, volume or VM called
``web`` while tenant A holds ``web``; both exist in the backend (under their backend names,
``n<tag of the tenant>-web``), and each tenant lists, gets and acts on its own under ``web``.
Only a name the caller itself holds is ``Conflict`` ("the <kind> name '<name>' is already in
use", no id, state or owner). What the driver returns and the errors it raises show the user's
names, never a backend name.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from nube.catalog.container_models import (
    ContainerCreate,
    ContainerList,
    ContainerNetworkConnect,
    ContainerNetworkCreate,
    ContainerNetworkRef,
    ContainerRef,
    ContainerRemove,
    ContainerRename,
    ContainerRun,
    ContainerVolumeCreate,
    ContainerVolumeRef,
    ContainerVolumeRemove,
    LabelFilter,
)
from nube.catalog.vm_models import VmDefine, VmInfo, VmList, VmRef
from nube.errors import Conflict, NubeError
from workers.drivers import ContainerDriver, HypervisorDriver, JobContext
from workers.drivers.names import backend_name, tenant_prefix, user_name

from .backends import ContainerBackend, HypervisorBackend
from .conftest import IMAGE, TENANT_A, TENANT_B, MakeCtx, Name

SLEEP = ["sleep", "60"]


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
        "message": f"the {kind} name '{name}' is already in use",
        "retryable": False,
        "details": {"kind": kind, "name": name},
        "title": "Conflict",
    }


def no_backend_names(shown: Any) -> None:
    """Nothing in ``shown`` carries a tenant's prefix (A's or B's), but for a volume's
    ``mountpoint``: a path on the engine's host, which names the volume as the engine does."""
    text = json.dumps(shown)
    text = re.sub(r'"mountpoint": "[^"]*"', "", text)
    assert tenant_prefix(TENANT_A) not in text and tenant_prefix(TENANT_B) not in text, text


def test_names_module() -> None:
    prefix = tenant_prefix(TENANT_A)
    assert prefix != tenant_prefix(TENANT_B) and len(prefix) == 10
    assert backend_name(TENANT_A, "web") == f"{prefix}web"
    assert user_name(backend_name(TENANT_A, "web"), TENANT_A) == "web"
    assert user_name(backend_name(TENANT_A, "web"), TENANT_B) == f"{prefix}web"
    assert user_name("eager_turing", TENANT_A) == "eager_turing"
    assert user_name("web", None) == "web"


def test_two_tenants_each_hold_a_container_network_and_volume_of_one_name(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name, engine: ContainerBackend
) -> None:
    d = container_driver
    box, net, vol = name("box"), name("net"), name("vol")
    a_ctx, b_ctx = make_ctx(), make_ctx(tenant=TENANT_B)
    a_net = d.network_create(ContainerNetworkCreate(name=net), a_ctx)
    a_vol = d.volume_create(ContainerVolumeCreate(name=vol), a_ctx)
    spec = {"image": IMAGE, "name": box, "network": net, "volumes": [f"{vol}:/data"]}
    a_box = d.create(ContainerCreate.model_validate(spec), a_ctx)

    # B uses the very same names: every create succeeds, and makes B's own
    b_net = d.network_create(ContainerNetworkCreate(name=net), b_ctx)
    b_vol = d.volume_create(ContainerVolumeCreate(name=vol), b_ctx)
    b_box = d.create(ContainerCreate.model_validate(spec), make_ctx(tenant=TENANT_B))
    assert (b_box["name"], b_net["name"], b_vol["name"]) == (box, net, vol)
    assert b_box["id"] != a_box["id"] and b_net["id"] != a_net["id"]
    assert b_box["mounts"][0]["volume"] == vol and list(b_box["networks"]) == [net]
    no_backend_names([a_net, a_vol, a_box, b_net, b_vol, b_box])

    # both exist in the backend, each under its tenant's backend name and labels
    for tenant, made in ((TENANT_A, a_box), (TENANT_B, b_box)):
        seen = engine.container(backend_name(tenant, box))
        assert seen is not None and seen.id == made["id"]
        assert seen.labels["nube.tenant"] == tenant
        for kind in ("network", "volume"):
            stored = engine.seen(kind, backend_name(tenant, net if kind == "network" else vol))
            assert stored is not None and stored.labels["nube.tenant"] == tenant

    # each tenant lists and gets only its own under the name
    for ctx, made, network in ((a_ctx, a_box, a_net), (b_ctx, b_box, b_net)):
        listed = d.list(ContainerList(all=True, name=box), ctx)["containers"]
        assert [(c["id"], c["name"]) for c in listed] == [(made["id"], box)]
        assert d.inspect(ContainerRef(id=box), ctx)["id"] == made["id"]
        assert d.network_inspect(ContainerNetworkRef(id=net), ctx)["id"] == network["id"]
        volume = d.volume_inspect(ContainerVolumeRef(name=vol), ctx)
        assert volume["labels"]["nube.tenant"] == ctx.tenant
        assert [n["name"] for n in d.network_list(LabelFilter(), ctx)["networks"]] == [net]
        assert [v["name"] for v in d.volume_list(LabelFilter(), ctx)["volumes"]] == [vol]
        no_backend_names([listed, d.inspect(ContainerRef(id=box), ctx), volume])

    # a name the caller holds itself is still 409, the same for every kind and both tenants
    for ctx in (a_ctx, b_ctx):
        tenant = ctx.tenant

        def job() -> JobContext:
            return make_ctx(tenant=tenant)  # noqa: B023 - called within this iteration

        answers = {
            "create": taken(lambda: d.create(ContainerCreate(image=IMAGE, name=box), job())),
            "run": taken(lambda: d.run(ContainerRun(image=IMAGE, name=box, detach=True), job())),
            "network": taken(lambda: d.network_create(ContainerNetworkCreate(name=net), job())),
            "volume": taken(lambda: d.volume_create(ContainerVolumeCreate(name=vol), job())),
        }
        assert answers == {
            "create": answer_for("container", box),
            "run": answer_for("container", box),
            "network": answer_for("network", net),
            "volume": answer_for("volume", vol),
        }
        assert a_box["id"][:12] not in json.dumps(answers)
        assert b_box["id"][:12] not in json.dumps(answers)
    assert [c["id"] for c in d.list(ContainerList(all=True), b_ctx)["containers"]] == [b_box["id"]]


def test_rename_is_scoped_and_engine_messages_name_the_users_names(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name, engine: ContainerBackend
) -> None:
    d = container_driver
    box, vol = name("box"), name("vol")
    d.create(ContainerCreate(image=IMAGE, name=box), make_ctx())
    other = d.create(ContainerCreate(image=IMAGE), make_ctx(tenant=TENANT_B))
    # B renames its container to the name A holds: fine
    renamed = d.rename(ContainerRename(id=other["id"], name=box), make_ctx(tenant=TENANT_B))
    assert renamed["name"] == box
    seen = engine.container(backend_name(TENANT_B, box))
    assert seen is not None and seen.id == other["id"]
    mine = d.create(ContainerCreate(image=IMAGE, volumes=[f"{vol}:/data"]), make_ctx())
    # ... but not to a name B holds itself
    assert taken(
        lambda: d.rename(ContainerRename(id=mine["id"], name=box), make_ctx())
    ) == answer_for("container", box)
    # the engine's own messages name the user's names (the volume is in use by ``mine``)
    in_use = taken(lambda: d.volume_remove(ContainerVolumeRemove(name=vol), make_ctx()))
    assert vol in in_use["message"]
    no_backend_names(in_use)
    d.remove(ContainerRemove(id=mine["id"]), make_ctx())
    assert d.volume_remove(ContainerVolumeRemove(name=vol), make_ctx()) == {
        "name": vol,
        "removed": True,
    }


def test_a_connected_container_is_shown_by_its_users_name(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name
) -> None:
    d = container_driver
    net, box = name("net"), name("box")
    network = d.network_create(ContainerNetworkCreate(name=net), make_ctx())
    made = d.run(ContainerRun(image=IMAGE, name=box, command=SLEEP, detach=True), make_ctx())
    connected = d.network_connect(
        ContainerNetworkConnect(id=network["id"], container=box), make_ctx()
    )
    assert [c["name"] for c in connected["containers"].values()] == [box]
    view = d.inspect(ContainerRef(id=made["id"]), make_ctx())
    assert box in view["networks"][net]["aliases"]  # reachable as ``box`` on the network
    no_backend_names([connected, view])
    renamed = name("renamed")  # the alias follows the name
    d.rename(ContainerRename(id=made["id"], name=renamed), make_ctx())
    aliases = d.inspect(ContainerRef(id=renamed), make_ctx())["networks"][net]["aliases"]
    assert renamed in aliases and box not in aliases
    pruned = d.network_prune(LabelFilter(), make_ctx())
    assert pruned == {"deleted": []}  # in use
    d.remove(ContainerRemove(id=made["id"], force=True), make_ctx())
    assert d.network_prune(LabelFilter(), make_ctx()) == {"deleted": [net]}


def test_two_tenants_each_hold_a_vm_of_one_name(
    hypervisor: HypervisorDriver, make_ctx: MakeCtx, name: Name, host: HypervisorBackend
) -> None:
    vm = name("vm")
    a_ctx, b_ctx = make_ctx(), make_ctx(tenant=TENANT_B)
    a_vm = hypervisor.define_domain(VmDefine(name=vm, memory_mib=64), a_ctx)
    b_vm = hypervisor.define_domain(VmDefine(name=vm, memory_mib=64), b_ctx)
    assert (a_vm["name"], b_vm["name"]) == (vm, vm) and a_vm["uuid"] != b_vm["uuid"]
    assert (a_vm["tenant"], b_vm["tenant"]) == (TENANT_A, TENANT_B)
    # both exist on the hypervisor (``virsh list --all``), under their backend names
    names = host.domain_names()
    assert backend_name(TENANT_A, vm) in names and backend_name(TENANT_B, vm) in names
    assert host.domain(backend_name(TENANT_B, vm)) is not None
    for ctx, made in ((a_ctx, a_vm), (b_ctx, b_vm)):
        listed = hypervisor.list_domains(VmList(), ctx)["vms"]
        assert [(v["name"], v["uuid"]) for v in listed] == [(vm, made["uuid"])]
        assert hypervisor.domain_info(VmInfo(name=vm), ctx)["uuid"] == made["uuid"]
        no_backend_names(listed)
    # a name the caller holds itself is 409 for either tenant
    for tenant in (TENANT_A, TENANT_B):
        again = VmDefine(name=vm, memory_mib=64)
        answer = taken(lambda: hypervisor.define_domain(again, make_ctx(tenant=tenant)))  # noqa: B023
        assert answer == answer_for("VM", vm)
    # B's VM goes; A's stays
    started = hypervisor.start_domain(VmRef(name=vm), b_ctx)
    assert started["name"] == vm and started["state"] == "running"
    hypervisor.destroy_domain(VmRef(name=vm), b_ctx)
    assert hypervisor.domain_info(VmInfo(name=vm), a_ctx)["state"] == "defined"


def _longest(name: Name, length: int) -> str:
    """A unique name of this run, padded to ``length`` characters."""
    base = name("long")
    return base + "x" * (length - len(base))


def test_the_longest_names_the_catalog_allows_fit_behind_the_prefix(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name, engine: ContainerBackend
) -> None:
    d, long = container_driver, _longest(name, 128)  # DockerName: up to 128 characters
    d.network_create(ContainerNetworkCreate(name=long), make_ctx())
    d.volume_create(ContainerVolumeCreate(name=long), make_ctx())
    spec = ContainerRun(image=IMAGE, name=long, network=long, volumes=[f"{long}:/d"], detach=True)
    made = d.run(spec.model_copy(update={"command": SLEEP}), make_ctx())
    assert made["name"] == long and list(made["networks"]) == [long]
    seen = engine.container(backend_name(TENANT_A, long))
    assert seen is not None and seen.id == made["id"]
    d.remove(ContainerRemove(id=long, force=True), make_ctx())


def test_the_longest_vm_name_the_catalog_allows_fits_behind_the_prefix(
    hypervisor: HypervisorDriver, make_ctx: MakeCtx, name: Name, host: HypervisorBackend
) -> None:
    vm = _longest(name, 64)  # LibvirtName: up to 64 characters
    made = hypervisor.define_domain(VmDefine(name=vm, memory_mib=64, start=True), make_ctx())
    assert made["name"] == vm and made["state"] == "running"
    seen = host.domain(backend_name(TENANT_A, vm))
    assert seen is not None and seen.state == "running"
    hypervisor.destroy_domain(VmRef(name=vm), make_ctx())
