"""The libvirt implementation of :class:`~workers.drivers.hypervisor.HypervisorDriver`.

Small parts composed into one driver: :mod:`.connection` (reconnect, error translation),
:mod:`.xml` (builders and parsers), :mod:`.guests`, :mod:`.domains`, :mod:`.provision`
(with :mod:`.seed`, cloud-init ISOs), :mod:`.changes` (resize, disks, NICs), :mod:`.copies`
(rename, clone), :mod:`.migration` (to another node), :mod:`.consoles` (console log, stats),
:mod:`.snapshots`, :mod:`.storage`,
:mod:`.content` (volume import, download, clone, through :mod:`.streams`), :mod:`.networks`
and :mod:`.host`.
The life-cycle table is :mod:`workers.drivers.vm_states`, shared with the fake driver.
"""

from __future__ import annotations

from workers.drivers.hypervisor import HypervisorDriver
from workers.drivers.libvirt.changes import ChangesMixin
from workers.drivers.libvirt.consoles import ConsolesMixin
from workers.drivers.libvirt.content import ContentMixin
from workers.drivers.libvirt.copies import CopiesMixin
from workers.drivers.libvirt.domains import DomainsMixin
from workers.drivers.libvirt.host import HostMixin
from workers.drivers.libvirt.migration import MigrationMixin
from workers.drivers.libvirt.networks import NetworksMixin
from workers.drivers.libvirt.provision import ProvisionMixin
from workers.drivers.libvirt.snapshots import SnapshotsMixin
from workers.drivers.libvirt.storage import StorageMixin
from workers.drivers.names import unscoping

__all__ = ["LibvirtDriver"]


@unscoping(HypervisorDriver.__abstractmethods__ - {"version"})
class LibvirtDriver(
    HostMixin,
    DomainsMixin,
    ProvisionMixin,
    ChangesMixin,
    CopiesMixin,
    MigrationMixin,
    ConsolesMixin,
    ContentMixin,
    SnapshotsMixin,
    StorageMixin,
    NetworksMixin,
    HypervisorDriver,
):
    """VM operations on one libvirt connection.

    ``LibvirtDriver(uri, node)`` serves any libvirt URI (``qemu:///system``,
    ``qemu:///session``, ``test:///default``, ``qemu+ssh://host/system``). Optional keywords:
    ``domain_type`` (``kvm``/``qemu``/``test``; default: ``kvm`` when libvirt offers it, else
    ``qemu``), ``pool_root`` (where directory pools live), ``attempts`` and ``backoff`` (retries
    after a lost connection before ``BackendUnavailable``), ``peers`` (node → libvirt URI: where
    VMs may migrate) and ``migration_hosts`` (node → the address its QEMU receives on).
    """

    name = "libvirt"
