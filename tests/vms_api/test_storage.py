"""A directory pool, qcow2 volumes and a VM using them, with internal snapshots, all through
the API; libvirt confirms the pool, the volumes, the domain's disks and the snapshots."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import libvirt
import pytest

from nube.tools.client import NubeClient
from workers.drivers.libvirt.provision import job_tag

from .conftest import api_error, call, exists, failed, lookup, ok, unique, vm_state

pytestmark = pytest.mark.libvirt
MIB = 1 << 20


def test_pool_volume_vm_and_snapshots(
    vm_api: NubeClient, admin: NubeClient, raw: libvirt.virConnect
) -> None:
    pool = unique("pool")
    pools = f"/v1/storage-pools/{pool}"

    # pool changes are node infrastructure: admin only, refused before anything is queued
    denied = api_error(lambda: call(vm_api, "POST", "/v1/storage-pools", {"name": pool}))
    assert denied.status == 403 and not exists(raw.storagePoolLookupByName, pool)

    defined = ok(
        call(admin, "POST", "/v1/storage-pools", {"name": pool, "build": False, "start": False})
    )
    assert (defined["type"], defined["active"], defined["persistent"]) == ("dir", False, True)
    lv_pool = raw.storagePoolLookupByName(pool)
    path = defined["path"]
    assert lv_pool.isActive() == 0 and not os.path.exists(path)
    ok(call(admin, "POST", f"{pools}/build"))
    assert os.path.isdir(path)
    assert ok(call(admin, "POST", f"{pools}/start"))["active"] is True
    assert lv_pool.isActive() == 1

    data = ok(
        call(
            vm_api,
            "POST",
            f"{pools}/volumes",
            {"name": "data0", "capacity_mib": 16, "format": "qcow2"},
        )
    )
    assert (data["format"], data["capacity_bytes"]) == ("qcow2", 16 * MIB)
    lv_vol = lv_pool.storageVolLookupByName("data0")
    assert lv_vol.info()[1] == 16 * MIB and "<format type='qcow2'/>" in lv_vol.XMLDesc(0)

    name = unique("disk")
    vm = ok(
        call(
            vm_api,
            "POST",
            "/v1/vms",
            {
                "name": name,
                "memory_mib": 64,
                "disks": [{"pool": pool, "volume": "data0"}, {"pool": pool, "capacity_mib": 8}],
            },
        )
    )
    new_volume = vm["disks"][1]["volume"]
    assert new_volume.startswith(f"{name}-disk1-")
    assert [(d["pool"], d["volume"], d["format"]) for d in vm["disks"]] == [
        (pool, "data0", "qcow2"),
        (pool, new_volume, "qcow2"),
    ]
    dom = lookup(raw, name)
    sources = dom.XMLDesc(0)
    assert "volume='data0'" in sources and f"volume='{new_volume}'" in sources

    # snapshots: create → list → revert → delete
    snaps = f"/v1/vms/{name}/snapshots"
    taken = ok(call(vm_api, "POST", snaps, {"snapshot": "clean"}))
    assert taken["name"] == "clean" and taken["state"] == "shutoff"
    assert dom.snapshotListNames(0) == ["clean"]
    listed = ok(call(vm_api, "GET", snaps))["snapshots"]
    assert [s["name"] for s in listed] == ["clean"] and listed[0]["current"] is True
    ok(call(vm_api, "POST", f"/v1/vms/{name}/start"))
    reverted = ok(call(vm_api, "POST", f"{snaps}/clean/revert"))
    assert reverted["vm_state"] == "defined"  # back to the shut-off snapshot
    assert vm_state(raw, name) == libvirt.VIR_DOMAIN_SHUTOFF
    assert ok(call(vm_api, "DELETE", f"{snaps}/clean"))["deleted"] is True
    assert dom.snapshotListNames(0) == []
    failed(call(vm_api, "DELETE", f"{snaps}/clean"), "not_found")

    # pool and volume reads
    refreshed = ok(call(vm_api, "POST", f"{pools}/refresh"))
    assert refreshed["volumes"] == 2 == lv_pool.numOfVolumes()
    info = ok(call(vm_api, "GET", pools))
    assert (info["state"], info["path"], info["volumes"]) == ("running", path, 2)
    assert info["capacity_bytes"] == lv_pool.info()[1]
    assert pool in {p["name"] for p in ok(call(vm_api, "GET", "/v1/storage-pools"))["pools"]}
    vols = ok(call(vm_api, "GET", f"{pools}/volumes"))["volumes"]
    assert sorted(v["name"] for v in vols) == sorted(lv_pool.listVolumes())
    vinfo = ok(call(vm_api, "GET", f"{pools}/volumes/{new_volume}"))
    assert (vinfo["format"], vinfo["capacity_bytes"]) == ("qcow2", 8 * MIB)
    assert vinfo["path"] == lv_pool.storageVolLookupByName(new_volume).path()

    # the VM goes (keeping its storage), then the volumes, then the pool
    assert ok(call(vm_api, "DELETE", f"/v1/vms/{name}"))["removed_volumes"] == []
    assert not exists(partial(lookup, raw), name)
    for volume in ("data0", new_volume):
        assert ok(call(vm_api, "DELETE", f"{pools}/volumes/{volume}"))["deleted"] is True
        assert not exists(lv_pool.storageVolLookupByName, volume)
    failed(call(vm_api, "GET", f"{pools}/volumes/data0"), "not_found")
    assert ok(call(vm_api, "GET", f"{pools}/volumes"))["volumes"] == []

    failed(call(admin, "DELETE", pools), "conflict")  # still active
    assert ok(call(admin, "POST", f"{pools}/destroy"))["active"] is False
    assert lv_pool.isActive() == 0
    assert ok(call(admin, "DELETE", pools, {"delete": True}))["undefined"] is True
    assert not exists(raw.storagePoolLookupByName, pool) and not os.path.exists(path)


def test_snapshot_needs_qcow2(
    vm_api: NubeClient, admin: NubeClient, raw: libvirt.virConnect
) -> None:
    pool = unique("pool")
    ok(call(admin, "POST", "/v1/storage-pools", {"name": pool}))
    name = unique("raw")
    spec: dict[str, Any] = {
        "name": name,
        "memory_mib": 64,
        "disks": [{"pool": pool, "capacity_mib": 4, "format": "raw"}],
    }
    define = call(vm_api, "POST", "/v1/vms", spec)
    ok(define)
    job = call(vm_api, "POST", f"/v1/vms/{name}/snapshots", {"snapshot": "s1"})
    failed(job, "conflict")
    assert job["attempts"] == 1 and lookup(raw, name).snapshotNum(0) == 0
    removed = ok(call(vm_api, "DELETE", f"/v1/vms/{name}", {"remove_storage": True}))
    assert removed["removed_volumes"] == [f"{pool}/{name}-disk0-{job_tag(define['id'])}"]
    assert raw.storagePoolLookupByName(pool).listVolumes() == []
