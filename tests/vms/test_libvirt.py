"""LibvirtDriver on test:///default and qemu:///system, confirmed by libvirt itself.

Each test calls the driver directly and confirms what it did with libvirt-python (``raw``); the
interface-only contract, run on the fake driver too, is ``tests/drivers``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import libvirt
import pytest

from nube.catalog import NoParams
from nube.catalog import vm_models as m
from nube.errors import Conflict, Forbidden, InvalidRequest, NotFound
from workers.drivers import JobContext
from workers.drivers.hypervisor import HypervisorDriver
from workers.drivers.libvirt import LibvirtDriver
from workers.drivers.libvirt.xml import parse_domain
from workers.drivers.vm_states import VmState, allowed_actions

from .conftest import make_ctx, unique

pytestmark = pytest.mark.libvirt

LIBVIRT_STATE = {
    "running": libvirt.VIR_DOMAIN_RUNNING,
    "paused": libvirt.VIR_DOMAIN_PAUSED,
    "defined": libvirt.VIR_DOMAIN_SHUTOFF,
    "saved": libvirt.VIR_DOMAIN_SHUTOFF,
}


def vm_spec(name: str, **extra: Any) -> m.VmDefine:
    return m.VmDefine.model_validate({"name": name, "memory_mib": 64, **extra})


def assert_state(raw: libvirt.virConnect, vm: dict[str, Any], state: str) -> None:
    """The driver's representation and libvirt itself agree on ``state``."""
    assert vm["state"] == state
    assert vm["allowed_actions"] == allowed_actions(VmState(state), vm["persistent"])
    dom = raw.lookupByName(vm["name"])
    assert dom.state()[0] == LIBVIRT_STATE[state]
    assert bool(dom.hasManagedSaveImage(0)) is (state == "saved")


def make_pool(driver: LibvirtDriver, ctx: JobContext) -> str:
    name = unique("pool")
    driver.define_pool(m.PoolDefine(name=name), ctx)
    return name


# --- node --------------------------------------------------------------------------------------


def test_is_a_hypervisor_driver(driver: LibvirtDriver) -> None:
    assert isinstance(driver, HypervisorDriver)
    assert driver.version().startswith("libvirt ")


def test_hypervisor_info(driver: LibvirtDriver, ctx: JobContext, uri: str) -> None:
    info = driver.hypervisor_info(NoParams(), ctx)
    assert info["uri"] == uri and info["node"] == "node-1"
    assert info["domain_type"] in info["capabilities"]["domain_types"]
    assert info["domain_type"] in ("kvm", "qemu", "test")
    assert info["capabilities"]["guest_arches"]
    node = info["node_info"]
    assert node["cpus"] >= 1 and node["memory_mib"] > 0 and node["sockets"] >= 1
    assert info["max_vcpus"] >= 1
    assert info["libvirt_version"].count(".") == 2


# --- domain life cycle -------------------------------------------------------------------------


def test_life_cycle(driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext) -> None:
    name = unique("vm")
    ref = m.VmRef(name=name)
    vm = driver.define_domain(vm_spec(name), ctx)
    assert vm["node"] == "node-1" and vm["tenant"] == ctx.tenant and vm["job"] == ctx.job_id
    assert_state(raw, vm, "defined")
    assert_state(raw, driver.start_domain(ref, ctx), "running")
    assert_state(raw, driver.suspend_domain(ref, ctx), "paused")
    assert_state(raw, driver.resume_domain(ref, ctx), "running")
    assert_state(raw, driver.reboot_domain(m.VmReboot(name=name, hard=True), ctx), "running")
    assert_state(raw, driver.reboot_domain(m.VmReboot(name=name), ctx), "running")
    assert_state(raw, driver.save_domain(ref, ctx), "saved")
    assert_state(raw, driver.restore_domain(ref, ctx), "running")
    info = driver.domain_info(ref, ctx)
    assert info["memory_mib"] == 64 and info["vcpus"] == 1 and info["cpu_time_ns"] > 0
    assert_state(raw, driver.destroy_domain(ref, ctx), "defined")
    assert driver.undefine_domain(m.VmUndefine(name=name), ctx)["state"] == "undefined"
    assert name not in [d.name() for d in raw.listAllDomains(0)]


