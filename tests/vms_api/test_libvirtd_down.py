"""libvirtd stopped under a running job, through the whole stack: the job retries, then fails
``backend_unavailable`` (never stuck running); once libvirtd is back a new job succeeds.

Reuses the driver tests' helpers to stop libvirtd (SIGTERM from its pid file) and start it again
(``libvirtd -d``, then until ``qemu:///system`` answers); it is down only while the job fails."""

from __future__ import annotations

import time
from collections.abc import Iterator

import libvirt
import pytest

from nube.tools.client import NubeClient
from tests.vms.test_qemu import PIDFILE, _start_libvirtd, _stop_libvirtd

from .conftest import QEMU, call, define_vm, lookup, ok, unique

pytestmark = pytest.mark.libvirt


@pytest.fixture
def restartable(raw: libvirt.virConnect) -> Iterator[None]:
    if not PIDFILE.exists():
        pytest.skip("libvirtd does not run from /run/libvirtd.pid (managed by systemd?)")
    yield
    _start_libvirtd()


def test_libvirtd_stopped_mid_job(vm_api: NubeClient, restartable: None) -> None:
    name = unique("down")
    define_vm(vm_api, name, start=True)
    # a shutdown that waits for a power-off no guest OS will ever do
    job = vm_api.submit("POST", f"/v1/vms/{name}/shutdown", {"timeout": 60, "force": True})
    deadline = time.monotonic() + 20
    while vm_api.job(job["id"])["status"] != "running":
        assert time.monotonic() < deadline, "the shutdown job never started"
        time.sleep(0.05)
    time.sleep(0.3)
    stopped = time.monotonic()
    try:
        _stop_libvirtd()
        done = vm_api.job(job["id"], wait=60)
    finally:
        _start_libvirtd()
    print(f"\nlibvirtd was down for {time.monotonic() - stopped:.1f} s")

    assert done["status"] == "failed", done
    error = done["error"]
    assert error["code"] == "backend_unavailable" and error["retryable"] is True
    events = [e["event"] for e in done["history"]]
    retries = events.count("retrying")
    assert retries == 3, events  # the operation's max_retries, then it fails
    assert done["attempts"] == 1 + retries and events[-1] == "failed"
    assert vm_api.job(job["id"])["status"] == "failed"  # final, not stuck running

    # back: the stack reconnects, and new jobs succeed
    conn = libvirt.open(QEMU)
    try:
        assert ok(call(vm_api, "GET", f"/v1/vms/{name}"))["state"] in ("running", "defined")
        fresh = unique("back")
        assert ok(define_vm(vm_api, fresh, start=True))["state"] == "running"
        assert lookup(conn, fresh).state(0)[0] == libvirt.VIR_DOMAIN_RUNNING
    finally:
        conn.close()
