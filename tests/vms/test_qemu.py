"""What only a real hypervisor shows: a guest without an OS never powers off by itself, a
running snapshot keeps memory, and libvirtd can go away under a job."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import libvirt
import pytest

from nube.catalog import vm_models as m
from nube.errors import BackendUnavailable, Timeout
from workers.drivers import JobContext
from workers.drivers.libvirt import LibvirtDriver

from .conftest import QEMU, qemu_reachable, unique
from .test_libvirt import make_pool

pytestmark = pytest.mark.libvirt
PIDFILE = Path("/run/libvirtd.pid")


def vm_spec(name: str, **extra: Any) -> m.VmDefine:
    return m.VmDefine.model_validate({"name": name, "memory_mib": 64, **extra})


def test_domain_type_follows_kvm_availability(qemu: LibvirtDriver, ctx: JobContext) -> None:
    info = qemu.hypervisor_info(params=None, ctx=ctx)  # type: ignore[arg-type]
    kvm_usable = "kvm" in info["capabilities"]["domain_types"]
    assert info["domain_type"] == ("kvm" if kvm_usable else "qemu")
    forced = LibvirtDriver(QEMU, node="n", domain_type="qemu")
    try:
        name = unique("vm")
        forced.define_domain(vm_spec(name), ctx)
        assert "type='qemu'" in libvirt.open(QEMU).lookupByName(name).XMLDesc(0)
    finally:
        forced.close()


def test_shutdown_times_out_then_destroys(qemu: LibvirtDriver, ctx: JobContext) -> None:
    name = unique("vm")
    qemu.define_domain(vm_spec(name, start=True), ctx)
    with pytest.raises(Timeout) as err:  # no guest OS answers the ACPI power button
        qemu.shutdown_domain(m.VmShutdown(name=name, timeout=1), ctx)
    assert err.value.code == "timeout"
    assert qemu.domain_info(m.VmRef(name=name), ctx)["state"] == "running"
    done = qemu.shutdown_domain(m.VmShutdown(name=name, timeout=1, force=True), ctx)
    assert (done["state"], done["graceful"], done["forced"]) == ("defined", False, True)
    assert libvirt.open(QEMU).lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_SHUTOFF


def test_snapshot_of_a_running_vm(qemu: LibvirtDriver, ctx: JobContext) -> None:
    pool = make_pool(qemu, ctx)
    name = unique("vm")
    qemu.define_domain(vm_spec(name, start=True, disks=[{"pool": pool, "capacity_mib": 8}]), ctx)
    taken = qemu.create_snapshot(m.SnapshotCreate(name=name, snapshot="live"), ctx)
    assert taken["state"] == "running"
    qemu.destroy_domain(m.VmRef(name=name), ctx)
    reverted = qemu.revert_snapshot(m.SnapshotRef(name=name, snapshot="live"), ctx)
    assert reverted["vm_state"] == "running"  # memory state came back
    qemu.delete_snapshot(m.SnapshotRef(name=name, snapshot="live"), ctx)
    qemu.destroy_domain(m.VmRef(name=name), ctx)


# --- libvirtd going away -------------------------------------------------------------------------


def _stop_libvirtd() -> None:
    pid = int(PIDFILE.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    for _ in range(200):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.05)
    raise AssertionError("libvirtd did not stop")


def _start_libvirtd() -> None:
    if not qemu_reachable():
        subprocess.run(["libvirtd", "-d"], check=True)
    for _ in range(300):
        if qemu_reachable():
            return
        time.sleep(0.1)
    raise AssertionError("libvirtd did not come back")


@pytest.fixture
def restartable(qemu: LibvirtDriver) -> Any:
    """Stopping libvirtd needs the daemon started from its pid file (``libvirtd -d``)."""
    if not PIDFILE.exists():
        pytest.skip("libvirtd does not run from /run/libvirtd.pid (managed by systemd?)")
    yield
    _start_libvirtd()


def test_libvirtd_stopped_mid_job(qemu: LibvirtDriver, ctx: JobContext, restartable: None) -> None:
    name = unique("vm")
    qemu.define_domain(vm_spec(name, start=True), ctx)
    outcome: dict[str, BaseException] = {}

    def job() -> None:  # waits for a power-off that never comes
        try:
            qemu.shutdown_domain(m.VmShutdown(name=name, timeout=30, force=True), ctx)
        except BaseException as err:
            outcome["error"] = err

    worker = threading.Thread(target=job)
    worker.start()
    time.sleep(0.5)
    _stop_libvirtd()
    worker.join(timeout=30)
    error = outcome.get("error")
    assert isinstance(error, BackendUnavailable)
    assert error.retryable and error.code == "backend_unavailable"
    with pytest.raises(BackendUnavailable):
        qemu.domain_info(m.VmRef(name=name), ctx)
    _start_libvirtd()
    # Reconnected. libvirtd finishes a power-off that was asked for before it stopped, so the
    # VM may be shut off by now (libvirt log: "shutting down, reason=daemon").
    assert qemu.domain_info(m.VmRef(name=name), ctx)["state"] in ("running", "defined")
    fresh = unique("vm")  # and the backend works again
    assert qemu.define_domain(vm_spec(fresh, start=True), ctx)["state"] == "running"
    assert qemu.destroy_domain(m.VmRef(name=fresh), ctx)["state"] == "defined"


def _wait_for(check: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
