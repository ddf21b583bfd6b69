"""Issue 14's "done when": a real guest through the API, from its image to its removal.

The small guest of :mod:`nube.tools.guest` (Debian's kernel, a busybox initramfs; built once and
cached) is imported into a pool (``PUT .../content``, size and SHA-256 checked), defined with a
direct kernel boot and a cloud-init seed on a NAT network the test makes, and started. Its
serial console (``GET /v1/vms/<name>/console``) shows it up, reading its seed and leasing an
address; the VM's representation lists that lease; the host reaches the guest's TCP responder
through the network. It is resized live, a hot-plugged disk shows up on its console, its stats
count, and everything goes again (the seed volume with the VM).

The guest runs as domain type ``qemu`` (emulation): on this CI host's nested KVM a Linux kernel
hangs before its first console line (SeaBIOS runs, nothing after the kernel's decompressor),
while emulation boots it in a few seconds.
"""

from __future__ import annotations

import base64
import hashlib
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt
import pytest

from nube.tools import guest
from nube.tools.client import NubeClient

from .conftest import call, exists, lookup, ok, unique

pytestmark = pytest.mark.libvirt
BOOT_SECONDS = 120
INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE


def content_body(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {
        "content": base64.b64encode(data).decode(),
        "format": "raw",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def wait_for(what: str, probe: Callable[[], Any], seconds: float = BOOT_SECONDS) -> Any:
    """Poll ``probe`` until it returns something truthy; fail saying ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds} s")
        time.sleep(1)


def console(api: NubeClient, name: str) -> list[str]:
    return list(ok(call(api, "GET", f"/v1/vms/{name}/console", tail=200))["lines"])


def marker(lines: list[str], prefix: str) -> str | None:
    return next((line for line in lines if line.startswith(prefix)), None)


def ask(address: str, port: int) -> str:
    with socket.create_connection((address, port), timeout=5) as conn:
        conn.settimeout(5)
        return conn.recv(256).decode().strip()


def test_boot_reach_resize_hotplug_remove(
    vm_api: NubeClient, admin: NubeClient, raw: libvirt.virConnect
) -> None:
    built = guest.build()
    pool, net, name = unique("gpool"), unique("gnet"), unique("guest")
    third = random.randrange(100, 250)
    subnet = f"10.214.{third}.0/24"
    ok(call(admin, "POST", "/v1/storage-pools", {"name": pool}))
    made_net = ok(
        call(
            admin,
            "POST",
            "/v1/vm-networks",
            {
                "name": net,
                "mode": "nat",
                "subnet": subnet,
                "dhcp_start": f"10.214.{third}.10",
                "dhcp_end": f"10.214.{third}.20",
            },
        )
    )
    assert made_net["active"] is True

    # image import: the kernel and the initrd into volumes, checked against size and digest
    vols = f"/v1/storage-pools/{pool}/volumes"
    for vol, path in (("vmlinuz", built.kernel), ("initrd", built.initrd)):
        body = content_body(path)
        job = call(admin, "PUT", f"{vols}/{vol}/content", body)
        got = ok(job)
        assert (got["capacity_bytes"], got["sha256"]) == (body["size"], body["sha256"])
        on_disk = raw.storagePoolLookupByName(pool).storageVolLookupByName(vol)
        assert hashlib.sha256(Path(on_disk.path()).read_bytes()).hexdigest() == body["sha256"]
    back = ok(call(admin, "GET", f"{vols}/initrd/content"))
    assert back["sha256"] == hashlib.sha256(built.initrd.read_bytes()).hexdigest()

    # define with a kernel boot and a cloud-init seed, and start
    spec = {
        "name": name,
        "memory_mib": 160,
        "max_memory_mib": 256,
        "vcpus": 1,
        "max_vcpus": 2,
        "kernel": {"pool": pool, "volume": "vmlinuz"},
        "initrd": {"pool": pool, "volume": "initrd"},
        "cmdline": built.cmdline,
        "interfaces": [{"network": net}],
        "cloud_init": {"user_data": "#!/bin/sh\necho NUBE-USERDATA-RAN\n"},
        "domain_type": "qemu",
        "start": True,
    }
    vm = ok(call(vm_api, "POST", "/v1/vms", spec))
    assert vm["state"] == "running"
    seed = [d for d in vm["disks"] if d["device"] == "cdrom"]
    assert len(seed) == 1 and "-cidata-" in seed[0]["volume"]
    assert vm["kernel_boot"]["cmdline"] == built.cmdline
    mac = vm["interfaces"][0]["mac"]

    # the console: up, the seed read and its user data run, an address leased
    lines = wait_for("address on the console", lambda: _with_ip(console(vm_api, name)))
    assert "NUBE-GUEST-UP" in lines
    assert (
        marker(lines, "NUBE-CIDATA")
        == f"NUBE-CIDATA hostname={name} instance="
        + (marker(lines, "NUBE-CIDATA") or "").split("instance=")[-1]
    )
    assert "NUBE-USERDATA-RAN" in lines
    address = (marker(lines, "NUBE-GUEST-IP ") or "").split()[-1]
    assert address.startswith(f"10.214.{third}.")

    # the representation lists the DHCP lease of its NIC
    def leased() -> list[str]:
        info = ok(call(vm_api, "GET", f"/v1/vms/{name}"))
        nic = next(i for i in info["interfaces"] if i["mac"] == mac)
        return list(nic["addresses"])

    assert wait_for("lease in the representation", leased, 30) == [f"{address}/24"]

    # the host reaches the guest through the NAT network
    greeting = wait_for("answer on TCP", lambda: _try(lambda: ask(address, guest.PORT)), 30)
    assert greeting == f"nube-guest {name}"

    # resize live, up to the maximum; past it is a conflict
    resized = ok(call(vm_api, "POST", f"/v1/vms/{name}/resize", {"memory_mib": 224, "vcpus": 2}))
    assert (resized["max_memory_mib"], resized["vcpus"]) == (256, 2)
    dom = lookup(raw, name)
    assert dom.info()[3] == 2  # a vCPU hot-plugged
    # the guest's balloon driver gives back memory down to the new target (reported by QEMU)
    wait_for("balloon at 224 MiB", lambda: dom.info()[2] // 1024 == 224, 30)
    assert ok(call(vm_api, "GET", f"/v1/vms/{name}"))["memory_mib"] == 224
    over = call(vm_api, "POST", f"/v1/vms/{name}/resize", {"memory_mib": 512})
    assert over["status"] == "failed" and over["error"]["code"] == "conflict"

    # hot-plug a disk: the guest sees it (its console says so)
    plugged = ok(call(vm_api, "POST", f"/v1/vms/{name}/disks", {"pool": pool, "capacity_mib": 8}))
    target = plugged["target"]
    assert target == "vda"  # the kernel-booted guest had no disk yet
    added = wait_for(
        "hot-plugged disk on the console",
        lambda: marker(console(vm_api, name), f"NUBE-DISK-ADDED {target}"),
        60,
    )
    assert added == f"NUBE-DISK-ADDED {target} {8 * 2048}"

    stats = ok(call(vm_api, "GET", f"/v1/vms/{name}/stats"))
    assert stats["cpu"]["time"] > 0 and stats["net"][0]["rx.bytes"] > 0
    assert any(b["name"] == target for b in stats["block"])
    with_stats = ok(call(vm_api, "GET", f"/v1/vms/{name}", stats="true"))
    assert with_stats["stats"]["cpu"]["time"] >= stats["cpu"]["time"]

    # a second NIC, live and in the definition, and out again
    nic = ok(call(vm_api, "POST", f"/v1/vms/{name}/nics", {"network": net}))
    assert [i["mac"] for i in nic["interfaces"]] == [mac, nic["mac"]]
    assert nic["mac"] in dom.XMLDesc(0) and nic["mac"] in dom.XMLDesc(INACTIVE)
    ok(call(vm_api, "DELETE", f"/v1/vms/{name}/nics/{nic['mac']}"))
    assert nic["mac"] not in dom.XMLDesc(0) and nic["mac"] not in dom.XMLDesc(INACTIVE)

    # the guest lets go of the hot-plugged disk (ACPI eject): gone live and from the definition
    detached = ok(call(vm_api, "DELETE", f"/v1/vms/{name}/disks/{target}"))
    assert [d["target"] for d in detached["disks"] if d["device"] == "disk"] == []
    assert f"dev='{target}'" not in dom.XMLDesc(0) + dom.XMLDesc(INACTIVE)

    # remove everything: the VM with its storage, the seed with it, the network and pool
    ok(call(vm_api, "POST", f"/v1/vms/{name}/destroy"))
    logs = list(Path("/var/log/libvirt/qemu").glob(f"n*-{name}-console.log"))
    assert len(logs) == 1  # the console log, on this host
    gone = ok(call(vm_api, "DELETE", f"/v1/vms/{name}", {"remove_storage": True}))
    assert not logs[0].exists()  # gone with the VM
    assert gone["removed_volumes"] == []  # the detached disk's volume stays
    left = {v.name() for v in raw.storagePoolLookupByName(pool).listAllVolumes(0)}
    assert left == {"vmlinuz", "initrd", plugged["volume"]}  # the seed went with the VM
    ok(call(admin, "DELETE", f"{vols}/{plugged['volume']}"))
    assert not exists(raw.lookupByName, name)
    for vol in ("vmlinuz", "initrd"):
        ok(call(admin, "DELETE", f"{vols}/{vol}"))
    ok(call(admin, "POST", f"/v1/vm-networks/{net}/destroy"))
    ok(call(admin, "DELETE", f"/v1/vm-networks/{net}"))
    ok(call(admin, "POST", f"/v1/storage-pools/{pool}/destroy"))
    ok(call(admin, "DELETE", f"/v1/storage-pools/{pool}", {"delete": True}))
    assert not exists(raw.networkLookupByName, net)
    assert not exists(raw.storagePoolLookupByName, pool)


def _with_ip(lines: list[str]) -> list[str] | None:
    found = marker(lines, "NUBE-GUEST-IP ")
    return lines if found and len(found.split()) == 2 else None


def _try(fn: Callable[[], str]) -> str | None:
    try:
        return fn()
    except OSError:
        return None
