"""``nube vm``: define, start, stop, list, remove a diskless 64 MiB VM through the stack's VM
worker on qemu:///system (libvirt's test driver keeps a state per worker process, so it cannot
serve a VM's life across jobs; without libvirtd the test skips locally and fails on CI)."""

from __future__ import annotations

import contextlib

import libvirt

from nube.tools.devstack import Stack
from tests.cli.conftest import Cli, one_line, parsed, unique
from tests.conftest import need

QEMU = "qemu:///system"


def _remove(name: str) -> None:
    """Destroy and undefine the domain whatever became of the test (libvirt itself)."""
    with contextlib.suppress(libvirt.libvirtError):
        conn = libvirt.open(QEMU)
        try:
            # the tenant's name behind its prefix (workers.drivers.names)
            for dom in conn.listAllDomains(0):
                if dom.name().endswith(f"-{name}"):
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.destroy()
                    dom.undefine()
        finally:
            conn.close()


def test_define_start_stop_list_remove(cli: Cli, stack: Stack) -> None:
    need(stack.libvirt_uri == QEMU, f"libvirtd ({QEMU}) for the stack's VM worker")
    name = unique("vm")
    try:
        defined = cli("vm", "define", name, "--memory-mib", "64", "--json")
        assert parsed(defined)["state"] == "defined"
        listed = cli("vm", "list")
        assert listed.returncode == 0
        header, *rows = listed.stdout.splitlines()
        assert header.split()[:2] == ["NAME", "STATE"]
        assert [row.split()[:2] for row in rows] == [[name, "defined"]]

        assert parsed(cli("vm", "start", name, "--json"))["state"] == "running"
        again = cli("vm", "start", name)
        assert again.returncode == 1 and one_line(again.stderr).startswith("error: conflict: ")
        stopped = parsed(cli("vm", "stop", name, "--timeout", "1", "--force", "--json"))
        assert stopped["state"] in ("shutoff", "defined")
        assert [vm["name"] for vm in parsed(cli("vm", "ls", "--json"))["vms"]] == [name]
        info = cli("vm", "info", name)
        assert "allowed_actions" in info.stdout and "start" in info.stdout

        assert cli("vm", "rm", name).returncode == 0
        assert parsed(cli("vm", "list", "--json"))["vms"] == []
        gone = cli("vm", "info", name)
        assert gone.returncode == 1 and one_line(gone.stderr).startswith("error: not_found: ")
    finally:
        _remove(name)