def test_save_from_paused_and_start_a_saved_vm(
    driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext
) -> None:
    name = unique("vm")
    driver.define_domain(vm_spec(name, start=True), ctx)
    driver.suspend_domain(m.VmRef(name=name), ctx)
    assert_state(raw, driver.save_domain(m.VmRef(name=name), ctx), "saved")
    assert_state(raw, driver.start_domain(m.VmRef(name=name), ctx), "running")
    driver.destroy_domain(m.VmRef(name=name), ctx)


def test_undefine_a_saved_vm_drops_its_image(
    driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext
) -> None:
    name = unique("vm")
    driver.define_domain(vm_spec(name, start=True), ctx)
    driver.save_domain(m.VmRef(name=name), ctx)
    driver.undefine_domain(m.VmUndefine(name=name), ctx)
    assert name not in [d.name() for d in raw.listAllDomains(0)]


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
    driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext, setup: list[str], action: str
) -> None:
    name = unique("vm")
    driver.define_domain(vm_spec(name), ctx)
    for step in setup:
        getattr(driver, step)(m.VmRef(name=name), ctx)
    before = raw.lookupByName(name).state()[0]
    params = {
        "shutdown_domain": m.VmShutdown,
        "reboot_domain": m.VmReboot,
        "undefine_domain": m.VmUndefine,
    }.get(action, m.VmRef)(name=name)
    with pytest.raises(Conflict) as err:
        getattr(driver, action)(params, ctx)
    assert err.value.code == "conflict" and err.value.details["allowed_actions"]
    assert raw.lookupByName(name).state()[0] == before


def test_transient_vm(driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext) -> None:
    name = unique("vm")
    vm = driver.define_domain(vm_spec(name, persistent=False), ctx)
    assert vm["persistent"] is False
    assert_state(raw, vm, "running")
    assert "save" not in vm["allowed_actions"] and "undefine" not in vm["allowed_actions"]
    with pytest.raises(Conflict):
        driver.save_domain(m.VmRef(name=name), ctx)
    assert driver.destroy_domain(m.VmRef(name=name), ctx)["state"] == "undefined"
    with pytest.raises(libvirt.libvirtError):
        raw.lookupByName(name)


def test_autostart(driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext) -> None:
    name = unique("vm")
    assert driver.define_domain(vm_spec(name, autostart=True), ctx)["autostart"] is True
    vm = driver.set_domain_autostart(m.VmAutostart(name=name, enabled=False), ctx)
    assert vm["autostart"] is False and raw.lookupByName(name).autostart() == 0


def test_list_filters_and_tenancy(driver: LibvirtDriver, ctx: JobContext) -> None:
    running, stopped = unique("vm"), unique("vm")
    driver.define_domain(vm_spec(running, start=True), ctx)
    driver.define_domain(vm_spec(stopped), ctx)
    other = make_ctx(tenant="tenant-b")
    theirs = unique("vm")
    driver.define_domain(vm_spec(theirs), other)

    def names(state: str, who: JobContext = ctx) -> set[str]:
        return {vm["name"] for vm in driver.list_domains(m.VmList(state=state), who)["vms"]}

    assert names("all") == {running, stopped}
    assert names("running") == names("active") == {running}
    assert names("shutoff") == names("inactive") == {stopped}
    assert names("persistent") == {running, stopped} and names("transient") == set()
    assert names("all", other) == {theirs}


def test_other_tenants_vm_is_not_found(driver: LibvirtDriver, ctx: JobContext) -> None:
    name = unique("vm")
    driver.define_domain(vm_spec(name), ctx)
    other = make_ctx(tenant="tenant-b")
    for method in ("domain_info", "start_domain", "list_snapshots"):
        with pytest.raises(NotFound):
            getattr(driver, method)(m.VmRef(name=name), other)
    with pytest.raises(NotFound):
        driver.undefine_domain(m.VmUndefine(name=name), other)
    with pytest.raises(Conflict):  # names are unique per node
        driver.define_domain(vm_spec(name), other)
    admin = make_ctx(tenant="ops", admin=True)
    assert driver.domain_info(m.VmRef(name=name), admin)["tenant"] == ctx.tenant


