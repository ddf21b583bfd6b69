"""A NAT and an isolated virtual network through the API, a VM attached to both, DHCP leases;
libvirt and the host's bridges confirm each step. The subnets are unusual private ones
(10.213.x.0/24) and nothing here sends traffic anywhere (the guest has no OS)."""

from __future__ import annotations

import random
import uuid
import xml.etree.ElementTree as ET
from functools import partial
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import libvirt
import pytest

from nube.tools.client import NubeClient

from .conftest import api_error, call, exists, failed, lookup, ok, unique

pytestmark = pytest.mark.libvirt


def test_nat_and_isolated_networks_with_a_vm(
    vm_api: NubeClient, admin: NubeClient, raw: libvirt.virConnect
) -> None:
    third = random.randrange(100, 250, 2)
    nat, iso = unique("nat"), unique("iso")
    nat_net, iso_net = IPv4Network(f"10.213.{third}.0/24"), IPv4Network(f"10.213.{third + 1}.0/24")
    bridge = f"ntapi{uuid.uuid4().hex[:6]}"
    specs = {
        nat: {"mode": "nat", "subnet": str(nat_net), "bridge": bridge,
              "dhcp_start": f"10.213.{third}.10", "dhcp_end": f"10.213.{third}.20"},
        iso: {"mode": "isolated", "subnet": str(iso_net),
              "dhcp_start": f"10.213.{third + 1}.10", "dhcp_end": f"10.213.{third + 1}.20"},
    }  # fmt: skip
    denied = api_error(lambda: call(vm_api, "POST", "/v1/vm-networks", {"name": nat, **specs[nat]}))
    assert denied.status == 403 and not exists(raw.networkLookupByName, nat)

    for name, spec in specs.items():
        made = ok(call(admin, "POST", "/v1/vm-networks", {"name": name, **spec, "start": False}))
        assert (made["mode"], made["subnet"], made["active"]) == (
            spec["mode"],
            spec["subnet"],
            False,
        )
        assert made["gateway"] == str(IPv4Network(spec["subnet"]).network_address + 1)
        assert raw.networkLookupByName(name).isActive() == 0
        assert ok(call(admin, "POST", f"/v1/vm-networks/{name}/start"))["active"] is True
        assert raw.networkLookupByName(name).isActive() == 1
    # the same spec again returns the network; another one of that name is a conflict
    again = ok(call(admin, "POST", "/v1/vm-networks", {"name": nat, **specs[nat]}))
    assert again["bridge"] == bridge
    other = {**specs[nat], "subnet": f"10.213.{third}.0/25", "dhcp_end": f"10.213.{third}.12"}
    failed(call(admin, "POST", "/v1/vm-networks", {"name": nat, **other}), "conflict")

    nat_xml = ET.fromstring(raw.networkLookupByName(nat).XMLDesc(0))
    iso_xml = ET.fromstring(raw.networkLookupByName(iso).XMLDesc(0))
    assert nat_xml.find("forward").get("mode") == "nat"  # type: ignore[union-attr]
    assert iso_xml.find("forward") is None  # isolated: no forwarding at all
    assert nat_xml.find("bridge").get("name") == bridge  # type: ignore[union-attr]
    assert nat_xml.find("ip").get("address") == f"10.213.{third}.1"  # type: ignore[union-attr]
    assert Path(f"/sys/class/net/{bridge}/bridge").is_dir()
    iso_bridge = iso_xml.find("bridge").get("name")  # type: ignore[union-attr]

    info = ok(call(vm_api, "GET", f"/v1/vm-networks/{iso}"))
    assert (info["mode"], info["bridge"], info["dhcp_end"]) == (
        "isolated", iso_bridge, f"10.213.{third + 1}.20",
    )  # fmt: skip
    listed = {n["name"]: n for n in ok(call(vm_api, "GET", "/v1/vm-networks"))["networks"]}
    assert listed[nat]["active"] and listed[iso]["active"]

    vm = unique("netvm")
    mac = "52:54:00:21:3a:01"
    made = ok(call(vm_api, "POST", "/v1/vms", {
        "name": vm, "memory_mib": 64, "start": True,
        "interfaces": [{"network": nat, "mac": mac}, {"network": iso}],
    }))  # fmt: skip
    assert [i["network"] for i in made["interfaces"]] == [nat, iso]
    assert made["interfaces"][0]["mac"] == mac
    dom_xml = ET.fromstring(lookup(raw, vm).XMLDesc(0))
    nics = dom_xml.findall("devices/interface")
    assert [n.find("source").get("network") for n in nics] == [nat, iso]  # type: ignore[union-attr]
    assert nics[0].find("mac").get("address") == mac  # type: ignore[union-attr]
    for nic, br in zip(nics, (bridge, iso_bridge), strict=True):
        tap = nic.find("target").get("dev")  # type: ignore[union-attr]
        assert Path(f"/sys/class/net/{br}/brif/{tap}").exists(), (tap, br)

    for name, net in ((nat, nat_net), (iso, iso_net)):
        leases = ok(call(vm_api, "GET", f"/v1/vm-networks/{name}/leases"))
        assert leases["name"] == name and isinstance(leases["leases"], list)
        assert all(IPv4Address(lease["ipaddr"]) in net for lease in leases["leases"])

    failed(call(admin, "DELETE", f"/v1/vm-networks/{nat}"), "conflict")  # still active
    ok(call(vm_api, "POST", f"/v1/vms/{vm}/destroy"))
    ok(call(vm_api, "DELETE", f"/v1/vms/{vm}"))
    for name in (nat, iso):
        assert ok(call(admin, "POST", f"/v1/vm-networks/{name}/destroy"))["active"] is False
        assert raw.networkLookupByName(name).isActive() == 0
        failed(call(vm_api, "GET", f"/v1/vm-networks/{name}/leases"), "conflict")
        assert ok(call(admin, "DELETE", f"/v1/vm-networks/{name}"))["undefined"] is True
        assert not exists(raw.networkLookupByName, name)
    assert not Path(f"/sys/class/net/{bridge}").exists()
    failed(call(vm_api, "GET", f"/v1/vm-networks/{nat}"), "not_found")


def test_vm_on_a_missing_network_is_not_found(vm_api: NubeClient, raw: libvirt.virConnect) -> None:
    vm = unique("nonet")
    job = call(
        vm_api, "POST", "/v1/vms", {"name": vm, "interfaces": [{"network": unique("missing")}]}
    )
    assert failed(job, "not_found")["details"]["kind"] == "vm_network"
    assert not exists(partial(lookup, raw), vm)
