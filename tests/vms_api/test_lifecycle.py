"""A diskless VM's whole life cycle through the API and the broker, libvirt confirming each
state; list filters; the admin-only XML; node-pinned routing; illegal transitions."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import libvirt
import pytest

from nube.placement import Placements
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from workers.drivers.names import backend_name

from .conftest import api_error, call, define_vm, failed, lookup, ok, unique, vm_state

pytestmark = pytest.mark.libvirt

RUNNING, PAUSED, SHUTOFF = (
    libvirt.VIR_DOMAIN_RUNNING,
    libvirt.VIR_DOMAIN_PAUSED,
    libvirt.VIR_DOMAIN_SHUTOFF,
)


def act(client: NubeClient, name: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return call(client, "POST", f"/v1/vms/{name}/{action}", body)


def test_life_cycle_of_a_diskless_vm(
    vm_api: NubeClient, admin: NubeClient, raw: libvirt.virConnect, hypervisor: dict[str, Any]
) -> None:
    name = unique("life")
    made = ok(define_vm(vm_api, name))
    dom = lookup(raw, name)
    assert made["state"] == "defined" and vm_state(raw, name) == SHUTOFF and dom.isPersistent()
    assert made["node"] == hypervisor["node"] and made["memory_mib"] == 64
    assert "start" in made["allowed_actions"] and "suspend" not in made["allowed_actions"]

    assert ok(act(vm_api, name, "start"))["state"] == "running"
    assert vm_state(raw, name) == RUNNING
    info = ok(call(vm_api, "GET", f"/v1/vms/{name}"))
    assert info["state"] == "running" and info["uuid"] == dom.UUIDString()
    assert info["allowed_actions"] == [
        "shutdown",
        "destroy",
        "reboot",
        "suspend",
        "save",
        "autostart",
        "snapshot_create",
        "snapshot_revert",
        "snapshot_delete",
        "resize",
        "disk_attach",
        "disk_detach",
        "nic_attach",
        "nic_detach",
        "migrate",
    ]

    paused = ok(act(vm_api, name, "suspend"))
    assert paused["state"] == "paused" and vm_state(raw, name) == PAUSED
    assert "resume" in paused["allowed_actions"] and "suspend" not in paused["allowed_actions"]
    assert ok(act(vm_api, name, "resume"))["state"] == "running"
    assert vm_state(raw, name) == RUNNING

    saved = ok(act(vm_api, name, "save"))
    assert saved["state"] == "saved" and saved["managed_save"] is True
    assert vm_state(raw, name) == SHUTOFF and dom.hasManagedSaveImage(0) == 1
    assert set(saved["allowed_actions"]) >= {"start", "restore", "undefine"}
    assert ok(act(vm_api, name, "restore"))["state"] == "running"
    assert vm_state(raw, name) == RUNNING and dom.hasManagedSaveImage(0) == 0

    assert ok(act(vm_api, name, "reboot", {"hard": False}))["state"] == "running"
    assert vm_state(raw, name) == RUNNING

    # no guest OS answers the ACPI button: a short timeout fails, then force destroys
    timed_out = act(vm_api, name, "shutdown", {"timeout": 1})
    failed(timed_out, "timeout")
    assert timed_out["attempts"] == 1 and vm_state(raw, name) == RUNNING
    forced = ok(act(vm_api, name, "shutdown", {"timeout": 1, "force": True}))
    assert (forced["state"], forced["graceful"], forced["forced"]) == ("defined", False, True)
    assert vm_state(raw, name) == SHUTOFF

    assert ok(act(vm_api, name, "start"))["state"] == "running"
    assert vm_state(raw, name) == RUNNING
    assert ok(act(vm_api, name, "destroy"))["state"] == "defined"
    assert vm_state(raw, name) == SHUTOFF

    # the domain XML: admins only (the scope is checked before anything is queued)
    denied = api_error(lambda: call(vm_api, "GET", f"/v1/vms/{name}/xml"))
    assert denied.status == 403 and denied.code == "forbidden"
    response = admin.session.get(
        f"{admin.url}/v1/vms/{name}/xml", headers={"Prefer": "wait=30"}, timeout=60
    )
    assert response.status_code == 200, response.text  # a read: the resource itself
    got = ET.fromstring(response.json()["xml"])
    assert got.findtext("name") == backend_name(vm_api.tenant, name)  # type: ignore[attr-defined]
    assert got.findtext("uuid") == dom.UUIDString()

    gone = ok(call(vm_api, "DELETE", f"/v1/vms/{name}"))
    assert gone["state"] == "undefined" and gone["allowed_actions"] == []
    with pytest.raises(libvirt.libvirtError):
        lookup(raw, name)
    failed(call(vm_api, "GET", f"/v1/vms/{name}"), "not_found")


def test_list_filters(vm_api: NubeClient, raw: libvirt.virConnect) -> None:
    running, paused, off = unique("run"), unique("pause"), unique("off")
    define_vm(vm_api, running, start=True)
    define_vm(vm_api, paused, start=True)
    define_vm(vm_api, off)
    ok(act(vm_api, paused, "suspend"))
    assert (vm_state(raw, running), vm_state(raw, paused), vm_state(raw, off)) == (
        RUNNING,
        PAUSED,
        SHUTOFF,
    )
    expected = {
        "all": {running, paused, off},
        "active": {running, paused},
        "inactive": {off},
        "running": {running},
        "paused": {paused},
        "shutoff": {off},
    }
    for state, names in expected.items():
        vms = ok(call(vm_api, "GET", "/v1/vms", state=state))["vms"]
        assert {vm["name"] for vm in vms} == names, state  # a fresh tenant: only these
        assert all(vm["allowed_actions"] for vm in vms)
    bad = api_error(lambda: call(vm_api, "GET", "/v1/vms", state="<zombie>"))
    assert bad.status == 422 and bad.problem["errors"][0]["field"] == "state"


def test_pinned_operations_go_to_the_vms_node(
    stack: Stack, vm_api: NubeClient, raw: libvirt.virConnect
) -> None:
    name = unique("pin")
    defined = define_vm(vm_api, name, start=True)
    assert defined["queue"] == "vms"  # a define is not pinned: any VM worker may take it
    node = ok(call(vm_api, "GET", f"/v1/vms/{name}"))["node"]
    placements = Placements(stack.redis())
    assert placements.node_of("vms", vm_api.tenant, name) == node  # type: ignore[attr-defined]

    suspended = act(vm_api, name, "suspend")
    ok(suspended)
    assert suspended["queue"] == f"vms.{node}" and suspended["node"] == node
    assert vm_state(raw, name) == PAUSED
    ok(act(vm_api, name, "destroy"))
    undefined = call(vm_api, "DELETE", f"/v1/vms/{name}")
    ok(undefined)
    assert undefined["queue"] == f"vms.{node}"
    key = Placements.key("vms", vm_api.tenant, name)  # type: ignore[attr-defined]
    assert stack.redis().exists(key) == 0
    assert call(vm_api, "GET", f"/v1/vms/{name}")["queue"] == "vms"  # no placement: shared


@pytest.mark.parametrize(
    ("start", "action", "allowed"),
    [
        (False, "suspend", "start"),
        (True, "start", "suspend"),
    ],
    ids=["suspend-shut-off", "start-running"],
)
def test_illegal_transition_is_a_conflict_not_retried(
    vm_api: NubeClient, raw: libvirt.virConnect, start: bool, action: str, allowed: str
) -> None:
    name = unique("illegal")
    define_vm(vm_api, name, start=start)
    before = vm_state(raw, name)
    job = act(vm_api, name, action)
    error = failed(job, "conflict")
    assert job["attempts"] == 1 and error["retryable"] is False
    assert "retrying" not in [e["event"] for e in job["history"]]
    assert allowed in error["details"]["allowed_actions"]
    assert vm_state(raw, name) == before


def test_undefining_a_running_vm_is_a_conflict(vm_api: NubeClient, raw: libvirt.virConnect) -> None:
    name = unique("illegal")
    define_vm(vm_api, name, start=True)
    job = call(vm_api, "DELETE", f"/v1/vms/{name}")
    assert failed(job, "conflict")["details"]["state"] == "running"
    assert job["attempts"] == 1 and vm_state(raw, name) == RUNNING


def test_admin_of_another_tenant_is_routed_to_the_vms_node(
    vm_api: NubeClient, make_client: Any
) -> None:
    name = unique("pin")
    define_vm(vm_api, name, start=True)
    other_admin = make_client(scopes=("admin",))
    job = act(other_admin, name, "suspend")
    ok(job)  # the admin may act on it ...
    assert job["queue"] == f"vms.{job['node']}"  # ... and is routed to the VM's node
