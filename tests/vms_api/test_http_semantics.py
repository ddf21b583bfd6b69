"""HTTP semantics of the VM service over a real stack (issue 12, item 1): reads answer ``200``
with the resource; a job that failed within the wait answers its error's own status as
problem+json linking the job (``409`` with the VM's ``allowed_actions``, ``404``); a VM name
another tenant holds tells nothing about their VM (docs/vms.md, "Names")."""

from __future__ import annotations

from typing import Any

import libvirt
import pytest
import requests

from nube.tools.client import NubeClient

from .conftest import QEMU, define_vm, lookup, unique, vm_state

pytestmark = pytest.mark.libvirt

PROBLEM = "application/problem+json"
WAIT = {"Prefer": "wait=30"}


def http(client: NubeClient, method: str, path: str, **kw: Any) -> requests.Response:
    """One raw request with the client's token (no status makes it raise)."""
    return client.session.request(method, client.url + path, timeout=60, **kw)


def job_problem(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """A failed job's problem+json: its error's status and code, the job linked (``job``,
    ``Location``, ``Link``); returns the problem."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM), response.headers
    problem = dict(response.json())
    assert problem["status"] == status and problem["code"] == code, problem
    assert response.headers["Location"] == problem["job"]
    assert response.links["related"]["url"] == problem["job"]
    return problem


def test_reads_answer_200_with_the_resource(vm_api: NubeClient) -> None:
    name = unique("read")
    define_vm(vm_api, name)
    listed = http(vm_api, "GET", "/v1/vms")
    assert listed.status_code == 200, listed.text
    assert [vm["name"] for vm in listed.json()["vms"]] == [name]
    info = http(vm_api, "GET", f"/v1/vms/{name}")
    assert info.status_code == 200 and info.json()["state"] == "defined"
    job = http(vm_api, "GET", info.links["related"]["url"]).json()
    assert job["operation"] == "vms.info" and job["result"] == info.json()
    node = http(vm_api, "GET", "/v1/hypervisors")
    assert node.status_code == 200 and node.json()["uri"] == QEMU
    queued = http(vm_api, "GET", "/v1/vms", headers={"Prefer": "respond-async"})
    assert queued.status_code == 202 and queued.headers["Location"].endswith(queued.json()["id"])


def test_starting_a_running_vm_is_409_with_its_allowed_actions(
    vm_api: NubeClient, raw: libvirt.virConnect
) -> None:
    name = unique("busy")
    define_vm(vm_api, name, start=True)
    assert vm_state(raw, name) == libvirt.VIR_DOMAIN_RUNNING
    response = http(vm_api, "POST", f"/v1/vms/{name}/start", headers=WAIT)
    problem = job_problem(response, 409, "conflict")
    assert response.headers["Preference-Applied"] == "wait=30"
    assert problem["allowed_actions"] == problem["details"]["allowed_actions"]
    assert "start" not in problem["allowed_actions"] and "shutdown" in problem["allowed_actions"]
    assert problem["details"]["state"] == "running"
    assert problem["detail"] == f"cannot start VM '{name}': it is running (persistent)"
    job = http(vm_api, "GET", problem["job"], params={"wait": 10})
    assert job.status_code == 200
    assert job.json()["status"] == "failed" and job.json()["error"]["status"] == 409
    assert vm_state(raw, name) == libvirt.VIR_DOMAIN_RUNNING


def test_a_missing_vm_is_404_with_the_job(vm_api: NubeClient) -> None:
    response = http(vm_api, "GET", f"/v1/vms/{unique('nosuch')}")
    problem = job_problem(response, 404, "not_found")
    assert http(vm_api, "GET", problem["job"]).json()["operation"] == "vms.info"
    gone = http(vm_api, "POST", f"/v1/vms/{unique('nosuch')}/start", headers=WAIT)
    job_problem(gone, 404, "not_found")


def test_a_vm_name_another_tenant_holds_is_free_for_it(
    vm_api: NubeClient, make_client: Any, raw: libvirt.virConnect
) -> None:
    """Names are per tenant: the other tenant's define of a held name answers 201 with its own
    VM and learns nothing of the first; a tenant's own name again is 409."""
    other = make_client()
    name = unique("held")
    held = define_vm(vm_api, name)["result"]
    spec = {"name": name, "memory_mib": 64}
    made = http(other, "POST", "/v1/vms", json=spec, headers=WAIT)
    assert made.status_code == 201, made.text
    theirs = made.json()["result"]
    assert theirs["name"] == name and theirs["uuid"] != held["uuid"]
    assert held["uuid"] not in made.text and vm_api.tenant not in made.text  # type: ignore[attr-defined]
    for client, vm in ((vm_api, held), (other, theirs)):
        got = http(client, "GET", f"/v1/vms/{name}")
        assert got.status_code == 200 and got.json()["uuid"] == vm["uuid"], got.text
        assert [v["uuid"] for v in http(client, "GET", "/v1/vms").json()["vms"]] == [vm["uuid"]]
        again = http(client, "POST", "/v1/vms", json=spec, headers=WAIT)
        problem = job_problem(again, 409, "conflict")
        assert problem["detail"] == f"the VM name '{name}' is already in use"
    assert lookup(raw, name).UUIDString() in (held["uuid"], theirs["uuid"])
