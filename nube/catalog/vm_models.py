"""Parameter models of the VM service (domains, snapshots, storage pools, volumes, networks).

Every string a caller sends ends up in libvirt XML, so each one is a constrained type: names are
:data:`LibvirtName`, addresses are parsed by :mod:`ipaddress`, enumerations are literals. A value
with markup (``<``, ``&``, quotes) never validates, and the driver builds its XML with an XML
library on top of that. Network and volume models are named ``VmNetwork*`` and ``StorageVolume*``:
the container service has networks and volumes too, and the OpenAPI document names its schemas
after the classes.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from nube.catalog import PAYLOAD_LIMIT, Params
from nube.catalog.validators import LibvirtName

#: A MAC address, colon-separated hex pairs (``52:54:00:12:34:56``).
MacAddress = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$")]

#: A Linux bridge name (at most 15 characters, IFNAMSIZ - 1).
BridgeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")]

#: A VM's memory in MiB.
MemoryMiB = Annotated[int, Field(ge=16, le=1 << 20)]

#: A storage volume's capacity in MiB (up to 16 TiB).
CapacityMiB = Annotated[int, Field(ge=1, le=1 << 24)]

VolumeFormat = Literal["qcow2", "raw"]
DomainType = Literal["kvm", "qemu"]

#: A disk's target device on the virtio bus (``vda`` ... ``vdz``).
DiskTarget = Annotated[str, StringConstraints(pattern=r"^vd[a-z]$")]

#: A kernel command line: printable ASCII without markup characters.
KernelCmdline = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9 _.,:;=/@+%-]*$", max_length=1024)
]

#: An SSH public key line (type, base64 key, optional comment), one line.
SshPublicKey = Annotated[
    str,
    StringConstraints(
        pattern=r"^(?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-[a-z0-9@.-]+)"
        r" [A-Za-z0-9+/]+={0,3}(?: [^\n\r]{0,200})?$",
        max_length=8192,
    ),
]

#: The largest cloud-init seed (user data, meta data and network config together), in bytes.
CLOUD_INIT_LIMIT = 64 * 1024

#: A SHA-256 digest in hex.
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
BootDevice = Literal["hd", "cdrom", "network"]
DomainFilter = Literal[
    "all", "active", "inactive", "persistent", "transient", "running", "paused", "shutoff"
]
NetworkMode = Literal["nat", "route", "isolated"]


# --- domains -------------------------------------------------------------------------------------


class VmList(Params):
    """List the caller's domains."""

    state: DomainFilter = Field(default="all", description="Which domains to list")


class VmRef(Params):
    """One domain, by name."""

    name: LibvirtName = Field(description="Domain name")


class VmInfo(VmRef):
    """One domain's representation, optionally with its statistics."""

    stats: bool = Field(default=False, description="Add the VM's stats (as GET .../stats)")


class VmDisk(Params):
    """A disk: an existing volume of a pool, or a new volume of a size and format."""

    pool: LibvirtName = Field(description="Storage pool holding the volume")
    volume: LibvirtName | None = Field(default=None, description="Existing volume to attach")
    capacity_mib: CapacityMiB | None = Field(default=None, description="Size of a new volume")
    format: VolumeFormat = Field(default="qcow2", description="Format of a new volume")

    @model_validator(mode="after")
    def _one_source(self) -> VmDisk:
        if (self.volume is None) == (self.capacity_mib is None):
            raise ValueError("give either 'volume' (existing) or 'capacity_mib' (new volume)")
        return self


class VmCdrom(Params):
    """A CD-ROM backed by an ISO image that is a volume of a storage pool."""

    pool: LibvirtName
    volume: LibvirtName


class VmInterface(Params):
    """A network interface on a libvirt virtual network."""

    network: LibvirtName = Field(description="libvirt network name")
    mac: MacAddress | None = Field(default=None, description="MAC address (default: generated)")


class VmVolume(Params):
    """A volume of a storage pool (a kernel, an initrd)."""

    pool: LibvirtName
    volume: LibvirtName


