"""libvirt XML, built with ElementTree from validated specs and parsed back.

Nothing here formats strings into XML: every value is an attribute or ``.text`` set through
:mod:`xml.etree.ElementTree`, which escapes it, so a spec can only ever describe the elements
these builders write. The parsers read back the same subset (for results and round-trip checks).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

#: Namespace of nube's element in a domain's ``<metadata>``.
NS = "https://nube.dev/xmlns/libvirt/vm/1"
ET.register_namespace("nube", NS)


@dataclass(frozen=True)
class DiskSource:
    """A disk or CD-ROM backed by a pool volume."""

    pool: str
    volume: str
    format: str
    device: str = "disk"


@dataclass(frozen=True)
class Nic:
    network: str
    mac: str | None = None


@dataclass(frozen=True)
class DomainSpec:
    """What a domain's XML describes (the resolved form of ``VmDefine``)."""

    name: str
    memory_mib: int
    vcpus: int
    disks: tuple[DiskSource, ...] = ()
    interfaces: tuple[Nic, ...] = ()
    boot: tuple[str, ...] = ("hd",)
    serial_console: bool = True


@dataclass(frozen=True)
class Owner:
    """nube's record in a domain's metadata: who made it, in which job, on which node."""

    tenant: str
    job: str
    node: str = ""
    created_at: str = ""


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    mode: str
    subnet: IPv4Network
    bridge: str | None = None
    dhcp: tuple[IPv4Address, IPv4Address] | None = None


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def to_string(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")


# --- domains -------------------------------------------------------------------------------------


def domain_xml(spec: DomainSpec, owner: Owner, domain_type: str, arch: str) -> str:
    """The domain XML of ``spec``, with ``owner`` in nube's metadata element."""
    root = ET.Element("domain", {"type": domain_type})
    _sub(root, "name", spec.name)
    _sub(root, "memory", str(spec.memory_mib), unit="MiB")
    _sub(root, "vcpu", str(spec.vcpus))
    _sub(root, "metadata").append(owner_element(owner))
    os_el = _sub(root, "os")
    _sub(os_el, "type", "hvm", arch=arch)
    for dev in spec.boot:
        _sub(os_el, "boot", dev=dev)
    _sub(_sub(root, "features"), "acpi")
    _devices(_sub(root, "devices"), spec)
    return to_string(root)


def _devices(devices: ET.Element, spec: DomainSpec) -> None:
    letters = iter("abcdefghijklmnop")
    for disk in spec.disks:
        target = f"vd{next(letters)}" if disk.device == "disk" else "hdc"
        _disk(devices, disk, target)
    for nic in spec.interfaces:
        iface = _sub(devices, "interface", type="network")
        _sub(iface, "source", network=nic.network)
        if nic.mac:
            _sub(iface, "mac", address=nic.mac)
        _sub(iface, "model", type="virtio")
    if spec.serial_console:
        _sub(_sub(devices, "serial", type="pty"), "target", port="0")
        _sub(_sub(devices, "console", type="pty"), "target", type="serial", port="0")


def _disk(devices: ET.Element, disk: DiskSource, target: str) -> None:
    el = _sub(devices, "disk", type="volume", device=disk.device)
    _sub(el, "driver", name="qemu", type=disk.format)
    _sub(el, "source", pool=disk.pool, volume=disk.volume)
    bus = "virtio" if disk.device == "disk" else "ide"
    _sub(el, "target", dev=target, bus=bus)
    if disk.device == "cdrom":
        _sub(el, "readonly")


def owner_element(owner: Owner) -> ET.Element:
    el = ET.Element(f"{{{NS}}}instance")
    for key in ("tenant", "job", "node", "created_at"):
        _sub(el, f"{{{NS}}}{key}", getattr(owner, key))
    return el


def parse_owner(xml: str) -> Owner:
    """The :class:`Owner` in nube's metadata element (as ``virDomain.metadata`` returns it:
    libvirt hands the element back without its namespace prefix)."""
    root = ET.fromstring(xml)
    texts = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in root}
    return Owner(**{key: texts.get(key, "") for key in Owner.__dataclass_fields__})


def parse_domain(xml: str) -> DomainSpec:
    """The :class:`DomainSpec` a domain XML describes (memory in MiB, libvirt's KiB converted)."""
    root = ET.fromstring(xml)
    mem = root.find("memory")
    kib = int(mem.text or 0) if mem is not None and mem.get("unit", "KiB") == "KiB" else None
    memory = kib // 1024 if kib is not None else int(root.findtext("memory") or 0)
    return DomainSpec(
        name=root.findtext("name") or "",
        memory_mib=memory,
        vcpus=int(root.findtext("vcpu") or 0),
        disks=tuple(_parse_disk(d) for d in root.iterfind("devices/disk")),
        interfaces=tuple(_parse_nic(i) for i in root.iterfind("devices/interface")),
        boot=tuple(b.get("dev", "") for b in root.iterfind("os/boot")),
        serial_console=root.find("devices/serial") is not None,
    )


