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
    target: str = ""


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
    max_memory_mib: int | None = None
    max_vcpus: int | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    console_log: str | None = None
    vnc_password: str | None = None
    vnc: bool = False


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
    _sub(root, "memory", str(spec.max_memory_mib or spec.memory_mib), unit="MiB")
    _sub(root, "currentMemory", str(spec.memory_mib), unit="MiB")
    _sub(root, "vcpu", str(spec.max_vcpus or spec.vcpus), current=str(spec.vcpus))
    _sub(root, "metadata").append(owner_element(owner))
    os_el = _sub(root, "os")
    _sub(os_el, "type", "hvm", arch=arch)
    if spec.kernel:
        _sub(os_el, "kernel", spec.kernel)
        if spec.initrd:
            _sub(os_el, "initrd", spec.initrd)
        if spec.cmdline:
            _sub(os_el, "cmdline", spec.cmdline)
    else:
        for dev in spec.boot:
            _sub(os_el, "boot", dev=dev)
    _sub(_sub(root, "features"), "acpi")
    _devices(_sub(root, "devices"), spec)
    return to_string(root)


def _devices(devices: ET.Element, spec: DomainSpec) -> None:
    letters = iter("abcdefghijklmnop")
    for disk in spec.disks:
        target = f"vd{next(letters)}" if disk.device == "disk" else "hdc"
        devices.append(disk_element(disk, target))
    for nic in spec.interfaces:
        devices.append(nic_element(nic))
    if spec.serial_console:
        serial = _sub(devices, "serial", type="pty")
        _sub(serial, "target", port="0")
        if spec.console_log:
            _sub(serial, "log", file=spec.console_log, append="off")
        _sub(_sub(devices, "console", type="pty"), "target", type="serial", port="0")
    if spec.vnc:
        attrs = {"type": "vnc", "port": "-1", "autoport": "yes", "listen": "127.0.0.1"}
        if spec.vnc_password:
            attrs["passwd"] = spec.vnc_password
        _sub(_sub(devices, "graphics", **attrs), "listen", type="address", address="127.0.0.1")


def nic_element(nic: Nic) -> ET.Element:
    """A virtio interface on a libvirt network (for a domain, or to attach)."""
    iface = ET.Element("interface", {"type": "network"})
    _sub(iface, "source", network=nic.network)
    if nic.mac:
        _sub(iface, "mac", address=nic.mac)
    _sub(iface, "model", type="virtio")
    return iface


def disk_element(disk: DiskSource, target: str) -> ET.Element:
    """A disk or CD-ROM backed by a pool volume (for a domain, or to attach)."""
    el = ET.Element("disk", {"type": "volume", "device": disk.device})
    _sub(el, "driver", name="qemu", type=disk.format)
    _sub(el, "source", pool=disk.pool, volume=disk.volume)
    bus = "virtio" if disk.device == "disk" else "ide"
    _sub(el, "target", dev=target, bus=bus)
    if disk.device == "cdrom":
        _sub(el, "readonly")
    return el


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
    maximum = kib // 1024 if kib is not None else int(root.findtext("memory") or 0)
    cur = root.find("currentMemory")
    memory = maximum
    if cur is not None:
        memory = int(cur.text or 0) // (1024 if cur.get("unit", "KiB") == "KiB" else 1)
    vcpu = root.find("vcpu")
    max_vcpus = int(vcpu.text or 0) if vcpu is not None else 0
    log = root.find("devices/serial/log")
    return DomainSpec(
        name=root.findtext("name") or "",
        memory_mib=memory,
        vcpus=int(vcpu.get("current", max_vcpus)) if vcpu is not None else 0,
        disks=tuple(_parse_disk(d) for d in root.iterfind("devices/disk")),
        interfaces=tuple(_parse_nic(i) for i in root.iterfind("devices/interface")),
        boot=tuple(b.get("dev", "") for b in root.iterfind("os/boot")),
        serial_console=root.find("devices/serial") is not None,
        max_memory_mib=maximum,
        max_vcpus=max_vcpus,
        kernel=root.findtext("os/kernel"),
        initrd=root.findtext("os/initrd"),
        cmdline=root.findtext("os/cmdline"),
        console_log=log.get("file") if log is not None else None,
        vnc=root.find("devices/graphics[@type='vnc']") is not None,
    )


def vnc_port(xml: str) -> int | None:
    """The VNC port of a running domain's XML (``None`` without VNC or before it started)."""
    el = ET.fromstring(xml).find("devices/graphics[@type='vnc']")
    port = int(el.get("port", "-1")) if el is not None else -1
    return port if port > 0 else None


def device_xml(xml: str, tag: str, match: dict[str, str]) -> str | None:
    """The XML of the first ``devices/<tag>`` whose child elements have ``match``'s attributes
    (``{"target/dev": "vdb"}``, ``{"mac/address": "52:54:..."}``), or ``None``."""
    for el in ET.fromstring(xml).iterfind(f"devices/{tag}"):
        if all(
            (child := el.find(path.rsplit("/", 1)[0])) is not None
            and child.get(path.rsplit("/", 1)[1]) == value
            for path, value in match.items()
        ):
            return to_string(el)
    return None


def _parse_disk(el: ET.Element) -> DiskSource:
    src, drv, target = el.find("source"), el.find("driver"), el.find("target")
    return DiskSource(
        pool=src.get("pool", "") if src is not None else "",
        volume=src.get("volume", "") if src is not None else "",
        format=drv.get("type", "raw") if drv is not None else "raw",
        device=el.get("device", "disk"),
        target=target.get("dev", "") if target is not None else "",
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


def volume_xml(
    name: str,
    capacity_mib: int,
    fmt: str,
    unit: str = "MiB",
    backing: tuple[str, str] | None = None,
) -> str:
    """A sparse volume of ``capacity_mib`` ``unit`` in format ``fmt`` (qcow2 or raw); with
    ``backing`` (path, format) a qcow2 overlay on that file."""
    root = ET.Element("volume")
    _sub(root, "name", name)
    _sub(root, "capacity", str(capacity_mib), unit=unit)
    _sub(root, "allocation", "0", unit=unit)
    _sub(_sub(root, "target"), "format", type=fmt)
    if backing is not None:
        store = _sub(root, "backingStore")
        _sub(store, "path", backing[0])
        _sub(store, "format", type=backing[1])
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
        "backing": root.findtext("backingStore/path"),
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
