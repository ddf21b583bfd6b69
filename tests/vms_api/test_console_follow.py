"""The serial console followed live through the API: ``GET /v1/vms/<id>/console/follow``
answers with its job at once, and ``GET /v1/jobs/<id>/events`` (Server-Sent Events) carries the
console's new lines as progress events while the VM runs. The guest has no OS: the test writes
the lines into the console log virtlogd keeps, as a guest's output would land there."""

from __future__ import annotations

import threading
import time

import libvirt
import pytest

from nube.tools.client import NubeClient
from workers.drivers.libvirt.provision import console_log_path

from .conftest import define_vm, lookup, ok, unique

pytestmark = pytest.mark.libvirt


def test_console_lines_arrive_as_job_events(vm_api: NubeClient, raw: libvirt.virConnect) -> None:
    name = unique("follow")
    define_vm(vm_api, name, start=True)
    log = console_log_path(lookup(raw, name).name())
    job = vm_api.submit("GET", f"/v1/vms/{name}/console/follow", params={"seconds": 4})
    assert job["status"] in ("queued", "running")

    def guest_prints() -> None:
        time.sleep(1.0)
        for i in range(3):
            with open(log, "a") as fh:
                fh.write(f"live-{i}\n")
            time.sleep(0.6)

    printer = threading.Thread(target=guest_prints)
    printer.start()
    seen: dict[int, str] = {}
    live = False
    try:
        for event, current in vm_api.events(job["id"]):
            progress = current.get("progress") or {}
            if event == "progress" and progress.get("lines"):
                live = live or current["status"] == "running"
                first = progress["first"]
                seen.update({first + i: line for i, line in enumerate(progress["lines"])})
    finally:
        printer.join()
    assert live, "no progress event while the job ran"
    assert [seen[i] for i in sorted(seen)][-3:] == ["live-0", "live-1", "live-2"]
    result = ok(current)
    assert result["name"] == name and result["lines"][-3:] == ["live-0", "live-1", "live-2"]