def _parse_disk(el: ET.Element) -> DiskSource:
    src, drv = el.find("source"), el.find("driver")
    return DiskSource(
        pool=src.get("pool", "") if src is not None else "",
        volume=src.get("volume", "") if src is not None else "",
        format=drv.get("type", "raw") if drv is not None else "raw",
        device=el.get("device", "disk"),
    )


def _parse_nic(el: ET.Element) -> Nic:
    src, mac = el.find("source"), el.find("mac")
    return Nic(
        network=src.get("network", "") if src is not None else "",
        mac=mac.get("address") if mac is not None else None,
    )


def snapshot_xml(name: str, description: str) -> str:
    root = ET.Element("domainsnapshot")
    _sub(root, "name", name)
    _sub(root, "description", description)
    return to_string(root)


# --- storage -------------------------------------------------------------------------------------


def pool_xml(name: str, path: str) -> str:
    """A directory pool at ``path``."""
    root = ET.Element("pool", {"type": "dir"})
    _sub(root, "name", name)
    _sub(_sub(root, "target"), "path", path)
    return to_string(root)


def volume_xml(name: str, capacity_mib: int, fmt: str) -> str:
    """A sparse volume of ``capacity_mib`` MiB in format ``fmt`` (qcow2 or raw)."""
    root = ET.Element("volume")
    _sub(root, "name", name)
    _sub(root, "capacity", str(capacity_mib), unit="MiB")
    _sub(root, "allocation", "0", unit="MiB")
    _sub(_sub(root, "target"), "format", type=fmt)
    return to_string(root)


def parse_pool(xml: str) -> dict[str, Any]:
    root = ET.fromstring(xml)
    return {"type": root.get("type"), "path": root.findtext("target/path")}


def parse_volume(xml: str) -> dict[str, Any]:
    root = ET.fromstring(xml)
    fmt = root.find("target/format")
    return {
        "format": fmt.get("type") if fmt is not None else None,
        "path": root.findtext("target/path"),
    }


# --- networks ------------------------------------------------------------------------------------


def network_xml(spec: NetworkSpec) -> str:
    """A NAT, routed or isolated network; the gateway is the subnet's first host."""
    root = ET.Element("network")
    _sub(root, "name", spec.name)
    if spec.mode != "isolated":
        _sub(root, "forward", mode=spec.mode)
    bridge = {"stp": "on", "delay": "0"}
    if spec.bridge:
        bridge = {"name": spec.bridge, **bridge}
    _sub(root, "bridge", **bridge)
    gateway = spec.subnet.network_address + 1
    ip = _sub(root, "ip", address=str(gateway), netmask=str(spec.subnet.netmask))
    if spec.dhcp:
        _sub(_sub(ip, "dhcp"), "range", start=str(spec.dhcp[0]), end=str(spec.dhcp[1]))
    return to_string(root)


def parse_network(xml: str) -> NetworkSpec:
    """The :class:`NetworkSpec` a network XML describes."""
    root = ET.fromstring(xml)
    forward, ip = root.find("forward"), root.find("ip")
    bridge = root.find("bridge")
    subnet = IPv4Network("0.0.0.0/32")
    if ip is not None:
        subnet = IPv4Network(f"{ip.get('address')}/{ip.get('netmask')}", strict=False)
    rng = root.find("ip/dhcp/range")
    dhcp = None
    if rng is not None:
        dhcp = (IPv4Address(rng.get("start", "")), IPv4Address(rng.get("end", "")))
    return NetworkSpec(
        name=root.findtext("name") or "",
        mode=forward.get("mode", "nat") if forward is not None else "isolated",
        subnet=subnet,
        bridge=bridge.get("name") if bridge is not None else None,
        dhcp=dhcp,
    )


# --- capabilities --------------------------------------------------------------------------------


@dataclass
class Capabilities:
    """A summary of ``virConnect.getCapabilities()``."""

    host_arch: str = ""
    host_cpu_model: str = ""
    guests: list[dict[str, Any]] = field(default_factory=list)

    def domain_types(self, arch: str) -> list[str]:
        """Domain types (``kvm``, ``qemu``, ``test``...) offered for hvm guests of ``arch``."""
        for guest in self.guests:
            if guest["arch"] == arch and guest["os_type"] == "hvm":
                return list(guest["domain_types"])
        return []

    def to_dict(self) -> dict[str, Any]:
        arches = sorted({g["arch"] for g in self.guests})
        types = sorted({t for g in self.guests for t in g["domain_types"]})
        return {
            "host_arch": self.host_arch,
            "host_cpu_model": self.host_cpu_model,
            "guest_arches": arches,
            "domain_types": types,
            "guests": self.guests,
        }


def parse_capabilities(xml: str) -> Capabilities:
    root = ET.fromstring(xml)
    caps = Capabilities(
        host_arch=root.findtext("host/cpu/arch") or "",
        host_cpu_model=root.findtext("host/cpu/model") or "",
    )
    for guest in root.iterfind("guest"):
        arch = guest.find("arch")
        caps.guests.append(
            {
                "os_type": guest.findtext("os_type") or "",
                "arch": arch.get("name", "") if arch is not None else "",
                "domain_types": [d.get("type", "") for d in guest.iterfind("arch/domain")],
            }
        )
    return caps
