"""``nube vm-volumes upload|download|clone`` and ``nube vm resize|disk-attach|disk-detach|
console`` (issue 14) through the stack's VM worker on qemu:///system, as docs/vms.md shows them;
libvirt confirms, and the pool goes afterwards whatever happened."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import libvirt

from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.cli.conftest import Cli, parsed, token_of, unique
from tests.cli.test_vms import QEMU, _remove
from tests.conftest import ClientFactory, need


def _remove_pool(name: str) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        conn = libvirt.open(QEMU)
        try:
            pool = conn.storagePoolLookupByName(name)
            for vol in pool.listAllVolumes(0):
                vol.delete(0)
            pool.destroy()
            pool.delete(0)
            pool.undefine()
        finally:
            conn.close()


def test_volume_content_and_vm_changes(
    cli: Cli, stack: Stack, api: NubeClient, make_client: ClientFactory, tmp_path: Path
) -> None:
    need(stack.libvirt_uri == QEMU, f"libvirtd ({QEMU}) for the stack's VM worker")
    admin = token_of(make_client(tenant=api.tenant, scopes=("admin",)))  # type: ignore[attr-defined]
    pool, vm = unique("pool"), unique("vm")
    image = tmp_path / "image.raw"
    data = os.urandom(64 * 1024)
    image.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    try:
        assert parsed(cli("pools", "define", pool, "--json", NUBE_TOKEN=admin))["active"] is True
        up = cli("vm-volumes", "upload", pool, "img", str(image), digest, str(len(data)), "--json")
        assert parsed(up)["sha256"] == digest
        wrong = cli("vm-volumes", "upload", pool, "bad", str(image), "0" * 64, str(len(data)))
        assert wrong.returncode == 1 and "invalid_request" in wrong.stderr
        out = tmp_path / "back.raw"
        assert cli("vm-volumes", "download", pool, "img", "-o", str(out)).returncode == 0
        assert out.read_bytes() == data
        overlay = parsed(cli("vm-volumes", "clone", pool, "img", "img2", "--json"))
        assert overlay["format"] == "qcow2" and overlay["backing"].endswith("/img")

        cli("vm", "define", vm, "--memory-mib", "64", "--json")
        resized = parsed(cli("vm", "resize", vm, "--memory-mib", "96", "--vcpus", "2", "--json"))
        assert (resized["memory_mib"], resized["vcpus"]) == (96, 2)
        attached = parsed(cli("vm", "disk-attach", vm, pool, "--volume", "img2", "--json"))
        assert attached["target"] == "vda"
        console = cli("vm", "console", vm, "--tail", "5")
        assert console.returncode == 0 and console.stdout == ""  # never started: no output yet
        detached = parsed(cli("vm", "disk-detach", vm, "vda", "--json"))
        assert detached["disks"] == []
        conn = libvirt.open(QEMU)
        try:
            dom = next(d for d in conn.listAllDomains(0) if d.name().endswith(f"-{vm}"))
            assert dom.info()[1] // 1024 == 96 and "<disk" not in dom.XMLDesc(0)
        finally:
            conn.close()
    finally:
        _remove(vm)
        _remove_pool(pool)