class VmCloudInit(Params):
    """cloud-init NoCloud data: a seed ISO (label ``cidata``) attached as a CD-ROM and removed
    with the VM. Together at most ``CLOUD_INIT_LIMIT`` bytes; never logged."""

    user_data: str | None = Field(default=None, description="user-data (#cloud-config or #!...)")
    meta_data: str | None = Field(
        default=None, description="meta-data YAML (default: instance-id and local-hostname)"
    )
    network_config: str | None = Field(default=None, description="network-config YAML (v1/v2)")
    ssh_authorized_keys: list[SshPublicKey] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _check(self) -> VmCloudInit:
        texts = [self.user_data, self.meta_data, self.network_config, *self.ssh_authorized_keys]
        size = sum(len(t.encode()) for t in texts if t)
        if size > CLOUD_INIT_LIMIT:
            raise ValueError(f"cloud-init data is {size} bytes, over {CLOUD_INIT_LIMIT}")
        if any("\0" in t for t in texts if t):
            raise ValueError("cloud-init data must not contain NUL characters")
        return self


def _boot_default() -> list[BootDevice]:
    return ["hd"]


class VmDefine(Params):
    """A domain spec: defined (persistent) or created (transient, running at once)."""

    name: LibvirtName = Field(description="Domain name (unique on its node)")
    memory_mib: MemoryMiB = Field(default=256, description="Memory in MiB")
    vcpus: int = Field(default=1, ge=1, le=256, description="Virtual CPUs")
    disks: list[VmDisk] = Field(default_factory=list, max_length=16)
    cdrom: VmCdrom | None = None
    interfaces: list[VmInterface] = Field(default_factory=list, max_length=8)
    boot: list[BootDevice] = Field(default_factory=_boot_default, min_length=1, max_length=3)
    serial_console: bool = Field(
        default=True, description="A serial port with a pty console, its output logged"
    )
    kernel: VmVolume | None = Field(default=None, description="Direct kernel boot: the kernel")
    initrd: VmVolume | None = Field(default=None, description="Direct kernel boot: the initrd")
    cmdline: KernelCmdline | None = Field(default=None, description="Kernel command line")
    cloud_init: VmCloudInit | None = Field(default=None, description="NoCloud seed ISO")
    vnc: bool = Field(default=False, description="A VNC display on 127.0.0.1 with a password")
    max_memory_mib: MemoryMiB | None = Field(
        default=None, description="Memory a running VM may grow to (default: memory_mib)"
    )
    max_vcpus: int | None = Field(
        default=None, ge=1, le=256, description="vCPUs a running VM may grow to (default: vcpus)"
    )
    domain_type: DomainType | None = Field(
        default=None, description="kvm or qemu (emulation); default: kvm when the host has it"
    )
    persistent: bool = Field(default=True, description="Define (true) or create transient")
    start: bool = Field(default=False, description="Start a persistent domain once defined")
    autostart: bool = Field(default=False, description="Start with the host (persistent only)")

    @model_validator(mode="after")
    def _check(self) -> VmDefine:
        if len(set(self.boot)) != len(self.boot):
            raise ValueError("boot devices must not repeat")
        if self.autostart and not self.persistent:
            raise ValueError("a transient domain cannot autostart")
        macs = [i.mac.lower() for i in self.interfaces if i.mac]
        if len(set(macs)) != len(macs):
            raise ValueError("interface MAC addresses must differ")
        if (self.initrd or self.cmdline) and not self.kernel:
            raise ValueError("'initrd' and 'cmdline' need a 'kernel'")
        if self.cloud_init and self.cdrom:
            raise ValueError("the cloud-init seed is the CD-ROM: give 'cdrom' or 'cloud_init'")
        if self.max_memory_mib is not None and self.max_memory_mib < self.memory_mib:
            raise ValueError("max_memory_mib must be at least memory_mib")
        if self.max_vcpus is not None and self.max_vcpus < self.vcpus:
            raise ValueError("max_vcpus must be at least vcpus")
        return self


class VmShutdown(VmRef):
    """Graceful shutdown (ACPI), waiting up to ``timeout`` seconds, then optionally destroy."""

    timeout: int = Field(default=60, ge=0, le=300, description="Seconds to wait for power-off")
    force: bool = Field(default=False, description="Destroy the domain if the timeout passes")


