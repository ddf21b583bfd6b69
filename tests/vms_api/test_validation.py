"""Markup in any string of a VM, pool, volume or network spec is a 422 with the field's path and
nothing is queued; an accepted spec's domain XML, read back from libvirt, is exactly the spec."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import libvirt
import pytest
import requests

from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from workers.drivers.names import backend_name

from .conftest import call, lookup, ok, unique

pytestmark = pytest.mark.libvirt

PAYLOADS = [
    "a<b",
    "a&b",
    'a"b',
    "a'b",
    "<x/>",
    "nubetest-api-x'/><disk type='file'><source file='/etc/shadow'/></disk><name>y",
    "]]><!ENTITY e SYSTEM 'file:///etc/passwd'>&e;",
    "nubetest-api-ok\n<evil/>",
]

BASE: dict[str, Any] = {
    "name": "nubetest-api-inject",
    "memory_mib": 64,
    "disks": [{"pool": "nubetest-api-p", "volume": "v0"}, {"pool": "nubetest-api-p",
                                                           "capacity_mib": 4}],
    "cdrom": {"pool": "nubetest-api-p", "volume": "boot.iso"},
    "interfaces": [{"network": "nubetest-api-n", "mac": "52:54:00:00:00:01"}],
    "boot": ["cdrom", "hd"],
}  # fmt: skip

#: Every string field of the define body, as a path into BASE.
VM_FIELDS: list[tuple[str | int, ...]] = [
    ("name",),
    ("disks", 0, "pool"),
    ("disks", 0, "volume"),
    ("disks", 1, "format"),
    ("cdrom", "pool"),
    ("cdrom", "volume"),
    ("interfaces", 0, "network"),
    ("interfaces", 0, "mac"),
    ("boot", 0),
]

#: The other spec bodies that end up in libvirt XML (admin operations), with their string fields.
OTHER_BODIES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("/v1/storage-pools", {"name": "nubetest-api-p"}, ["name"]),
    ("/v1/storage-pools/nubetest-api-p/volumes", {"name": "v1", "capacity_mib": 1,
                                                  "format": "qcow2"}, ["name", "format"]),
    ("/v1/vm-networks", {"name": "nubetest-api-n", "subnet": "10.213.7.0/24",
                         "bridge": "ntapi7", "dhcp_start": "10.213.7.10",
                         "dhcp_end": "10.213.7.20", "mode": "isolated"},
     ["name", "subnet", "bridge", "dhcp_start", "dhcp_end", "mode"]),
]  # fmt: skip


def _set(body: dict[str, Any], path: tuple[str | int, ...], value: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def _refused(client: NubeClient, path: str, body: dict[str, Any], field: str) -> None:
    response = client.session.post(client.url + path, json=body, timeout=30)
    assert response.status_code == 422, (field, body, response.text)
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "invalid_request"
    assert field in [e["field"] for e in problem["errors"]], (field, problem)


def test_markup_in_any_field_is_refused_before_queueing(
    stack: Stack, vm_api: NubeClient, admin: NubeClient, raw: libvirt.virConnect
) -> None:
    jobs_key = f"nube:jobs:{vm_api.tenant}"  # type: ignore[attr-defined]
    queued_before = stack.redis().llen("nube.ingress")
    for path in VM_FIELDS:
        field = ".".join(str(p) for p in path)
        for payload in PAYLOADS:
            _refused(vm_api, "/v1/vms", _set(BASE, path, payload), field)
    for url, body, fields in OTHER_BODIES:
        for field in fields:
            for payload in PAYLOADS:
                _refused(admin, url, {**body, field: payload}, field)
    # an unknown field (a caller-chosen path) is refused too
    _refused(vm_api, "/v1/vms", _set(BASE, ("cdrom", "path"), "/etc/shadow"), "cdrom.path")
    # markup in the URL path: the name is validated like a body field
    for quoted in ("a%3Cb%3E", "a%26b", "a%22b"):
        response = vm_api.session.post(f"{vm_api.url}/v1/vms/{quoted}/suspend", timeout=30)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "name"
    assert stack.redis().zcard(jobs_key) == 0  # nothing was ever queued
    assert stack.redis().llen("nube.ingress") == queued_before
    assert not [d for d in raw.listAllDomains(0) if "inject" in d.name()]


def test_accepted_spec_parses_back_to_exactly_the_spec(
    vm_api: NubeClient, admin: NubeClient, raw: libvirt.virConnect
) -> None:
    pool, net = unique("pool"), unique("net")
    ok(call(admin, "POST", "/v1/storage-pools", {"name": pool}))
    ok(
        call(
            vm_api, "POST", f"/v1/storage-pools/{pool}/volumes", {"name": "root", "capacity_mib": 8}
        )
    )
    ok(call(vm_api, "POST", f"/v1/storage-pools/{pool}/volumes",
            {"name": "boot.iso", "capacity_mib": 1, "format": "raw"}))  # fmt: skip
    body = {"name": net, "mode": "isolated", "subnet": "10.213.9.0/24", "start": False}
    ok(call(admin, "POST", "/v1/vm-networks", body))

    name = unique("spec")
    spec = {
        "name": name,
        "memory_mib": 96,
        "vcpus": 2,
        "disks": [{"pool": pool, "volume": "root"}, {"pool": pool, "capacity_mib": 4,
                                                     "format": "raw"}],
        "cdrom": {"pool": pool, "volume": "boot.iso"},
        "interfaces": [{"network": net, "mac": "52:54:00:AB:cd:09"}, {"network": net}],
        "boot": ["cdrom", "hd"],
        "serial_console": False,
    }  # fmt: skip
    job = call(vm_api, "POST", "/v1/vms", spec)
    made = ok(job)
    new_volume = made["disks"][1]["volume"]
    dom = lookup(raw, name)
    root = ET.fromstring(dom.XMLDesc(0))

    assert root.get("type") in ("kvm", "qemu")
    # libvirt's name: the tenant's behind its prefix
    assert root.findtext("name") == backend_name(vm_api.tenant, name)  # type: ignore[attr-defined]
    memory = root.find("memory")
    assert memory is not None and (memory.get("unit"), memory.text) == ("KiB", str(96 * 1024))
    assert root.findtext("vcpu") == "2"
    assert [b.get("dev") for b in root.iterfind("os/boot")] == ["cdrom", "hd"]
    disks = [
        (
            d.get("type"),
            d.get("device"),
            d.find("driver").get("type"),  # type: ignore[union-attr]
            d.find("source").attrib,  # type: ignore[union-attr]
            d.find("readonly") is not None,
        )
        for d in root.iterfind("devices/disk")
    ]
    assert disks == [
        ("volume", "disk", "qcow2", {"pool": pool, "volume": "root"}, False),
        ("volume", "disk", "raw", {"pool": pool, "volume": new_volume}, False),
        ("volume", "cdrom", "raw", {"pool": pool, "volume": "boot.iso"}, True),
    ]
    nics = [
        (i.get("type"), i.find("source").attrib, i.find("model").get("type"))  # type: ignore[union-attr]
        for i in root.iterfind("devices/interface")
    ]
    assert nics == [("network", {"network": net}, "virtio")] * 2
    macs = [i.find("mac").get("address") for i in root.iterfind("devices/interface")]  # type: ignore[union-attr]
    assert macs[0] == "52:54:00:ab:cd:09" and macs[1] != macs[0]
    assert root.find("devices/serial") is None and root.find("devices/console") is None
    meta = root.find("metadata/{https://nube.dev/xmlns/libvirt/vm/1}instance")
    assert meta is not None
    owner = {child.tag.rsplit("}", 1)[1]: child.text for child in meta}
    assert owner["tenant"] == vm_api.tenant and owner["job"] == job["id"]  # type: ignore[attr-defined]
    # nothing else the spec did not ask for reached the XML as a spec value
    assert not root.findall(".//*[@file]") and not root.findall("devices/filesystem")


def test_problem_json_without_a_token_is_401(stack: Stack) -> None:
    response = requests.post(stack.api_url + "/v1/vms", json={"name": "a<b"}, timeout=10)
    assert response.status_code == 401  # auth before validation: nothing leaks to strangers