def test_redelivered_define_finds_the_first_domain(
    driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext
) -> None:
    name = unique("vm")
    pool = make_pool(driver, ctx)
    spec = vm_spec(name, disks=[{"pool": pool, "capacity_mib": 4}])
    first = driver.define_domain(spec, ctx)
    again = driver.define_domain(spec.model_copy(update={"start": True}), ctx)
    assert again["uuid"] == first["uuid"] and again["state"] == "running"
    assert [d.name() for d in raw.listAllDomains(0)].count(name) == 1
    assert len(driver.list_volumes(m.StorageVolumeList(pool=pool), ctx)["volumes"]) == 1
    with pytest.raises(Conflict):
        driver.define_domain(spec, make_ctx())  # another job, same name


def test_domain_xml_is_admin_only_and_round_trips(driver: LibvirtDriver, ctx: JobContext) -> None:
    name = unique("vm")
    pool = make_pool(driver, ctx)
    net = _define_network(driver, ctx, "isolated")
    spec = vm_spec(
        name,
        vcpus=2,
        boot=["network", "hd"],
        disks=[{"pool": pool, "capacity_mib": 4, "format": "qcow2"}],
        interfaces=[{"network": net, "mac": "52:54:00:0a:0b:0c"}, {"network": net}],
    )
    driver.define_domain(spec, ctx)
    with pytest.raises(Forbidden):
        driver.domain_xml(m.VmRef(name=name), ctx)
    xml = driver.domain_xml(m.VmRef(name=name), make_ctx(tenant=ctx.tenant, admin=True))["xml"]
    parsed = parse_domain(xml)
    assert (parsed.name, parsed.memory_mib, parsed.vcpus) == (name, 64, 2)
    assert parsed.boot == ("network", "hd") and parsed.serial_console
    assert [(d.pool, d.format) for d in parsed.disks] == [(pool, "qcow2")]
    assert [n.network for n in parsed.interfaces] == [net, net]
    assert parsed.interfaces[0].mac == "52:54:00:0a:0b:0c"


def test_missing_objects_are_not_found(driver: LibvirtDriver, ctx: JobContext) -> None:
    missing = unique("missing")
    calls = [
        (driver.domain_info, m.VmRef(name=missing)),
        (driver.pool_info, m.PoolRef(name=missing)),
        (driver.volume_info, m.StorageVolumeRef(pool=missing, name="v")),
        (driver.network_info, m.VmNetworkRef(name=missing)),
        (driver.list_snapshots, m.VmRef(name=missing)),
    ]
    for method, params in calls:
        with pytest.raises(NotFound):
            method(params, ctx)  # type: ignore[operator]


def test_failed_define_leaves_nothing(
    driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext
) -> None:
    name = unique("vm")
    pool = make_pool(driver, ctx)
    spec = vm_spec(
        name,
        disks=[{"pool": pool, "capacity_mib": 4}],
        interfaces=[{"network": unique("no-such-net")}],
    )
    with pytest.raises(NotFound) as err:
        driver.define_domain(spec, ctx)
    assert err.value.details["kind"] == "vm_network"
    assert driver.list_volumes(m.StorageVolumeList(pool=pool), ctx)["volumes"] == []
    assert name not in [d.name() for d in raw.listAllDomains(0)]


# --- storage -----------------------------------------------------------------------------------


