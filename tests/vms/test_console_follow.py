"""Following a running VM's serial console (``vms.console_follow``) on qemu:///system: lines
appended to the console log while the follow runs arrive as the job's progress, in order, with
their indexes, and in the result. The guest has no OS, so the test writes the lines itself into
the log virtlogd keeps (the file ``GET .../console`` reads)."""

from __future__ import annotations

import threading
import time

import pytest

from nube.catalog import vm_models as m
from nube.errors import NotFound
from tests.drivers.conftest import MakeCtx, Name, Progress
from tests.drivers.test_hypervisor_contract import vm_spec
from workers.drivers.libvirt import LibvirtDriver
from workers.drivers.libvirt.provision import console_log_path
from workers.drivers.names import backend_name


def test_new_console_lines_arrive_as_progress(
    qemu: LibvirtDriver, make_ctx: MakeCtx, name: Name
) -> None:
    progress = Progress()
    ctx = make_ctx(progress=progress)
    vm = name("vm")
    qemu.define_domain(vm_spec(vm, start=True), ctx)
    log = console_log_path(backend_name(ctx.tenant, vm))
    with open(log, "a") as fh:
        fh.write("before-1\nbefore-2\n")

    def guest_prints() -> None:
        for i in range(3):
            time.sleep(0.4)
            with open(log, "a") as fh:
                fh.write(f"marker-{i}\n" if i < 2 else "marker-2 no end yet")
        with open(log, "a") as fh:
            fh.write("\n")

    printer = threading.Thread(target=guest_prints)
    printer.start()
    try:
        out = qemu.follow_console(m.VmConsoleFollow(name=vm, seconds=3, tail=1), ctx)
    finally:
        printer.join()
    expected = ["before-2", "marker-0", "marker-1", "marker-2 no end yet"]
    assert out["lines"][-4:] == expected and out["total"] == len(out["lines"])
    assert progress.reports, "no progress reported"
    got: dict[int, str] = {}
    for report in progress.reports:
        assert len(report["lines"]) == report["total"] - report["first"]
        got.update({report["first"] + i: line for i, line in enumerate(report["lines"])})
    assert [got[i] for i in sorted(got)][-4:] == expected
    assert len(progress.reports) >= 2  # several batches while it followed, not one at the end
    with pytest.raises(NotFound):
        qemu.follow_console(m.VmConsoleFollow(name=vm, seconds=1), make_ctx(tenant="tenant-b"))
