"""What only a real hypervisor shows: kvm or plain emulation, a running snapshot keeps memory,
and libvirtd can go away under a job. (A guest without an OS never powering off by itself is
the contract's, in ``tests/drivers``: the fake's guest behaves the same.)"""

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
from nube.errors import BackendUnavailable
from tests.drivers.conftest import Name
from tests.drivers.test_hypervisor_contract import make_pool, vm_spec
from workers.drivers import JobContext
from workers.drivers.libvirt import LibvirtDriver
from workers.drivers.names import backend_name

from .conftest import QEMU, qemu_reachable

pytestmark = pytest.mark.libvirt
PIDFILE = Path("/run/libvirtd.pid")


def test_domain_type_follows_kvm_availability(
    qemu: LibvirtDriver, ctx: JobContext, name: Name
) -> None:
    info = qemu.hypervisor_info(params=None, ctx=ctx)  # type: ignore[arg-type]
    kvm_usable = "kvm" in info["capabilities"]["domain_types"]
    assert info["domain_type"] == ("kvm" if kvm_usable else "qemu")
    forced = LibvirtDriver(QEMU, node="n", domain_type="qemu")
    try:
        vm = name("vm")
        forced.define_domain(vm_spec(vm), ctx)
        dom = libvirt.open(QEMU).lookupByName(backend_name(ctx.tenant, vm))
        assert "type='qemu'" in dom.XMLDesc(0)
    finally:
        forced.close()


def test_snapshot_of_a_running_vm(qemu: LibvirtDriver, ctx: JobContext, name: Name) -> None:
    pool = make_pool(qemu, ctx, name)
    vm = name("vm")
    qemu.define_domain(vm_spec(vm, start=True, disks=[{"pool": pool, "capacity_mib": 8}]), ctx)
    taken = qemu.create_snapshot(m.SnapshotCreate(name=vm, snapshot="live"), ctx)
    assert taken["state"] == "running"
    qemu.destroy_domain(m.VmRef(name=vm), ctx)
    reverted = qemu.revert_snapshot(m.SnapshotRef(name=vm, snapshot="live"), ctx)
    assert reverted["vm_state"] == "running"  # memory state came back
    qemu.delete_snapshot(m.SnapshotRef(name=vm, snapshot="live"), ctx)
    qemu.destroy_domain(m.VmRef(name=vm), ctx)


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


def test_libvirtd_stopped_mid_job(
    qemu: LibvirtDriver, ctx: JobContext, name: Name, restartable: None
) -> None:
    vm = name("vm")
    qemu.define_domain(vm_spec(vm, start=True), ctx)
    outcome: dict[str, BaseException] = {}

    def job() -> None:  # waits for a power-off that never comes
        try:
            qemu.shutdown_domain(m.VmShutdown(name=vm, timeout=30, force=True), ctx)
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
        qemu.domain_info(m.VmInfo(name=vm), ctx)
    _start_libvirtd()
    # Reconnected. libvirtd finishes a power-off that was asked for before it stopped, so the
    # VM may be shut off by now (libvirt log: "shutting down, reason=daemon").
    assert qemu.domain_info(m.VmInfo(name=vm), ctx)["state"] in ("running", "defined")
    fresh = name("vm")  # and the backend works again
    assert qemu.define_domain(vm_spec(fresh, start=True), ctx)["state"] == "running"
    assert qemu.destroy_domain(m.VmRef(name=fresh), ctx)["state"] == "defined"


def _wait_for(check: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
