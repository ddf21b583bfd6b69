"""The HypervisorDriver contract, run on the fake driver and on libvirt (qemu:///system).

Every test drives the steps through the driver interface and checks what the hypervisor itself
holds through ``host`` (the fake's store, or a raw libvirt connection). The VMs have no OS: a
graceful shutdown never completes, on QEMU as on the fake. What only libvirt shows (the XML it
keeps, its mock hypervisor, kvm or emulation, a live snapshot, libvirtd going away) is in
``tests/vms``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest

from nube.catalog import NoParams
from nube.catalog import vm_models as m
from nube.errors import Conflict, Forbidden, InvalidRequest, NotFound, Timeout
from workers.drivers import Driver, HypervisorDriver, JobContext
from workers.drivers.names import backend_name
from workers.drivers.vm_states import VmState, allowed_actions

from .backends import HypervisorBackend
from .conftest import TENANT_A, MakeCtx, Name

LIBVIRT_STATE = {"running": "running", "paused": "paused", "defined": "shutoff", "saved": "shutoff"}
"""A VM's state in libvirt's words (a saved VM is shut off, with a managed save image)."""


def vm_spec(name: str, **extra: Any) -> m.VmDefine:
    return m.VmDefine.model_validate({"name": name, "memory_mib": 64, **extra})


def assert_state(host: HypervisorBackend, vm: dict[str, Any], state: str) -> None:
    """The representation says ``state`` and offers what the state table allows; the
    hypervisor itself agrees."""
    assert vm["state"] == state
    assert vm["allowed_actions"] == allowed_actions(VmState(state), vm["persistent"])
    assert vm["managed_save"] is (state == "saved")
    seen = host.domain(backend_name(vm["tenant"], vm["name"]))
    assert seen is not None and seen.state == LIBVIRT_STATE[state]
    assert seen.managed_save is (state == "saved")


def make_pool(driver: HypervisorDriver, ctx: JobContext, name: Name) -> str:
    pool = name("pool")
    driver.define_pool(m.PoolDefine(name=pool), ctx)
    return pool


def vm_names(driver: HypervisorDriver, ctx: JobContext, state: str = "all") -> set[str]:
    return {vm["name"] for vm in driver.list_domains(m.VmList(state=state), ctx)["vms"]}


def define_network(driver: HypervisorDriver, ctx: JobContext, name: Name, **extra: Any) -> str:
    net = name("net")
    third = random.randint(1, 250)
    spec = {
        "name": net,
        "mode": "isolated",
        "subnet": f"10.215.{third}.0/24",
        "dhcp_start": f"10.215.{third}.10",
        "dhcp_end": f"10.215.{third}.20",
    }
    driver.define_network(m.VmNetworkDefine.model_validate(spec | extra), ctx)
    return net


# --- node and domains ----------------------------------------------------------------------------


def test_is_a_hypervisor_driver(
    hypervisor: HypervisorDriver, ctx: JobContext, host: HypervisorBackend
) -> None:
    assert isinstance(hypervisor, HypervisorDriver) and isinstance(hypervisor, Driver)
    assert hypervisor.name in ("fake", "libvirt")
    assert hypervisor.version().startswith(f"{hypervisor.name} ")
    info = hypervisor.hypervisor_info(NoParams(), ctx)
    assert info["node"] == "node-1" and info["uri"] == host.uri
    assert info["domain_type"] in info["capabilities"]["domain_types"]
    assert info["domain_type"] in ("fake", "kvm", "qemu")
    assert info["capabilities"]["guest_arches"]
    node = info["node_info"]
    assert node["cpus"] >= 1 and node["memory_mib"] > 0 and node["sockets"] >= 1
    assert info["max_vcpus"] >= 1
    assert info["libvirt_version"].count(".") == 2


def test_life_cycle(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend
) -> None:
    vm = name("vm")
    ref = m.VmRef(name=vm)
    defined = hypervisor.define_domain(vm_spec(vm), ctx)
    assert (defined["node"], defined["tenant"], defined["job"]) == (
        "node-1",
        ctx.tenant,
        ctx.job_id,
    )
    assert_state(host, defined, "defined")
    assert_state(host, hypervisor.start_domain(ref, ctx), "running")
    assert_state(host, hypervisor.suspend_domain(ref, ctx), "paused")
    assert_state(host, hypervisor.resume_domain(ref, ctx), "running")
    assert_state(host, hypervisor.reboot_domain(m.VmReboot(name=vm, hard=True), ctx), "running")
    assert_state(host, hypervisor.reboot_domain(m.VmReboot(name=vm), ctx), "running")
    assert_state(host, hypervisor.save_domain(ref, ctx), "saved")
    assert_state(host, hypervisor.restore_domain(ref, ctx), "running")
    info = hypervisor.domain_info(m.VmInfo(name=vm), ctx)
    assert (info["memory_mib"], info["vcpus"]) == (64, 1) and info["cpu_time_ns"] > 0
    assert_state(host, hypervisor.destroy_domain(ref, ctx), "defined")
    gone = hypervisor.undefine_domain(m.VmUndefine(name=vm), ctx)
    assert (gone["state"], gone["allowed_actions"], gone["removed_volumes"]) == (
        "undefined",
        [],
        [],
    )
    assert vm not in vm_names(hypervisor, ctx)
    assert host.domain(backend_name(TENANT_A, vm)) is None
    with pytest.raises(NotFound):
        hypervisor.domain_info(m.VmInfo(name=vm), ctx)


def test_save_from_paused_and_start_a_saved_vm(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend
) -> None:
    vm = name("vm")
    hypervisor.define_domain(vm_spec(vm, start=True), ctx)
    hypervisor.suspend_domain(m.VmRef(name=vm), ctx)
    assert_state(host, hypervisor.save_domain(m.VmRef(name=vm), ctx), "saved")
    assert_state(host, hypervisor.start_domain(m.VmRef(name=vm), ctx), "running")
    hypervisor.save_domain(m.VmRef(name=vm), ctx)
    hypervisor.undefine_domain(m.VmUndefine(name=vm), ctx)  # a saved VM goes with its image
    assert vm not in vm_names(hypervisor, ctx)
    assert host.domain(backend_name(TENANT_A, vm)) is None


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ([], "suspend_domain"),
        ([], "resume_domain"),
        ([], "destroy_domain"),
        ([], "shutdown_domain"),
        ([], "reboot_domain"),
        ([], "save_domain"),
        ([], "restore_domain"),
        (["start_domain"], "start_domain"),
        (["start_domain"], "resume_domain"),
        (["start_domain"], "undefine_domain"),
        (["start_domain"], "restore_domain"),
        (["start_domain", "suspend_domain"], "suspend_domain"),
        (["start_domain", "suspend_domain"], "shutdown_domain"),
        (["start_domain", "save_domain"], "suspend_domain"),
    ],
)
def test_illegal_transitions_conflict(
    hypervisor: HypervisorDriver,
    ctx: JobContext,
    name: Name,
    host: HypervisorBackend,
    setup: list[str],
    action: str,
) -> None:
    vm = name("vm")
    hypervisor.define_domain(vm_spec(vm), ctx)
    for step in setup:
        getattr(hypervisor, step)(m.VmRef(name=vm), ctx)
    before = hypervisor.domain_info(m.VmInfo(name=vm), ctx)
    seen_before = host.domain(backend_name(TENANT_A, vm))
    params = {
        "shutdown_domain": m.VmShutdown,
        "reboot_domain": m.VmReboot,
        "undefine_domain": m.VmUndefine,
    }.get(action, m.VmRef)(name=vm)
    with pytest.raises(Conflict) as err:
        getattr(hypervisor, action)(params, ctx)
    assert err.value.code == "conflict"
    assert err.value.details["allowed_actions"] == before["allowed_actions"]
    assert hypervisor.domain_info(m.VmInfo(name=vm), ctx)["state"] == before["state"]
    assert host.domain(backend_name(TENANT_A, vm)) == seen_before


def test_transient_vm(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend
) -> None:
    vm = name("vm")
    made = hypervisor.define_domain(vm_spec(vm, persistent=False), ctx)
    assert made["persistent"] is False
    assert_state(host, made, "running")
    assert "save" not in made["allowed_actions"] and "undefine" not in made["allowed_actions"]
    with pytest.raises(Conflict):
        hypervisor.save_domain(m.VmRef(name=vm), ctx)
    assert hypervisor.destroy_domain(m.VmRef(name=vm), ctx)["state"] == "undefined"
    assert host.domain(backend_name(TENANT_A, vm)) is None
    with pytest.raises(NotFound):
        hypervisor.domain_info(m.VmInfo(name=vm), ctx)


def test_shutdown_of_a_guest_without_an_os_times_out_then_forces(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend
) -> None:
    vm = name("vm")
    hypervisor.define_domain(vm_spec(vm, start=True), ctx)
    with pytest.raises(Timeout) as err:  # no guest OS answers the ACPI power button
        hypervisor.shutdown_domain(m.VmShutdown(name=vm, timeout=1), ctx)
    assert err.value.code == "timeout"
    assert hypervisor.domain_info(m.VmInfo(name=vm), ctx)["state"] == "running"
    done = hypervisor.shutdown_domain(m.VmShutdown(name=vm, timeout=1, force=True), ctx)
    assert (done["state"], done["graceful"], done["forced"]) == ("defined", False, True)
    assert (seen := host.domain(backend_name(TENANT_A, vm))) is not None and seen.state == "shutoff"


def test_autostart(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend
) -> None:
    vm = name("vm")
    assert hypervisor.define_domain(vm_spec(vm, autostart=True), ctx)["autostart"] is True
    off = hypervisor.set_domain_autostart(m.VmAutostart(name=vm, enabled=False), ctx)
    assert off["autostart"] is False
    assert hypervisor.domain_info(m.VmInfo(name=vm), ctx)["autostart"] is False
    assert (seen := host.domain(backend_name(TENANT_A, vm))) is not None and seen.autostart is False


def test_list_filters_and_tenancy(
    hypervisor: HypervisorDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    running, stopped, theirs = name("vm"), name("vm"), name("vm")
    hypervisor.define_domain(vm_spec(running, start=True), ctx)
    hypervisor.define_domain(vm_spec(stopped), ctx)
    other = make_ctx(tenant="tenant-b")
    hypervisor.define_domain(vm_spec(theirs), other)
    assert vm_names(hypervisor, ctx) == {running, stopped}
    assert vm_names(hypervisor, ctx, "running") == vm_names(hypervisor, ctx, "active") == {running}
    assert (
        vm_names(hypervisor, ctx, "shutoff") == vm_names(hypervisor, ctx, "inactive") == {stopped}
    )
    assert vm_names(hypervisor, ctx, "persistent") == {running, stopped}
    assert vm_names(hypervisor, ctx, "transient") == set()
    assert vm_names(hypervisor, other) == {theirs}


def test_another_tenants_vm_is_not_found(
    hypervisor: HypervisorDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    vm = name("vm")
    hypervisor.define_domain(vm_spec(vm), ctx)
    other = make_ctx(tenant="tenant-b")
    for method in ("domain_info", "start_domain", "destroy_domain", "list_snapshots"):
        with pytest.raises(NotFound):
            getattr(hypervisor, method)(m.VmRef(name=vm), other)
    with pytest.raises(NotFound):
        hypervisor.undefine_domain(m.VmUndefine(name=vm), other)
    with pytest.raises(NotFound):
        hypervisor.create_snapshot(m.SnapshotCreate(name=vm, snapshot="s1"), other)
    # an admin of another tenant finds it by its name while one tenant alone has that name
    admin = make_ctx(tenant="ops", admin=True)
    assert hypervisor.domain_info(m.VmInfo(name=vm), admin)["tenant"] == ctx.tenant
    # names are per tenant: B gets a VM of its own under that name
    theirs = hypervisor.define_domain(vm_spec(vm), other)
    assert theirs["tenant"] == "tenant-b" and theirs["name"] == vm
    with pytest.raises(Conflict):  # ... and then an admin must say whose: the backend name
        hypervisor.domain_info(m.VmInfo(name=vm), admin)
    by_backend = m.VmInfo(name=backend_name(ctx.tenant, vm))
    assert hypervisor.domain_info(by_backend, admin)["tenant"] == ctx.tenant


def test_redelivered_define_finds_the_first_domain(
    hypervisor: HypervisorDriver, make_ctx: MakeCtx, name: Name, host: HypervisorBackend
) -> None:
    ctx = make_ctx()
    vm = name("vm")
    pool = make_pool(hypervisor, ctx, name)
    spec = vm_spec(vm, disks=[{"pool": pool, "capacity_mib": 4}])
    first = hypervisor.define_domain(spec, ctx)
    again = hypervisor.define_domain(spec.model_copy(update={"start": True}), ctx)
    assert again["uuid"] == first["uuid"] and again["state"] == "running"
    assert vm_names(hypervisor, ctx) == {vm}
    assert host.domain_names().count(backend_name(ctx.tenant, vm)) == 1
    assert len(hypervisor.list_volumes(m.StorageVolumeList(pool=pool), ctx)["volumes"]) == 1
    with pytest.raises(Conflict):
        hypervisor.define_domain(spec, make_ctx())  # another job, same name


def test_domain_xml_is_for_admins(
    hypervisor: HypervisorDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    vm = name("vm")
    hypervisor.define_domain(vm_spec(vm), ctx)
    with pytest.raises(Forbidden):
        hypervisor.domain_xml(m.VmRef(name=vm), ctx)
    xml = hypervisor.domain_xml(m.VmRef(name=vm), make_ctx(tenant=ctx.tenant, admin=True))
    assert xml["name"] == vm and f"<name>{backend_name(ctx.tenant, vm)}</name>" in xml["xml"]


def test_missing_objects_are_not_found(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name
) -> None:
    missing = name("missing")
    calls = [
        (hypervisor.domain_info, m.VmRef(name=missing)),
        (hypervisor.pool_info, m.PoolRef(name=missing)),
        (hypervisor.volume_info, m.StorageVolumeRef(pool=missing, name="v")),
        (hypervisor.network_info, m.VmNetworkRef(name=missing)),
        (hypervisor.list_snapshots, m.VmRef(name=missing)),
    ]
    for method, params in calls:
        with pytest.raises(NotFound):
            method(params, ctx)  # type: ignore[operator]


def test_failed_define_leaves_nothing(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend
) -> None:
    vm = name("vm")
    pool = make_pool(hypervisor, ctx, name)
    spec = vm_spec(
        vm, disks=[{"pool": pool, "capacity_mib": 4}], interfaces=[{"network": name("no-net")}]
    )
    with pytest.raises(NotFound) as err:
        hypervisor.define_domain(spec, ctx)
    assert err.value.details["kind"] == "vm_network"
    assert hypervisor.list_volumes(m.StorageVolumeList(pool=pool), ctx)["volumes"] == []
    assert vm not in vm_names(hypervisor, ctx)
    assert host.domain(backend_name(TENANT_A, vm)) is None
    missing_pool = vm_spec(vm, disks=[{"pool": name("no-pool"), "capacity_mib": 4}])
    with pytest.raises(NotFound) as err:
        hypervisor.define_domain(missing_pool, ctx)
    assert err.value.details["kind"] == "storage_pool"


# --- snapshots -----------------------------------------------------------------------------------


def test_snapshots(
    hypervisor: HypervisorDriver, make_ctx: MakeCtx, name: Name, host: HypervisorBackend
) -> None:
    ctx = make_ctx()
    pool = make_pool(hypervisor, ctx, name)
    vm = name("vm")
    hypervisor.define_domain(vm_spec(vm, disks=[{"pool": pool, "capacity_mib": 8}]), ctx)
    snap = m.SnapshotCreate(name=vm, snapshot="s1")
    taken = hypervisor.create_snapshot(snap, ctx)
    assert (taken["name"], taken["vm"], taken["current"], taken["state"]) == (
        "s1",
        vm,
        True,
        "shutoff",
    )
    assert hypervisor.create_snapshot(snap, ctx)["name"] == "s1"  # redelivery: the same one
    with pytest.raises(Conflict):
        hypervisor.create_snapshot(snap, make_ctx())  # another job: the name is taken
    listed = hypervisor.list_snapshots(m.VmRef(name=vm), ctx)["snapshots"]
    assert [s["name"] for s in listed] == ["s1"]
    reverted = hypervisor.revert_snapshot(m.SnapshotRef(name=vm, snapshot="s1"), ctx)
    assert reverted["vm_state"] == "defined"
    deleted = hypervisor.delete_snapshot(m.SnapshotRef(name=vm, snapshot="s1"), ctx)
    assert deleted == {"name": "s1", "vm": vm, "deleted": True}
    assert hypervisor.list_snapshots(m.VmRef(name=vm), ctx)["snapshots"] == []
    assert (seen := host.domain(backend_name(TENANT_A, vm))) is not None and seen.snapshots == 0
    with pytest.raises(NotFound):
        hypervisor.delete_snapshot(m.SnapshotRef(name=vm, snapshot="s1"), ctx)


def test_snapshots_need_qcow2_disks(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name
) -> None:
    vm = name("vm")
    hypervisor.define_domain(vm_spec(vm), ctx)
    with pytest.raises(Conflict):
        hypervisor.create_snapshot(m.SnapshotCreate(name=vm, snapshot="s1"), ctx)


# --- storage -------------------------------------------------------------------------------------


def test_pool_and_volumes(
    hypervisor: HypervisorDriver, ctx: JobContext, pool_root: Path, name: Name
) -> None:
    pool = name("pool")
    made = hypervisor.define_pool(m.PoolDefine(name=pool, autostart=True), ctx)
    assert made["active"] and made["persistent"] and made["autostart"]
    assert made["path"] == f"{pool_root}/{pool}" and made["volumes"] == 0
    assert hypervisor.define_pool(m.PoolDefine(name=pool), ctx)["uuid"] == made["uuid"]
    qcow = m.StorageVolumeCreate(pool=pool, name="a.qcow2", capacity_mib=8)
    created = hypervisor.create_volume(qcow, ctx)
    assert created["format"] == "qcow2" and created["capacity_bytes"] == 8 << 20
    assert hypervisor.create_volume(qcow, ctx)["path"] == created["path"]  # the same again
    with pytest.raises(Conflict):
        hypervisor.create_volume(qcow.model_copy(update={"capacity_mib": 9}), ctx)
    raw = m.StorageVolumeCreate(pool=pool, name="b.raw", capacity_mib=4, format="raw")
    hypervisor.create_volume(raw, ctx)
    vols = hypervisor.list_volumes(m.StorageVolumeList(pool=pool), ctx)["volumes"]
    assert [(v["name"], v["format"]) for v in vols] == [("a.qcow2", "qcow2"), ("b.raw", "raw")]
    b_raw = m.StorageVolumeRef(pool=pool, name="b.raw")
    assert hypervisor.volume_info(b_raw, ctx)["capacity_bytes"] == 4 << 20
    assert hypervisor.refresh_pool(m.PoolRef(name=pool), ctx)["volumes"] == 2
    hypervisor.delete_volume(b_raw, ctx)
    with pytest.raises(NotFound):
        hypervisor.volume_info(b_raw, ctx)
    with pytest.raises(NotFound):
        hypervisor.delete_volume(b_raw, ctx)
    assert pool in {p["name"] for p in hypervisor.list_pools(NoParams(), ctx)["pools"]}


def test_pool_states(hypervisor: HypervisorDriver, ctx: JobContext, name: Name) -> None:
    pool = name("pool")
    ref = m.PoolRef(name=pool)
    hypervisor.define_pool(m.PoolDefine(name=pool), ctx)
    hypervisor.create_volume(m.StorageVolumeCreate(pool=pool, name="v", capacity_mib=1), ctx)
    for active_only in (hypervisor.start_pool, hypervisor.build_pool):
        with pytest.raises(Conflict):  # already active
            active_only(ref, ctx)
    with pytest.raises(Conflict):
        hypervisor.undefine_pool(m.PoolUndefine(name=pool), ctx)  # still active
    assert hypervisor.destroy_pool(ref, ctx)["active"] is False
    with pytest.raises(Conflict):
        hypervisor.destroy_pool(ref, ctx)
    with pytest.raises(Conflict):
        hypervisor.list_volumes(m.StorageVolumeList(pool=pool), ctx)
    with pytest.raises(Conflict):
        hypervisor.create_volume(m.StorageVolumeCreate(pool=pool, name="w", capacity_mib=1), ctx)
    assert hypervisor.pool_info(ref, ctx)["volumes"] is None
    started = hypervisor.start_pool(ref, ctx)
    assert started["active"] is True and started["volumes"] == 1
    hypervisor.delete_volume(m.StorageVolumeRef(pool=pool, name="v"), ctx)
    hypervisor.destroy_pool(ref, ctx)
    undefined = hypervisor.undefine_pool(m.PoolUndefine(name=pool, delete=True), ctx)
    assert undefined == {"name": pool, "undefined": True, "deleted": True}
    with pytest.raises(NotFound):
        hypervisor.pool_info(ref, ctx)


def test_vm_with_qcow2_volumes_and_storage_removal(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend
) -> None:
    pool = make_pool(hypervisor, ctx, name)
    hypervisor.create_volume(m.StorageVolumeCreate(pool=pool, name="data", capacity_mib=8), ctx)
    vm = name("vm")
    disks = [{"pool": pool, "capacity_mib": 16}, {"pool": pool, "volume": "data"}]
    made = hypervisor.define_domain(vm_spec(vm, start=True, disks=disks), ctx)
    assert_state(host, made, "running")
    assert [(d["pool"], d["format"], d["device"]) for d in made["disks"]] == [
        (pool, "qcow2", "disk"),
        (pool, "qcow2", "disk"),
    ]
    assert made["disks"][1]["volume"] == "data"
    assert len(hypervisor.list_volumes(m.StorageVolumeList(pool=pool), ctx)["volumes"]) == 2
    hypervisor.destroy_domain(m.VmRef(name=vm), ctx)
    out = hypervisor.undefine_domain(m.VmUndefine(name=vm, remove_storage=True), ctx)
    assert sorted(out["removed_volumes"]) == sorted(f"{pool}/{d['volume']}" for d in made["disks"])
    assert hypervisor.list_volumes(m.StorageVolumeList(pool=pool), ctx)["volumes"] == []


# --- networks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["nat", "isolated", "route"])
def test_network_life_cycle_with_a_vm(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend, mode: str
) -> None:
    net = define_network(hypervisor, ctx, name, mode=mode)
    ref = m.VmNetworkRef(name=net)
    info = hypervisor.network_info(ref, ctx)
    assert info["mode"] == mode and info["active"] and info["persistent"]
    assert info["subnet"].startswith("10.215.") and info["gateway"].endswith(".1")
    assert info["dhcp_start"].endswith(".10") and info["bridge"]
    assert (seen := host.network(net)) is not None and seen.active
    vm = name("vm")
    made = hypervisor.define_domain(vm_spec(vm, start=True, interfaces=[{"network": net}]), ctx)
    assert_state(host, made, "running")
    assert [i["network"] for i in made["interfaces"]] == [net]
    assert made["interfaces"][0]["mac"].startswith("52:54:00:")
    assert hypervisor.network_leases(ref, ctx) == {"name": net, "leases": []}  # no guest OS
    with pytest.raises(Conflict):
        hypervisor.start_network(ref, ctx)  # already active
    hypervisor.destroy_domain(m.VmRef(name=vm), ctx)
    with pytest.raises(Conflict):
        hypervisor.undefine_network(ref, ctx)  # still active
    assert hypervisor.destroy_network(ref, ctx)["active"] is False
    for inactive_only in (hypervisor.destroy_network, hypervisor.network_leases):
        with pytest.raises(Conflict):
            inactive_only(ref, ctx)
    with pytest.raises(Conflict):  # a VM on an inactive network cannot start
        hypervisor.start_domain(m.VmRef(name=vm), ctx)
    hypervisor.undefine_domain(m.VmUndefine(name=vm), ctx)
    assert hypervisor.undefine_network(ref, ctx) == {"name": net, "undefined": True}
    assert host.network(net) is None
    with pytest.raises(NotFound):
        hypervisor.network_info(ref, ctx)


def test_network_define_is_idempotent_and_autostarts(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name
) -> None:
    net = name("net")
    spec = m.VmNetworkDefine(
        name=net,
        mode="isolated",
        subnet=f"10.215.{random.randint(1, 250)}.0/24",
        start=False,
        autostart=True,
    )
    first = hypervisor.define_network(spec, ctx)
    assert first["active"] is False and first["autostart"] is True
    assert hypervisor.define_network(spec, ctx)["uuid"] == first["uuid"]
    with pytest.raises(Conflict):
        hypervisor.define_network(spec.model_copy(update={"mode": "nat"}), ctx)
    assert hypervisor.start_network(m.VmNetworkRef(name=net), ctx)["active"] is True
    off = hypervisor.set_network_autostart(m.VmNetworkAutostart(name=net, enabled=False), ctx)
    assert off["autostart"] is False
    assert net in {n["name"] for n in hypervisor.list_networks(NoParams(), ctx)["networks"]}


def test_transient_network(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend
) -> None:
    net = define_network(hypervisor, ctx, name, persistent=False)
    ref = m.VmNetworkRef(name=net)
    assert hypervisor.network_info(ref, ctx)["persistent"] is False
    assert (seen := host.network(net)) is not None and seen.persistent is False
    with pytest.raises(Conflict):
        hypervisor.set_network_autostart(m.VmNetworkAutostart(name=net), ctx)
    gone = hypervisor.destroy_network(ref, ctx)
    assert (gone["active"], gone["undefined"]) == (False, True)
    assert host.network(net) is None
    with pytest.raises(NotFound):
        hypervisor.network_info(ref, ctx)


# --- volume content ------------------------------------------------------------------------------


def upload_spec(pool: str, name: str, data: bytes, **extra: Any) -> m.StorageVolumeUpload:
    spec = {
        "pool": pool,
        "name": name,
        "content": base64.b64encode(data).decode(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    return m.StorageVolumeUpload.model_validate(spec | extra)


def test_volume_upload_download_and_clone(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend
) -> None:
    pool = make_pool(hypervisor, ctx, name)
    data = os.urandom(192 * 1024)
    up = upload_spec(pool, "img", data)
    made = hypervisor.upload_volume(up, ctx)
    assert (made["format"], made["capacity_bytes"], made["sha256"]) == ("raw", len(data), up.sha256)
    assert host.volume_bytes(pool, "img") == data
    assert hypervisor.upload_volume(up, ctx)["path"] == made["path"]  # the same content again
    other = os.urandom(1024)
    with pytest.raises(Conflict):
        hypervisor.upload_volume(upload_spec(pool, "img", other), ctx)
    # checked before anything exists: size, digest, format
    for bad in (
        upload_spec(pool, "bad", data, size=len(data) + 1),
        upload_spec(pool, "bad", data, sha256="0" * 64),
        upload_spec(pool, "bad", data, format="qcow2"),
        upload_spec(pool, "bad", b"QFI\xfb" + bytes(60), format="raw"),
    ):
        with pytest.raises(InvalidRequest):
            hypervisor.upload_volume(bad, ctx)
    assert host.volume_bytes(pool, "bad") is None

    down = hypervisor.download_volume(m.StorageVolumeRef(pool=pool, name="img"), ctx)
    assert base64.b64decode(down["content"]) == data
    assert (down["size"], down["sha256"], down["format"]) == (len(data), up.sha256, "raw")

    overlay = m.StorageVolumeClone(pool=pool, name="img", target="img-overlay")
    linked = hypervisor.clone_volume(overlay, ctx)
    assert (linked["format"], linked["backing"]) == ("qcow2", made["path"])
    assert linked["capacity_bytes"] == len(data)
    assert hypervisor.clone_volume(overlay, ctx)["path"] == linked["path"]
    copy = m.StorageVolumeClone(pool=pool, name="img", target="img-copy", backing=False)
    copied = hypervisor.clone_volume(copy, ctx)
    assert (copied["format"], copied["backing"]) == ("raw", None)
    assert host.volume_bytes(pool, "img-copy") == data
    with pytest.raises(Conflict):  # a name taken by something else
        hypervisor.clone_volume(copy.model_copy(update={"target": "img-overlay"}), ctx)
    with pytest.raises(NotFound):
        hypervisor.clone_volume(overlay.model_copy(update={"name": "none"}), ctx)


def test_grow_a_volume(hypervisor: HypervisorDriver, ctx: JobContext, name: Name) -> None:
    pool = make_pool(hypervisor, ctx, name)
    for fmt in ("qcow2", "raw"):
        vol = f"v-{fmt}"
        spec = m.StorageVolumeCreate(pool=pool, name=vol, capacity_mib=4, format=fmt)
        hypervisor.create_volume(spec, ctx)
        grow = m.StorageVolumeGrow(pool=pool, name=vol, capacity_mib=12)
        assert hypervisor.grow_volume(grow, ctx)["capacity_bytes"] == 12 << 20
        assert hypervisor.grow_volume(grow, ctx)["capacity_bytes"] == 12 << 20  # again: the same
        ref = m.StorageVolumeRef(pool=pool, name=vol)
        assert hypervisor.volume_info(ref, ctx)["capacity_bytes"] == 12 << 20
        with pytest.raises(Conflict):
            hypervisor.grow_volume(grow.model_copy(update={"capacity_mib": 8}), ctx)
    with pytest.raises(NotFound):
        hypervisor.grow_volume(m.StorageVolumeGrow(pool=pool, name="none", capacity_mib=8), ctx)


# --- changing a VM -------------------------------------------------------------------------------


def test_resize_offline_then_live_up_to_the_maximum(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend
) -> None:
    vm = name("vm")
    hypervisor.define_domain(vm_spec(vm), ctx)
    ref = backend_name(ctx.tenant, vm)
    out = hypervisor.resize_domain(m.VmResize(name=vm, memory_mib=96, vcpus=2), ctx)
    assert (out["max_memory_mib"], out["memory_mib"], out["vcpus"]) == (96, 96, 2)
    seen = host.domain(ref)
    assert seen is not None and (seen.memory_mib, seen.vcpus) == (96, 2)
    out = hypervisor.resize_domain(m.VmResize(name=vm, memory_mib=64, vcpus=1), ctx)  # down
    assert (out["max_memory_mib"], out["vcpus"], out["max_vcpus"]) == (64, 1, 1)

    live = name("vm")
    spec = vm_spec(live, memory_mib=64, max_memory_mib=128, max_vcpus=2, start=True)
    made = hypervisor.define_domain(spec, ctx)
    assert (made["max_memory_mib"], made["max_vcpus"], made["vcpus"]) == (128, 2, 1)
    grown = hypervisor.resize_domain(m.VmResize(name=live, vcpus=2), ctx)
    assert grown["vcpus"] == 2 and grown["state"] == "running"
    seen = host.domain(backend_name(ctx.tenant, live))
    assert seen is not None and seen.vcpus == 2  # in the definition too
    for past in ({"vcpus": 3}, {"memory_mib": 256}):
        with pytest.raises(Conflict) as err:
            hypervisor.resize_domain(m.VmResize.model_validate({"name": live, **past}), ctx)
        assert "stop it" in err.value.message
    hypervisor.suspend_domain(m.VmRef(name=live), ctx)
    hypervisor.resize_domain(m.VmResize(name=live, memory_mib=96), ctx)  # paused: allowed


def test_attach_and_detach_disks_and_nics(
    hypervisor: HypervisorDriver,
    ctx: JobContext,
    make_ctx: MakeCtx,
    name: Name,
    host: HypervisorBackend,
) -> None:
    pool = make_pool(hypervisor, ctx, name)
    net = define_network(hypervisor, ctx, name)
    hypervisor.create_volume(m.StorageVolumeCreate(pool=pool, name="data", capacity_mib=4), ctx)
    vm = name("vm")
    hypervisor.define_domain(vm_spec(vm, disks=[{"pool": pool, "capacity_mib": 4}]), ctx)
    ref = backend_name(ctx.tenant, vm)
    attach = m.VmDiskAttach(name=vm, pool=pool, volume="data")
    out = hypervisor.attach_disk(attach, ctx)
    assert out["target"] == "vdb" and out["volume"] == "data"
    assert hypervisor.attach_disk(attach, ctx)["target"] == "vdb"  # a redelivery: the same disk
    job = make_ctx(TENANT_A, job_id="job-hotplug")
    new = hypervisor.attach_disk(m.VmDiskAttach(name=vm, pool=pool, capacity_mib=2), job)
    assert new["target"] == "vdc" and new["volume"].startswith(f"{vm}-hp-")
    seen = host.domain(ref)
    assert seen is not None and seen.disks == ("vda", "vdb", "vdc")
    hypervisor.detach_disk(m.VmDiskDetach(name=vm, target="vdb"), ctx)
    seen = host.domain(ref)
    assert seen is not None and seen.disks == ("vda", "vdc")
    with pytest.raises(NotFound):
        hypervisor.detach_disk(m.VmDiskDetach(name=vm, target="vdb"), ctx)
    assert hypervisor.volume_info(m.StorageVolumeRef(pool=pool, name="data"), ctx)  # it stays

    mac = "52:54:00:0e:0e:01"
    nic = hypervisor.attach_nic(m.VmNicAttach(name=vm, network=net, mac=mac), ctx)
    assert nic["mac"] == mac and [i["mac"] for i in nic["interfaces"]] == [mac]
    seen = host.domain(ref)
    assert seen is not None and seen.macs == (mac,)
    with pytest.raises(NotFound):
        hypervisor.attach_nic(m.VmNicAttach(name=vm, network=name("none")), ctx)
    hypervisor.detach_nic(m.VmNicDetach(name=vm, mac=mac), ctx)
    seen = host.domain(ref)
    assert seen is not None and seen.macs == ()
    with pytest.raises(NotFound):
        hypervisor.detach_nic(m.VmNicDetach(name=vm, mac=mac), ctx)
    hypervisor.start_domain(m.VmRef(name=vm), ctx)
    hypervisor.suspend_domain(m.VmRef(name=vm), ctx)
    with pytest.raises(Conflict):  # not while paused
        hypervisor.attach_disk(attach, ctx)
    with pytest.raises(NotFound):  # another tenant's VM
        hypervisor.attach_disk(attach, make_ctx("tenant-b"))


def test_console_stats_and_vnc(hypervisor: HypervisorDriver, ctx: JobContext, name: Name) -> None:
    vm = name("vm")
    made = hypervisor.define_domain(vm_spec(vm, vnc=True, start=True), ctx)
    password = made["vnc_password"]
    assert isinstance(password, str) and len(password) == 8
    info = hypervisor.domain_info(m.VmInfo(name=vm), ctx)
    assert "vnc_password" not in info and password not in str(info)
    assert info["vnc"]["listen"] == "127.0.0.1" and info["vnc"]["port"] >= 5900
    console = hypervisor.domain_console(m.VmConsole(name=vm, tail=5), ctx)
    assert console["name"] == vm and console["log"] is True
    assert isinstance(console["lines"], list) and len(console["lines"]) <= 5
    stats = hypervisor.domain_stats(m.VmRef(name=vm), ctx)
    assert stats["state"] == "running" and stats["cpu"]["time"] > 0
    with_stats = hypervisor.domain_info(m.VmInfo(name=vm, stats=True), ctx)
    assert with_stats["stats"]["cpu"]["time"] > 0 and "name" not in with_stats["stats"]
    assert "stats" not in hypervisor.domain_info(m.VmInfo(name=vm), ctx)
    hypervisor.destroy_domain(m.VmRef(name=vm), ctx)
    stopped = hypervisor.domain_stats(m.VmRef(name=vm), ctx)
    assert stopped["state"] == "defined" and stopped["block"] == stopped["net"] == []
    quiet = name("vm")
    hypervisor.define_domain(vm_spec(quiet, serial_console=False), ctx)
    assert hypervisor.domain_console(m.VmConsole(name=quiet), ctx)["lines"] == []


def test_kernel_boot_and_cloud_init_seed(
    hypervisor: HypervisorDriver, ctx: JobContext, name: Name, host: HypervisorBackend
) -> None:
    pool = make_pool(hypervisor, ctx, name)
    hypervisor.upload_volume(upload_spec(pool, "kernel", os.urandom(4096)), ctx)
    vm = name("vm")
    spec = vm_spec(
        vm,
        kernel={"pool": pool, "volume": "kernel"},
        cmdline="console=ttyS0",
        cloud_init={"user_data": "#cloud-config\n{}\n", "ssh_authorized_keys": [KEY]},
    )
    made = hypervisor.define_domain(spec, ctx)
    assert made["kernel_boot"]["cmdline"] == "console=ttyS0"
    assert made["kernel_boot"]["kernel"].endswith("/kernel")
    seeds = [d for d in made["disks"] if d["device"] == "cdrom"]
    assert len(seeds) == 1 and seeds[0]["volume"].startswith(f"{vm}-cidata-")
    assert host.volume_bytes(pool, seeds[0]["volume"]) is not None
    hypervisor.undefine_domain(m.VmUndefine(name=vm), ctx)
    assert host.volume_bytes(pool, seeds[0]["volume"]) is None  # removed with the VM
    assert host.volume_bytes(pool, "kernel") is not None


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ0ZXN0a2V5Zm9ybnViZWNvbnRyYWN0dGVzdHM nube@test"


# --- rename and clone ----------------------------------------------------------------------------


def test_rename_a_shut_off_vm(
    hypervisor: HypervisorDriver,
    ctx: JobContext,
    make_ctx: MakeCtx,
    name: Name,
    host: HypervisorBackend,
) -> None:
    pool = make_pool(hypervisor, ctx, name)
    vm, new, taken = name("vm"), name("renamed"), name("taken")
    made = hypervisor.define_domain(vm_spec(vm, disks=[{"pool": pool, "capacity_mib": 4}]), ctx)
    hypervisor.define_domain(vm_spec(taken), ctx)
    hypervisor.define_domain(vm_spec(new), make_ctx("tenant-b"))  # B's name does not block A
    assert "rename" in made["allowed_actions"]
    with pytest.raises(Conflict):  # the tenant holds that name
        hypervisor.rename_domain(m.VmRename(name=vm, new_name=taken), ctx)
    with pytest.raises(NotFound):  # another tenant's VM
        hypervisor.rename_domain(m.VmRename(name=vm, new_name=name("x")), make_ctx("tenant-b"))
    out = hypervisor.rename_domain(m.VmRename(name=vm, new_name=new), ctx)
    assert (out["name"], out["uuid"], out["tenant"], out["job"]) == (
        new,
        made["uuid"],
        ctx.tenant,
        ctx.job_id,
    )
    assert out["disks"] == made["disks"]
    assert host.domain(backend_name(ctx.tenant, vm)) is None
    assert_state(host, out, "defined")
    assert vm_names(hypervisor, ctx) == {new, taken}
    again = hypervisor.rename_domain(m.VmRename(name=vm, new_name=new), ctx)  # a redelivery
    assert again["uuid"] == made["uuid"]
    assert_state(host, hypervisor.start_domain(m.VmRef(name=new), ctx), "running")  # disks work
    with pytest.raises(Conflict):  # only shut off
        hypervisor.rename_domain(m.VmRename(name=new, new_name=vm), ctx)
    hypervisor.destroy_domain(m.VmRef(name=new), ctx)
    gone = hypervisor.undefine_domain(m.VmUndefine(name=new, remove_storage=True), ctx)
    assert gone["removed_volumes"] == [f"{pool}/{made['disks'][0]['volume']}"]


def test_clone_a_shut_off_vm_with_its_disks(
    hypervisor: HypervisorDriver,
    ctx: JobContext,
    make_ctx: MakeCtx,
    name: Name,
    host: HypervisorBackend,
) -> None:
    pool = make_pool(hypervisor, ctx, name)
    net = define_network(hypervisor, ctx, name)
    data = os.urandom(64 * 1024)
    hypervisor.upload_volume(upload_spec(pool, "base", data), ctx)
    vm = name("vm")
    spec = vm_spec(vm, disks=[{"pool": pool, "volume": "base"}], interfaces=[{"network": net}])
    source = hypervisor.define_domain(spec, ctx)
    job = make_ctx()
    copy = name("copy")
    out = hypervisor.clone_domain(m.VmClone(name=vm, target=copy), job)
    assert (out["name"], out["state"], out["tenant"], out["job"]) == (
        copy,
        "defined",
        ctx.tenant,
        job.job_id,
    )
    assert out["uuid"] != source["uuid"]
    assert out["interfaces"][0]["network"] == net
    assert out["interfaces"][0]["mac"] != source["interfaces"][0]["mac"]
    disk = out["disks"][0]
    assert disk["volume"].startswith(f"{copy}-disk0-") and disk["format"] == "raw"
    assert host.volume_bytes(pool, disk["volume"]) == data  # a full copy
    assert hypervisor.clone_domain(m.VmClone(name=vm, target=copy), job)["uuid"] == out["uuid"]
    with pytest.raises(Conflict):  # another job's clone under that name
        hypervisor.clone_domain(m.VmClone(name=vm, target=copy), make_ctx())

    linked = name("linked")
    lout = hypervisor.clone_domain(m.VmClone(name=vm, target=linked, linked=True), make_ctx())
    overlay = lout["disks"][0]
    assert overlay["format"] == "qcow2"
    info = hypervisor.volume_info(m.StorageVolumeRef(pool=pool, name=overlay["volume"]), ctx)
    base = hypervisor.volume_info(m.StorageVolumeRef(pool=pool, name="base"), ctx)
    assert info["backing"] == base["path"]
    assert vm_names(hypervisor, ctx) == {vm, copy, linked}

    assert_state(host, hypervisor.start_domain(m.VmRef(name=vm), ctx), "running")
    with pytest.raises(Conflict):  # only a shut-off VM
        hypervisor.clone_domain(m.VmClone(name=vm, target=name("late")), make_ctx())
    hypervisor.destroy_domain(m.VmRef(name=vm), ctx)
    for clone, vol in ((linked, overlay["volume"]), (copy, disk["volume"])):
        gone = hypervisor.undefine_domain(m.VmUndefine(name=clone, remove_storage=True), ctx)
        assert gone["removed_volumes"] == [f"{pool}/{vol}"]
    assert host.volume_bytes(pool, "base") == data  # the source's volume stays