class VmReboot(VmRef):
    """Reboot: graceful (ACPI) or a hard reset."""

    hard: bool = Field(default=False, description="Reset at once instead of asking the guest")


class VmUndefine(VmRef):
    """Remove a stopped domain's definition."""

    remove_storage: bool = Field(default=False, description="Also delete its disk volumes")


class VmAutostart(VmRef):
    """Turn start-with-the-host on or off."""

    enabled: bool = True


class VmConsole(VmRef):
    """The last lines of the serial console's output."""

    tail: int = Field(default=100, ge=1, le=10000, description="Lines from the end")


class VmConsoleFollow(VmRef):
    """Follow the serial console: its new lines as the job's progress events."""

    seconds: int = Field(default=30, ge=1, le=300, description="How long to follow")
    tail: int = Field(default=0, ge=0, le=1000, description="Lines from before to start with")


class VmResize(VmRef):
    """Memory and vCPUs: a shut-off VM's definition (up to anything), a running VM's live
    values (up to its maximum) and definition together."""

    memory_mib: MemoryMiB | None = None
    vcpus: int | None = Field(default=None, ge=1, le=256)

    @model_validator(mode="after")
    def _check(self) -> VmResize:
        if self.memory_mib is None and self.vcpus is None:
            raise ValueError("give memory_mib, vcpus or both")
        return self


class VmDiskAttach(VmRef):
    """Attach a disk (live and persistent): an existing volume or a new one."""

    pool: LibvirtName = Field(description="Storage pool holding the volume")
    volume: LibvirtName | None = Field(default=None, description="Existing volume to attach")
    capacity_mib: CapacityMiB | None = Field(default=None, description="Size of a new volume")
    format: VolumeFormat = Field(default="qcow2", description="Format of a new volume")

    @model_validator(mode="after")
    def _one_source(self) -> VmDiskAttach:
        if (self.volume is None) == (self.capacity_mib is None):
            raise ValueError("give either 'volume' (existing) or 'capacity_mib' (new volume)")
        return self


class VmDiskDetach(VmRef):
    """Detach a disk by its target device (live and persistent); its volume stays."""

    target: DiskTarget


class VmNicAttach(VmRef):
    """Attach a network interface (live and persistent)."""

    network: LibvirtName
    mac: MacAddress | None = None


class VmNicDetach(VmRef):
    """Detach a network interface by its MAC address (live and persistent)."""

    mac: MacAddress


class VmRename(VmRef):
    """Rename a shut-off VM (its disks, snapshots and owner stay)."""

    new_name: LibvirtName = Field(description="The VM's new name (free in the tenant)")


class VmClone(VmRef):
    """Copy a shut-off VM with its disks (qcow2 overlays on the originals, or full copies)."""

    target: LibvirtName = Field(description="The new VM's name (free in the tenant)")
    linked: bool = Field(default=False, description="qcow2 overlays backed by the disks")


#: A node's name, as ``NUBE_NODE`` (its pinned queues are ``<service>.<node>``).
NodeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class VmMigrate(VmRef):
    """Move a persistent VM to another node's hypervisor: a shut-off VM's definition (offline),
    a running or paused one with its memory (live). Its disks must be on storage both nodes see
    (the same pools, of the same paths)."""

    node: NodeName = Field(description="The destination node (in the worker's NUBE_LIBVIRT_PEERS)")
    live: bool = Field(
        default=True,
        description="A running VM keeps running while its memory is copied (false: it is "
        "paused for the copy); a shut-off VM moves offline either way",
    )


class SnapshotCreate(VmRef):
    """Take an internal snapshot (all disks must be qcow2)."""

    snapshot: LibvirtName = Field(description="Snapshot name")


class SnapshotRef(VmRef):
    """One snapshot of a domain."""

    snapshot: LibvirtName


# --- storage pools and volumes -------------------------------------------------------------------


class PoolRef(Params):
    """One storage pool, by name."""

    name: LibvirtName


