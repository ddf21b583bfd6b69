"""Tenant isolation over HTTP, and a define job delivered twice by the broker making one VM."""

from __future__ import annotations

import signal
import time
from functools import partial
from typing import Any

import libvirt
import psutil
import pytest

from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from workers.drivers.libvirt.provision import job_tag
from workers.drivers.names import backend_name

from .conftest import QEMU, call, define_vm, exists, failed, lookup, ok, unique, vm_state

pytestmark = pytest.mark.libvirt


def test_another_tenants_vm_is_not_found(
    vm_api: NubeClient, make_client: Any, raw: libvirt.virConnect
) -> None:
    other = make_client()
    mine, theirs = unique("mine"), unique("theirs")
    define_vm(vm_api, mine, start=True)
    define_vm(other, theirs)

    missing = failed(call(other, "GET", f"/v1/vms/{unique('nosuch')}"), "not_found")
    for method, path in [
        ("GET", f"/v1/vms/{mine}"),
        ("POST", f"/v1/vms/{mine}/suspend"),
        ("POST", f"/v1/vms/{mine}/destroy"),
        ("DELETE", f"/v1/vms/{mine}"),
        ("GET", f"/v1/vms/{mine}/snapshots"),
    ]:
        error = failed(call(other, method, path), "not_found")
        assert error["details"]["kind"] == missing["details"]["kind"] == "vm"
        assert error["message"] == missing["message"].replace(missing["details"]["id"], mine)
    assert vm_state(raw, mine) == libvirt.VIR_DOMAIN_RUNNING  # untouched

    assert [v["name"] for v in ok(call(vm_api, "GET", "/v1/vms"))["vms"]] == [mine]
    assert [v["name"] for v in ok(call(other, "GET", "/v1/vms"))["vms"]] == [theirs]
    # a name is unique per tenant: another tenant's name makes the caller's own VM
    same = ok(call(other, "POST", "/v1/vms", {"name": mine, "memory_mib": 64}))
    assert same["name"] == mine and same["tenant"] == other.tenant
    mine_in_libvirt = raw.lookupByName(backend_name(vm_api.tenant, mine))  # type: ignore[attr-defined]
    assert mine_in_libvirt.state(0)[0] == libvirt.VIR_DOMAIN_RUNNING
    assert len([d for d in raw.listAllDomains(0) if d.name().endswith(f"-{mine}")]) == 2


def _owned_by(conn: libvirt.virConnect, job_id: str) -> list[str]:
    """Names of the domains whose nube metadata names ``job_id``."""
    names = []
    for dom in conn.listAllDomains(0):
        try:
            meta = dom.metadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT, "https://nube.dev/xmlns/libvirt/vm/1", 0
            )
        except libvirt.libvirtError:
            continue
        if f">{job_id}<" in meta:
            names.append(dom.name())
    return names


def _kill_pool_children(stack: Stack) -> int:
    """SIGKILL the VM worker's pool processes (the Celery parent lives and replaces them)."""
    children = psutil.Process(stack.procs["worker-vms"].pid).children(recursive=True)
    for child in children:
        child.send_signal(signal.SIGKILL)
    return len(children)


def test_redelivered_define_makes_one_vm(
    stack: Stack, vm_api: NubeClient, admin: NubeClient, raw: libvirt.virConnect
) -> None:
    """The broker path: the worker child running the define is killed (SIGKILL) as soon as the
    domain exists; ``acks_late`` + ``reject_on_worker_lost`` redeliver the same sealed message
    (same job id, same nonce, still open) and the second delivery adopts the first one's VM
    and disk volume."""
    pool = unique("pool")
    ok(call(admin, "POST", "/v1/storage-pools", {"name": pool}))
    watcher = libvirt.open(QEMU)
    try:
        for _ in range(3):  # the kill may land after the job ended: then try again
            name = unique("redeliver")
            body = {"name": name, "memory_mib": 64, "start": True,
                    "disks": [{"pool": pool, "capacity_mib": 4}]}  # fmt: skip
            job = vm_api.submit("POST", "/v1/vms", body)
            deadline = time.monotonic() + 30
            while not exists(partial(lookup, watcher), name):
                assert time.monotonic() < deadline, "the define never reached libvirt"
                time.sleep(0.005)
            assert _kill_pool_children(stack) >= 1
            done = vm_api.job(job["id"], wait=60)
            if done["attempts"] >= 2:
                break
            ok(done)  # it finished before the kill: the redelivery was skipped
        else:
            pytest.skip("could not kill the worker child while the define ran (3 tries)")
    finally:
        watcher.close()

    made = ok(done)
    assert done["attempts"] == 2, done
    events = [e["event"] for e in done["history"]]
    assert events.count("running") == 2 and events[-1] == "succeeded"
    assert _owned_by(raw, job["id"]) == [lookup(raw, name).name()]  # one domain for the job
    assert made["job"] == job["id"] and made["state"] == "running"
    assert vm_state(raw, name) == libvirt.VIR_DOMAIN_RUNNING
    volumes = raw.storagePoolLookupByName(pool).listVolumes()
    tagged = [v for v in volumes if v.startswith(f"{name}-")]
    assert tagged == [f"{name}-disk0-{job_tag(job['id'])}"]  # and one disk volume
    assert made["disks"][0]["volume"] == tagged[0]
    stack.wait_ready(["vms"], timeout=30)
