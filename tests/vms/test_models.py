"""Param models and XML builders: injection is rejected, accepted specs round-trip exactly."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from nube.catalog import CATALOG, Params
from nube.catalog.vm_models import VmDefine, VmNetworkDefine
from workers.drivers.libvirt.xml import (
    DiskSource,
    DomainSpec,
    NetworkSpec,
    Nic,
    Owner,
    domain_xml,
    network_xml,
    parse_domain,
    parse_network,
    parse_owner,
    pool_xml,
    volume_xml,
)

INJECTIONS = [
    "<evil/>",
    "a</name><memory>1</memory><name>b",
    "x' type='y",
    'x" bus="usb',
    "a&amp;b",
    "a&b",
    "]]><x>",
    "x\n<devices/>",
    "../../etc/passwd",
    "a b",
    "",
    "é",
]

FULL_SPEC: dict[str, Any] = {
    "name": "web-1",
    "memory_mib": 64,
    "vcpus": 2,
    "disks": [{"pool": "p1", "volume": "v1"}, {"pool": "p1", "capacity_mib": 8, "format": "raw"}],
    "cdrom": {"pool": "isos", "volume": "boot.iso"},
    "interfaces": [{"network": "n1", "mac": "52:54:00:aa:bb:cc"}, {"network": "n2"}],
    "boot": ["cdrom", "hd"],
}
NET_SPEC: dict[str, Any] = {
    "name": "net1",
    "mode": "nat",
    "bridge": "virbr-n1",
    "subnet": "10.213.1.0/24",
    "dhcp_start": "10.213.1.10",
    "dhcp_end": "10.213.1.20",
}

VM_OPS = [op for op in CATALOG if op.service == "vms"]


def _string_paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every string value in a (nested) spec."""
    if isinstance(data, str):
        return [path]
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _string_paths(v, (*path, k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _string_paths(v, (*path, i))]
    return []


def _with(data: Any, path: tuple[Any, ...], value: str) -> Any:
    if not path:
        return value
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[path[0]] = _with(data[path[0]], path[1:], value)
    return copy


def _samples() -> list[tuple[type[Params], dict[str, Any], tuple[Any, ...]]]:
    """(model, valid spec, path of one string field) for every string field of every op."""
    out = []
    for op in VM_OPS:
        spec = _sample_for(op.params)
        for path in _string_paths(spec):
            out.append((op.params, spec, path))
    return out


def _sample_for(model: type[BaseModel]) -> dict[str, Any]:
    if model is VmDefine:
        return FULL_SPEC
    if model is VmNetworkDefine:
        return NET_SPEC
    fields = model.model_fields
    names = ("name", "pool", "snapshot", "network", "new_name", "node")
    spec: dict[str, Any] = {k: "ok-name" for k in names if k in fields}
    if "capacity_mib" in fields:
        spec["capacity_mib"] = 8
    if "memory_mib" in fields:
        spec["memory_mib"] = 128
    extra = {
        "target": "vdb",
        "mac": "52:54:00:00:00:01",
        "content": "AAAA",
        "sha256": "709e80c88487a2411e1ee4dfb9f22a861492d20c4765150c0c794abd70f8147c",
        "size": 3,
    }
    spec.update({k: v for k, v in extra.items() if k in fields})
    if model.__name__ == "StorageVolumeClone":
        spec["target"] = "ok-copy"
    return spec


SAMPLES = _samples()


@pytest.mark.parametrize(
    ("model", "spec", "path"),
    SAMPLES,
    ids=[f"{m.__name__}-{'.'.join(map(str, p))}" for m, _, p in SAMPLES],
)
def test_every_string_field_rejects_markup(model: type[BaseModel], spec: Any, path: Any) -> None:
    model.model_validate(spec)  # the sample itself is valid
    for payload in INJECTIONS:
        with pytest.raises(ValidationError):
            model.model_validate(_with(spec, path, payload))


def test_every_vm_operation_has_a_sample_with_strings() -> None:
    covered = {m for m, _, _ in SAMPLES}
    with_strings = {op.params for op in VM_OPS if _string_paths(_sample_for(op.params))}
    assert covered == with_strings
    assert len(covered) >= 15


def test_path_rules_name_fields_of_the_params() -> None:
    for op in VM_OPS:
        for segment in op.path.split("/"):
            if segment.startswith("<"):
                assert segment.strip("<>") in op.params.model_fields, op.name


@pytest.mark.parametrize(
    "bad",
    [
        {"subnet": "8.8.8.0/24"},
        {"subnet": "10.213.1.0/31"},
        {"dhcp_start": "10.213.1.1", "dhcp_end": "10.213.1.20"},
        {"dhcp_start": "10.213.2.10", "dhcp_end": "10.213.2.20"},
        {"dhcp_start": "10.213.1.30", "dhcp_end": "10.213.1.20"},
        {"dhcp_start": "10.213.1.30", "dhcp_end": None},
        {"mode": "bridge"},
        {"bridge": "a-bridge-name-too-long"},
        {"subnet": "10.213.1.0/24<x/>"},
    ],
)
def test_network_spec_rules(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VmNetworkDefine.model_validate({**NET_SPEC, **bad})


@pytest.mark.parametrize(
    "bad",
    [
        {"memory_mib": 8},
        {"vcpus": 0},
        {"disks": [{"pool": "p", "volume": "v", "capacity_mib": 8}]},
        {"disks": [{"pool": "p"}]},
        {"disks": [{"pool": "p", "capacity_mib": 8, "format": "vmdk"}]},
        {"boot": ["hd", "hd"]},
        {"boot": ["floppy"]},
        {"interfaces": [{"network": "n", "mac": "52:54:00:aa:bb"}]},
        {
            "interfaces": [
                {"network": "n", "mac": "52:54:00:aa:bb:cc"},
                {"network": "m", "mac": "52:54:00:AA:BB:CC"},
            ]
        },
        {"persistent": False, "autostart": True},
        {"extra": 1},
    ],
)
def test_domain_spec_rules(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VmDefine.model_validate({**FULL_SPEC, **bad})


# --- XML: built with ElementTree, round-trips exactly ---------------------------------------------


def _domain_spec() -> DomainSpec:
    return DomainSpec(
        name="web-1.a+b_c",
        memory_mib=64,
        vcpus=2,
        disks=(
            DiskSource("p1", "v1", "qcow2", target="vda"),
            DiskSource("isos", "b.iso", "raw", "cdrom", "hdc"),
        ),
        interfaces=(Nic("n1", "52:54:00:aa:bb:cc"), Nic("n2")),
        boot=("cdrom", "hd", "network"),
        serial_console=True,
        max_memory_mib=64,
        max_vcpus=2,
    )


def test_kernel_boot_console_log_and_vnc_round_trip() -> None:
    spec = DomainSpec(
        name="k",
        memory_mib=96,
        boot=(),
        vcpus=1,
        max_memory_mib=192,
        max_vcpus=2,
        kernel="/p/vmlinuz",
        initrd="/p/initrd.img",
        cmdline="console=ttyS0 quiet",
        console_log="/var/log/libvirt/qemu/k-console.log",
        vnc=True,
    )
    xml = domain_xml(replace(spec, vnc_password="s3cret"), Owner("t", "j"), "qemu", "x86_64")
    assert parse_domain(xml) == spec
    root = ET.fromstring(xml)
    assert root.find("os/boot") is None  # a kernel boots instead of a boot device
    graphics = root.find("devices/graphics")
    assert graphics is not None and graphics.get("listen") == "127.0.0.1"
    assert graphics.get("passwd") == "s3cret"


def _paths(el: ET.Element, prefix: str = "") -> list[str]:
    here = f"{prefix}/{el.tag.rsplit('}', 1)[-1]}"
    return [here] + [p for child in el for p in _paths(child, here)]


def test_domain_xml_round_trips() -> None:
    spec = _domain_spec()
    xml = domain_xml(spec, Owner("t", "j", "n", "c"), "kvm", "x86_64")
    assert parse_domain(xml) == spec


EXPECTED_PATHS = sorted(
    [
        "domain",
        "domain/name",
        "domain/memory",
        "domain/currentMemory",
        "domain/vcpu",
        "domain/metadata",
        "domain/metadata/instance",
        *(f"domain/metadata/instance/{k}" for k in ("tenant", "job", "node", "created_at")),
        "domain/os",
        "domain/os/type",
        "domain/os/boot",
        "domain/os/boot",
        "domain/os/boot",
        "domain/features",
        "domain/features/acpi",
        "domain/devices",
        *[
            "domain/devices/disk",
            "domain/devices/disk/driver",
            "domain/devices/disk/source",
            "domain/devices/disk/target",
        ]
        * 2,
        "domain/devices/disk/readonly",
        "domain/devices/interface",
        "domain/devices/interface/source",
        "domain/devices/interface/mac",
        "domain/devices/interface/model",
        "domain/devices/interface",
        "domain/devices/interface/source",
        "domain/devices/interface/model",
        "domain/devices/serial",
        "domain/devices/serial/target",
        "domain/devices/console",
        "domain/devices/console/target",
    ]
)


def _local(path: str) -> str:
    return path.strip("/")


def test_domain_xml_has_exactly_the_described_elements() -> None:
    xml = domain_xml(_domain_spec(), Owner("<t/>", "j"), "qemu", "x86_64")
    assert sorted(_local(p) for p in _paths(ET.fromstring(xml))) == EXPECTED_PATHS


def test_owner_text_is_escaped_and_round_trips() -> None:
    owner = Owner(tenant="<evil/>&'\"", job="a]]>b", node="n", created_at="c")
    xml = domain_xml(DomainSpec("vm", 64, 1), owner, "qemu", "x86_64")
    root = ET.fromstring(xml)
    instance = root.find("metadata/*")
    assert instance is not None
    assert parse_owner(ET.tostring(instance, encoding="unicode")) == owner
    assert root.find(".//evil") is None


def test_network_xml_round_trips() -> None:
    from ipaddress import IPv4Address, IPv4Network

    for mode in ("nat", "route", "isolated"):
        spec = NetworkSpec(
            "net1",
            mode,
            IPv4Network("10.213.7.0/24"),
            "virbr-x",
            (IPv4Address("10.213.7.10"), IPv4Address("10.213.7.20")),
        )
        assert parse_network(network_xml(spec)) == spec
    assert ET.fromstring(network_xml(spec)).find("forward") is None  # isolated


def test_pool_and_volume_xml() -> None:
    pool = ET.fromstring(pool_xml("p<1", "/x/p<1"))
    assert pool.findtext("name") == "p<1" and pool.findtext("target/path") == "/x/p<1"
    vol = ET.fromstring(volume_xml("v", 8, "qcow2"))
    assert vol.findtext("capacity") == "8" and vol.find("target/format").get("type") == "qcow2"  # type: ignore[union-attr]