def test_pool_and_volumes(driver: LibvirtDriver, pool_root: Path, ctx: JobContext) -> None:
    name = unique("pool")
    pool = driver.define_pool(m.PoolDefine(name=name, autostart=True), ctx)
    assert pool["active"] and pool["persistent"] and pool["autostart"]
    assert pool["path"] == f"{pool_root}/{name}" and pool["volumes"] == 0
    assert driver.define_pool(m.PoolDefine(name=name), ctx)["name"] == name  # same spec again
    qcow = driver.create_volume(
        m.StorageVolumeCreate(pool=name, name="a.qcow2", capacity_mib=8), ctx
    )
    assert qcow["format"] == "qcow2" and qcow["capacity_bytes"] == 8 << 20
    again = driver.create_volume(
        m.StorageVolumeCreate(pool=name, name="a.qcow2", capacity_mib=8), ctx
    )
    assert again["path"] == qcow["path"]
    with pytest.raises(Conflict):
        driver.create_volume(m.StorageVolumeCreate(pool=name, name="a.qcow2", capacity_mib=9), ctx)
    driver.create_volume(
        m.StorageVolumeCreate(pool=name, name="b.raw", capacity_mib=4, format="raw"), ctx
    )
    vols = driver.list_volumes(m.StorageVolumeList(pool=name), ctx)["volumes"]
    assert [(v["name"], v["format"]) for v in vols] == [("a.qcow2", "qcow2"), ("b.raw", "raw")]
    assert (
        driver.volume_info(m.StorageVolumeRef(pool=name, name="b.raw"), ctx)["capacity_bytes"]
        == 4 << 20
    )
    assert driver.refresh_pool(m.PoolRef(name=name), ctx)["volumes"] == 2
    driver.delete_volume(m.StorageVolumeRef(pool=name, name="b.raw"), ctx)
    with pytest.raises(NotFound):
        driver.volume_info(m.StorageVolumeRef(pool=name, name="b.raw"), ctx)
    assert name in {p["name"] for p in driver.list_pools(NoParams(), ctx)["pools"]}
    _pool_teardown(driver, name, ctx)


def _pool_teardown(driver: LibvirtDriver, name: str, ctx: JobContext) -> None:
    for vol in driver.list_volumes(m.StorageVolumeList(pool=name), ctx)["volumes"]:
        driver.delete_volume(m.StorageVolumeRef(pool=name, name=vol["name"]), ctx)
    with pytest.raises(Conflict):
        driver.undefine_pool(m.PoolUndefine(name=name), ctx)  # still active
    assert driver.destroy_pool(m.PoolRef(name=name), ctx)["active"] is False
    assert driver.start_pool(m.PoolRef(name=name), ctx)["active"] is True
    driver.destroy_pool(m.PoolRef(name=name), ctx)
    driver.undefine_pool(m.PoolUndefine(name=name, delete=True), ctx)
    with pytest.raises(NotFound):
        driver.pool_info(m.PoolRef(name=name), ctx)


def test_vm_with_qcow2_volumes_and_storage_removal(
    driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext
) -> None:
    pool = make_pool(driver, ctx)
    driver.create_volume(m.StorageVolumeCreate(pool=pool, name="data", capacity_mib=8), ctx)
    name = unique("vm")
    spec = vm_spec(
        name,
        start=True,
        disks=[{"pool": pool, "capacity_mib": 16}, {"pool": pool, "volume": "data"}],
    )
    vm = driver.define_domain(spec, ctx)
    assert_state(raw, vm, "running")
    assert [d["format"] for d in vm["disks"]] == ["qcow2", "qcow2"]
    assert len(driver.list_volumes(m.StorageVolumeList(pool=pool), ctx)["volumes"]) == 2
    driver.destroy_domain(m.VmRef(name=name), ctx)
    out = driver.undefine_domain(m.VmUndefine(name=name, remove_storage=True), ctx)
    assert len(out["removed_volumes"]) == 2
    assert driver.list_volumes(m.StorageVolumeList(pool=pool), ctx)["volumes"] == []


def test_snapshots(driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext) -> None:
    pool = make_pool(driver, ctx)
    name = unique("vm")
    driver.define_domain(vm_spec(name, disks=[{"pool": pool, "capacity_mib": 8}]), ctx)
    snap = m.SnapshotCreate(name=name, snapshot="s1")
    taken = driver.create_snapshot(snap, ctx)
    assert taken["name"] == "s1" and taken["current"]
    assert driver.create_snapshot(snap, ctx)["name"] == "s1"  # redelivery: the same one
    with pytest.raises(Conflict):
        driver.create_snapshot(snap, make_ctx())  # another job: the name is taken
    assert [s["name"] for s in driver.list_snapshots(m.VmRef(name=name), ctx)["snapshots"]] == [
        "s1"
    ]
    reverted = driver.revert_snapshot(m.SnapshotRef(name=name, snapshot="s1"), ctx)
    assert reverted["vm_state"] == "defined"
    driver.delete_snapshot(m.SnapshotRef(name=name, snapshot="s1"), ctx)
    assert raw.lookupByName(name).snapshotNum(0) == 0
    with pytest.raises(NotFound):
        driver.delete_snapshot(m.SnapshotRef(name=name, snapshot="s1"), ctx)