class PoolDefine(PoolRef):
    """A directory pool under the node's pool root (``<root>/<name>``)."""

    persistent: bool = Field(default=True, description="Define (true) or create transient")
    build: bool = Field(default=True, description="Create its directory")
    start: bool = Field(default=True, description="Start it once defined")
    autostart: bool = False

    @model_validator(mode="after")
    def _check(self) -> PoolDefine:
        if self.autostart and not self.persistent:
            raise ValueError("a transient pool cannot autostart")
        return self


class PoolAutostart(PoolRef):
    enabled: bool = True


class PoolUndefine(PoolRef):
    """Remove an inactive pool's definition."""

    delete: bool = Field(default=False, description="Also delete its (empty) directory")


class StorageVolumeList(Params):
    pool: LibvirtName


class StorageVolumeRef(Params):
    pool: LibvirtName
    name: LibvirtName


class StorageVolumeCreate(StorageVolumeRef):
    capacity_mib: CapacityMiB
    format: VolumeFormat = "qcow2"


class StorageVolumeUpload(StorageVolumeRef):
    """A volume's content from the request: raw or qcow2 bytes, checked against their size and
    SHA-256 before the volume exists; at most ``PAYLOAD_LIMIT`` bytes."""

    content: str = Field(
        description="The image as base64, at most 16 MiB decoded",
        max_length=4 * (PAYLOAD_LIMIT // 3 + 1),
        pattern=r"^[A-Za-z0-9+/]+={0,2}$",
        json_schema_extra={"contentEncoding": "base64"},
    )
    format: VolumeFormat = Field(default="raw", description="raw or qcow2 (checked)")
    sha256: Sha256 = Field(description="SHA-256 of the decoded content")
    size: int = Field(ge=1, le=PAYLOAD_LIMIT, description="Bytes of the decoded content")


class StorageVolumeGrow(StorageVolumeRef):
    """Grow a volume to a new capacity (never shrink it)."""

    capacity_mib: CapacityMiB = Field(description="The new capacity, at least the current one")


class StorageVolumeClone(StorageVolumeRef):
    """Copy a volume into a new one of the same pool."""

    target: LibvirtName = Field(description="Name of the new volume")
    backing: bool = Field(default=True, description="A qcow2 overlay backed by the source")


# --- virtual networks ----------------------------------------------------------------------------


class VmNetworkRef(Params):
    """One virtual network, by name."""

    name: LibvirtName


class VmNetworkDefine(VmNetworkRef):
    """A NAT, routed or isolated IPv4 network; the gateway is the subnet's first address."""

    mode: NetworkMode = "nat"
    bridge: BridgeName | None = Field(default=None, description="Bridge (default: virbrN)")
    subnet: IPv4Network = Field(description="Private IPv4 subnet, e.g. 10.213.1.0/24")
    dhcp_start: IPv4Address | None = None
    dhcp_end: IPv4Address | None = None
    persistent: bool = True
    start: bool = True
    autostart: bool = False

    @model_validator(mode="after")
    def _check(self) -> VmNetworkDefine:
        net = self.subnet
        if not net.is_private or not 8 <= net.prefixlen <= 30:
            raise ValueError("subnet must be a private IPv4 network with a /8 to /30 prefix")
        if (self.dhcp_start is None) != (self.dhcp_end is None):
            raise ValueError("give both dhcp_start and dhcp_end, or neither")
        if self.dhcp_start is not None and self.dhcp_end is not None:
            _check_range(net, self.dhcp_start, self.dhcp_end)
        if self.autostart and not self.persistent:
            raise ValueError("a transient network cannot autostart")
        return self


def _check_range(net: IPv4Network, start: IPv4Address, end: IPv4Address) -> None:
    gateway = net.network_address + 1
    hosts = (net.network_address + 2, net.broadcast_address - 1)
    if not (hosts[0] <= start <= end <= hosts[1]):
        raise ValueError(f"DHCP range must lie in {hosts[0]}-{hosts[1]} (gateway {gateway})")


class VmNetworkAutostart(VmNetworkRef):
    enabled: bool = True
