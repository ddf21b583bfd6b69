"""Rename and clone of a shut-off VM through the API: libvirt holds the domain under its new
backend name with its disk, the clone has copies of the disks, the placements follow (a rename
moves the VM's node record, a clone records its own), and the state table refuses a running VM
or a name the tenant holds (409)."""

from __future__ import annotations

from typing import Any

import libvirt
import pytest

from nube.placement import Placements
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from workers.drivers.names import backend_name

from .conftest import call, define_vm, exists, failed, lookup, ok, unique

pytestmark = pytest.mark.libvirt


def test_rename_and_clone_a_shut_off_vm(
    stack: Stack, vm_api: NubeClient, admin: NubeClient, raw: libvirt.virConnect
) -> None:
    tenant: str = vm_api.tenant  # type: ignore[attr-defined]
    placements = Placements(stack.redis())
    pool = unique("pool")
    ok(call(admin, "POST", "/v1/storage-pools", {"name": pool}))
    name, new, taken, copy = unique("ren"), unique("renamed"), unique("taken"), unique("copy")
    made = ok(define_vm(vm_api, name, disks=[{"pool": pool, "capacity_mib": 4}]))
    define_vm(vm_api, taken)
    assert {"rename", "clone"} <= set(made["allowed_actions"])
    node = made["node"]

    held = failed(call(vm_api, "POST", f"/v1/vms/{name}/rename", {"new_name": taken}), "conflict")
    assert held["status"] == 409
    renamed = call(vm_api, "POST", f"/v1/vms/{name}/rename", {"new_name": new})
    assert renamed["queue"] == f"vms.{node}"  # pinned to the VM's node
    out = ok(renamed)
    assert (out["name"], out["uuid"], out["disks"]) == (new, made["uuid"], made["disks"])
    dom = lookup(raw, new)
    assert dom.name() == backend_name(tenant, new) and dom.UUIDString() == made["uuid"]
    assert not exists(raw.lookupByName, backend_name(tenant, name))
    assert f"{new}-console.log" in dom.XMLDesc(0)  # its console log follows the name
    assert placements.node_of("vms", tenant, new) == node
    assert placements.node_of("vms", tenant, name) is None
    assert failed(call(vm_api, "GET", f"/v1/vms/{name}"), "not_found")["status"] == 404

    cloned = call(vm_api, "POST", f"/v1/vms/{new}/clone", {"target": copy})
    assert cloned["queue"] == f"vms.{node}"
    clone = ok(cloned)
    assert clone["state"] == "defined" and clone["uuid"] != made["uuid"]
    volume = clone["disks"][0]["volume"]
    assert volume.startswith(f"{copy}-disk0-") and volume != made["disks"][0]["volume"]
    assert raw.storagePoolLookupByName(pool).storageVolLookupByName(volume).info()[1] == 4 << 20
    assert placements.node_of("vms", tenant, copy) == node
    listed = {vm["name"] for vm in ok(call(vm_api, "GET", "/v1/vms"))["vms"]}
    assert listed == {new, taken, copy}

    assert ok(call(vm_api, "POST", f"/v1/vms/{copy}/start"))["state"] == "running"  # its disk
    refused = call(vm_api, "POST", f"/v1/vms/{copy}/rename", {"new_name": name})
    assert "rename" not in failed(refused, "conflict")["details"]["allowed_actions"]
    ok(call(vm_api, "POST", f"/v1/vms/{copy}/destroy"))
    for vm in (new, copy):
        gone: dict[str, Any] = ok(call(vm_api, "DELETE", f"/v1/vms/{vm}", {"remove_storage": True}))
        assert gone["removed_volumes"] and not exists(raw.lookupByName, backend_name(tenant, vm))


def test_an_admin_of_another_tenant_renames_and_removes_a_vm(
    stack: Stack, vm_api: NubeClient, make_client: Any, raw: libvirt.virConnect
) -> None:
    """An admin acting on another tenant's VM: its placement follows under its owner's tenant,
    none is recorded under the admin's, and the owner reaches it under its new name."""
    tenant: str = vm_api.tenant  # type: ignore[attr-defined]
    other = make_client(scopes=("read", "write", "admin"))
    placements = Placements(stack.redis())
    name, new = unique("adm"), unique("admren")
    node = ok(define_vm(vm_api, name))["node"]

    renamed = ok(call(other, "POST", f"/v1/vms/{name}/rename", {"new_name": new}))
    assert (renamed["name"], renamed["tenant"]) == (new, tenant)
    assert placements.node_of("vms", tenant, new) == node
    assert placements.node_of("vms", tenant, name) is None
    assert placements.node_of("vms", other.tenant, new) is None
    assert (tenant, new) in placements.on_node("vms", node)
    assert (other.tenant, new) not in placements.on_node("vms", node)
    assert ok(call(vm_api, "GET", f"/v1/vms/{new}"))["name"] == new

    removed = ok(call(other, "DELETE", f"/v1/vms/{new}", {}))
    assert (removed["state"], removed["tenant"]) == ("undefined", tenant)
    assert not exists(raw.lookupByName, backend_name(tenant, new))
    assert placements.node_of("vms", tenant, new) is None
    assert (tenant, new) not in placements.on_node("vms", node)