def test_snapshots_need_qcow2_disks(driver: LibvirtDriver, ctx: JobContext) -> None:
    name = unique("vm")
    driver.define_domain(vm_spec(name), ctx)
    with pytest.raises(Conflict):
        driver.create_snapshot(m.SnapshotCreate(name=name, snapshot="s1"), ctx)


# --- networks ----------------------------------------------------------------------------------


def _define_network(driver: LibvirtDriver, ctx: JobContext, mode: str, **extra: Any) -> str:
    name = unique("net")
    third = random.randint(100, 250)
    spec = m.VmNetworkDefine.model_validate(
        {
            "name": name,
            "mode": mode,
            "subnet": f"10.213.{third}.0/24",
            "dhcp_start": f"10.213.{third}.10",
            "dhcp_end": f"10.213.{third}.20",
            **extra,
        }
    )
    driver.define_network(spec, ctx)
    return name


@pytest.mark.parametrize("mode", ["nat", "isolated", "route"])
def test_network_with_a_vm(
    driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext, mode: str
) -> None:
    net = _define_network(driver, ctx, mode)
    info = driver.network_info(m.VmNetworkRef(name=net), ctx)
    assert info["mode"] == mode and info["active"] and info["persistent"]
    assert info["subnet"].startswith("10.213.") and info["gateway"].endswith(".1")
    assert raw.networkLookupByName(net).isActive() == 1
    name = unique("vm")
    vm = driver.define_domain(vm_spec(name, start=True, interfaces=[{"network": net}]), ctx)
    assert_state(raw, vm, "running")
    assert [i["network"] for i in vm["interfaces"]] == [net]
    _check_leases(driver, net, ctx)
    driver.destroy_domain(m.VmRef(name=name), ctx)
    driver.undefine_domain(m.VmUndefine(name=name), ctx)
    with pytest.raises(Conflict):
        driver.undefine_network(m.VmNetworkRef(name=net), ctx)  # still active
    assert driver.destroy_network(m.VmNetworkRef(name=net), ctx)["active"] is False
    with pytest.raises(Conflict):
        driver.network_leases(m.VmNetworkRef(name=net), ctx)
    driver.undefine_network(m.VmNetworkRef(name=net), ctx)
    assert net not in [n.name() for n in raw.listAllNetworks(0)]


def _check_leases(driver: LibvirtDriver, net: str, ctx: JobContext) -> None:
    if driver.uri.startswith("test:"):  # the mock hypervisor has no DHCP server
        with pytest.raises(InvalidRequest):
            driver.network_leases(m.VmNetworkRef(name=net), ctx)
        return
    assert driver.network_leases(m.VmNetworkRef(name=net), ctx)["leases"] == []  # no guest OS


def test_network_define_is_idempotent_and_autostarts(
    driver: LibvirtDriver, ctx: JobContext
) -> None:
    name = unique("net")
    spec = m.VmNetworkDefine(
        name=name,
        mode="isolated",
        subnet="10.213.99.0/24",
        start=False,
        autostart=True,
    )
    first = driver.define_network(spec, ctx)
    assert first["active"] is False and first["autostart"] is True
    assert driver.define_network(spec, ctx)["uuid"] == first["uuid"]
    with pytest.raises(Conflict):
        driver.define_network(spec.model_copy(update={"mode": "nat"}), ctx)
    assert driver.start_network(m.VmNetworkRef(name=name), ctx)["active"] is True
    assert name in {n["name"] for n in driver.list_networks(NoParams(), ctx)["networks"]}
    driver.destroy_network(m.VmNetworkRef(name=name), ctx)
    driver.undefine_network(m.VmNetworkRef(name=name), ctx)


def test_transient_network(driver: LibvirtDriver, raw: libvirt.virConnect, ctx: JobContext) -> None:
    name = _define_network(driver, ctx, "isolated", persistent=False)
    assert raw.networkLookupByName(name).isPersistent() == 0
    assert driver.destroy_network(m.VmNetworkRef(name=name), ctx)["undefined"] is True
    assert name not in [n.name() for n in raw.listAllNetworks(0)]
