"""The hypervisor driver interface. Tasks speak only to this; libvirt lives behind it.

Each method states its contract, as nova's ``ComputeDriver`` does. Common to all of them:

- Results are JSON-able dicts. A VM is represented as in :meth:`HypervisorDriver.domain_info`
  (``name, uuid, node, tenant, job, state, persistent, autostart, managed_save, memory,
  vcpus, cpu time, allowed_actions, disks, interfaces``).
- Only :mod:`nube.errors` leaves are raised: ``NotFound`` for a missing (or another tenant's)
  object, ``Conflict`` for a request the object's state does not allow (the domain life cycle is
  one state table), ``InvalidRequest`` for a spec the hypervisor rejects, ``BackendUnavailable``
  after reconnecting to a lost daemon failed, ``BackendFailed`` for anything else.
- VMs belong to tenants: a VM records its tenant, creating job and node in its metadata; reads
  and actions see only ``ctx.tenant``'s VMs (an admin context may act on any). Pools, volumes
  and networks are node infrastructure shared by all tenants.
- Creates are keyed by ``ctx.job_id``: a redelivered create finds what the first attempt made.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from nube.catalog import NoParams
from nube.catalog import vm_models as m
from workers.drivers.base import JobContext, Result


class HypervisorDriver(ABC):
    """Runs VM operations against one hypervisor connection (see the module's contract)."""

    name: str = "abstract"

    @abstractmethod
    def version(self) -> str:
        """Backend version string, for the worker's heartbeat."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    # --- node ------------------------------------------------------------------------------------

    @abstractmethod
    def hypervisor_info(self, params: NoParams, ctx: JobContext) -> Result:
        """Hostname, node info (CPU model, memory, CPUs, MHz, NUMA nodes, sockets, cores,
        threads), max vCPUs, hypervisor and libvirt versions, URI, the domain type VMs get, and
        a capabilities summary (guest arches, domain types)."""

    # --- domains ---------------------------------------------------------------------------------

    @abstractmethod
    def list_domains(self, params: m.VmList, ctx: JobContext) -> Result:
        """The tenant's domains in the state filter, as ``{"vms": [...]}``; never others'."""

    @abstractmethod
    def define_domain(self, params: m.VmDefine, ctx: JobContext) -> Result:
        """Define (persistent) or create (transient, running) a domain from a validated spec.

        New disk volumes are created first, named after the job so a redelivery reuses them. On
        failure everything this call made (volumes, the definition) is removed again. When a
        domain of that name exists and was made by ``ctx.job_id`` it is returned (started if the
        spec asks); made by anyone else it is ``Conflict``
        (:func:`~workers.drivers.base.name_taken`, which never says who holds it). Missing
        pools, volumes or networks are ``NotFound``.
        """

    @abstractmethod
    def domain_info(self, params: m.VmInfo, ctx: JobContext) -> Result:
        """State, max memory, memory, vCPUs, CPU time, node and ``allowed_actions``; with
        ``stats``, also ``stats`` (as
        :meth:`domain_stats` gives them, without name and state)."""

    @abstractmethod
    def domain_xml(self, params: m.VmRef, ctx: JobContext) -> Result:
        """The domain's libvirt XML as ``{"name", "xml"}``; admin contexts only."""

    @abstractmethod
    def start_domain(self, params: m.VmRef, ctx: JobContext) -> Result:
        """Start a defined domain (a saved one resumes from its managed save image)."""

    @abstractmethod
    def shutdown_domain(self, params: m.VmShutdown, ctx: JobContext) -> Result:
        """Ask the guest to power off and wait up to ``timeout`` seconds.

        When it has not stopped by then: with ``force`` the domain is destroyed (result
        ``forced: true``), otherwise the job fails ``timeout`` and the VM keeps running.
        """

    @abstractmethod
    def destroy_domain(self, params: m.VmRef, ctx: JobContext) -> Result:
        """Power off at once; a transient domain is gone afterwards (state ``undefined``)."""

    @abstractmethod
    def reboot_domain(self, params: m.VmReboot, ctx: JobContext) -> Result:
        """Ask the guest to reboot (ACPI), or reset it at once with ``hard``."""

    @abstractmethod
    def suspend_domain(self, params: m.VmRef, ctx: JobContext) -> Result:
        """Pause a running domain's vCPUs."""

    @abstractmethod
    def resume_domain(self, params: m.VmRef, ctx: JobContext) -> Result:
        """Resume a paused domain."""

    @abstractmethod
    def save_domain(self, params: m.VmRef, ctx: JobContext) -> Result:
        """Save a live persistent domain's memory to its managed file and stop it (``saved``)."""

    @abstractmethod
    def restore_domain(self, params: m.VmRef, ctx: JobContext) -> Result:
        """Run a saved domain again from its managed save image."""

    @abstractmethod
    def undefine_domain(self, params: m.VmUndefine, ctx: JobContext) -> Result:
        """Remove a stopped persistent domain with its managed save image and snapshot
        metadata; with ``remove_storage`` also delete its disk volumes (not its CD-ROM)."""

    @abstractmethod
    def set_domain_autostart(self, params: m.VmAutostart, ctx: JobContext) -> Result:
        """Turn autostart on or off (persistent domains)."""

    @abstractmethod
    def domain_console(self, params: m.VmConsole, ctx: JobContext) -> Result:
        """The last ``tail`` lines of the serial console's output as ``{"name", "lines",
        "truncated"}`` (the log of the current or last run; empty before the first start)."""

    @abstractmethod
    def follow_console(self, params: m.VmConsoleFollow, ctx: JobContext) -> Result:
        """Follow the serial console for ``seconds``: each batch of new lines is reported as
        the job's progress (:func:`workers.drivers.console_follow.follow`), starting with the
        last ``tail`` lines; the result is ``{"name", "lines", "first", "total"}``."""

    @abstractmethod
    def domain_stats(self, params: m.VmRef, ctx: JobContext) -> Result:
        """CPU, memory (balloon), block and network counters of the domain (``domstats``) as
        ``{"name", "state", "cpu", "memory", "block", "net"}``; a shut-off VM's are empty."""

    # --- changes ---------------------------------------------------------------------------------

    @abstractmethod
    def resize_domain(self, params: m.VmResize, ctx: JobContext) -> Result:
        """Set memory and/or vCPUs: in the definition, and on a live domain also at once, up to
        its maximum (more is ``Conflict``: stop it first). Returns the representation."""

    @abstractmethod
    def attach_disk(self, params: m.VmDiskAttach, ctx: JobContext) -> Result:
        """Attach an existing or new volume (new: ``<vm>-hp-<job tag>``) on the next free
        ``vdX`` target, live and in the definition; the representation plus ``target``. A
        redelivery finds the disk it attached."""

    @abstractmethod
    def detach_disk(self, params: m.VmDiskDetach, ctx: JobContext) -> Result:
        """Detach the disk on ``target`` (live and from the definition); its volume stays.
        ``NotFound`` when there is none."""

    @abstractmethod
    def attach_nic(self, params: m.VmNicAttach, ctx: JobContext) -> Result:
        """Attach a virtio NIC on a network (live and persistent); the representation plus its
        ``mac``."""

    @abstractmethod
    def detach_nic(self, params: m.VmNicDetach, ctx: JobContext) -> Result:
        """Detach the NIC with ``mac`` (live and persistent); ``NotFound`` when there is none."""

    # --- rename and clone -------------------------------------------------------------------------

    @abstractmethod
    def rename_domain(self, params: m.VmRename, ctx: JobContext) -> Result:
        """Rename a shut-off persistent domain to ``new_name`` (its backend name moves with
        it; owner metadata, disks and snapshots stay). A name the tenant already holds is
        ``Conflict``; when ``name`` is gone and ``new_name`` exists after an earlier attempt of
        the job, the renamed VM is returned."""

    @abstractmethod
    def clone_domain(self, params: m.VmClone, ctx: JobContext) -> Result:
        """A new shut-off domain ``target`` on this node, owned by ``ctx.job_id``, copying a
        shut-off source: each disk volume becomes ``<target>-disk<i>-<job tag>`` in its pool
        (a qcow2 overlay backed by the source's volume when ``linked``, else a full copy), a
        cloud-init seed is copied, other CD-ROMs are shared, NICs get new MAC addresses. A
        ``target`` made by this job is returned; one held otherwise is ``Conflict``. On failure
        the volumes this call made are removed."""

    # --- migration -------------------------------------------------------------------------------

    @abstractmethod
    def migrate_domain(self, params: m.VmMigrate, ctx: JobContext) -> Result:
        """Move a persistent VM to the hypervisor of node ``params.node`` (a peer of this node:
        ``NUBE_LIBVIRT_PEERS``): shut off it moves offline (its definition), running or paused
        live (``live``) or paused for the copy, and keeps its state there; it is then gone from
        this node. Its disks stay where they are: the destination must have the same pools and
        volumes (shared storage), else ``Conflict`` before anything moves. A node that is not a
        peer is ``InvalidRequest``, the VM's own node, a saved VM or a name the destination holds
        ``Conflict``. Returns the representation on the destination (``node`` the destination);
        when an earlier attempt of the job moved it already, that one."""

    # --- snapshots -------------------------------------------------------------------------------

    @abstractmethod
    def create_snapshot(self, params: m.SnapshotCreate, ctx: JobContext) -> Result:
        """Take an internal snapshot; every disk must be qcow2 (else ``Conflict``). A snapshot
        of that name taken by ``ctx.job_id`` is returned instead of a second one."""

    @abstractmethod
    def list_snapshots(self, params: m.VmRef, ctx: JobContext) -> Result:
        """The domain's snapshots as ``{"snapshots": [...]}`` (name, created_at, state,
        current)."""

    @abstractmethod
    def revert_snapshot(self, params: m.SnapshotRef, ctx: JobContext) -> Result:
        """Revert the domain to the snapshot (disks, and memory if it was taken running)."""

    @abstractmethod
    def delete_snapshot(self, params: m.SnapshotRef, ctx: JobContext) -> Result:
        """Delete one snapshot; the domain keeps its current state."""

    # --- storage pools and volumes ---------------------------------------------------------------

    @abstractmethod
    def list_pools(self, params: NoParams, ctx: JobContext) -> Result:
        """All storage pools as ``{"pools": [...]}``."""

    @abstractmethod
    def define_pool(self, params: m.PoolDefine, ctx: JobContext) -> Result:
        """Define (or create transient) a directory pool at ``<pool root>/<name>``, then build,
        start and autostart it as asked. The same spec again returns the existing pool; another
        pool of that name is ``Conflict``. A pool this call defined is removed if a later step
        fails."""

    @abstractmethod
    def pool_info(self, params: m.PoolRef, ctx: JobContext) -> Result:
        """State, capacity, allocation, available (bytes), path and number of volumes."""

    @abstractmethod
    def build_pool(self, params: m.PoolRef, ctx: JobContext) -> Result:
        """Create the pool's directory (idempotent)."""

    @abstractmethod
    def start_pool(self, params: m.PoolRef, ctx: JobContext) -> Result:
        """Activate an inactive pool."""

    @abstractmethod
    def destroy_pool(self, params: m.PoolRef, ctx: JobContext) -> Result:
        """Deactivate a pool; its volumes stay on disk."""

    @abstractmethod
    def undefine_pool(self, params: m.PoolUndefine, ctx: JobContext) -> Result:
        """Remove an inactive pool's definition (with ``delete``, its empty directory too)."""

    @abstractmethod
    def set_pool_autostart(self, params: m.PoolAutostart, ctx: JobContext) -> Result:
        """Turn a persistent pool's autostart on or off."""

    @abstractmethod
    def refresh_pool(self, params: m.PoolRef, ctx: JobContext) -> Result:
        """Rescan an active pool's volumes."""

    @abstractmethod
    def list_volumes(self, params: m.StorageVolumeList, ctx: JobContext) -> Result:
        """An active pool's volumes as ``{"volumes": [...]}``."""

    @abstractmethod
    def create_volume(self, params: m.StorageVolumeCreate, ctx: JobContext) -> Result:
        """Create a sparse qcow2 or raw volume; an identical existing one is returned, a
        different one of that name is ``Conflict``."""

    @abstractmethod
    def volume_info(self, params: m.StorageVolumeRef, ctx: JobContext) -> Result:
        """Capacity, allocation (bytes), format and path of a volume."""

    @abstractmethod
    def upload_volume(self, params: m.StorageVolumeUpload, ctx: JobContext) -> Result:
        """Create volume ``name`` from the decoded ``content`` after checking its size, SHA-256
        and format (a qcow2 must start with qcow2's magic, a raw must not); the volume's
        capacity is the content's (a qcow2's virtual size). The same content again returns the
        volume; other content under that name is ``Conflict``. Returns the volume plus
        ``sha256``."""

    @abstractmethod
    def download_volume(self, params: m.StorageVolumeRef, ctx: JobContext) -> Result:
        """The volume's bytes as ``{"content": base64, "size", "sha256", "format"}``; a volume
        over ``PAYLOAD_LIMIT`` bytes is ``InvalidRequest``."""

    @abstractmethod
    def grow_volume(self, params: m.StorageVolumeGrow, ctx: JobContext) -> Result:
        """Grow a volume to ``capacity_mib`` (the same size again returns it; smaller is
        ``Conflict``). A disk of a running VM sees its new size after the VM restarts."""

    @abstractmethod
    def clone_volume(self, params: m.StorageVolumeClone, ctx: JobContext) -> Result:
        """A new volume ``target`` in the same pool: a qcow2 overlay backed by the source
        (``backing``) or a full copy. An existing ``target`` made from the same source is
        returned; anything else of that name is ``Conflict``."""

    @abstractmethod
    def delete_volume(self, params: m.StorageVolumeRef, ctx: JobContext) -> Result:
        """Delete a volume and its data."""

    # --- networks --------------------------------------------------------------------------------

    @abstractmethod
    def list_networks(self, params: NoParams, ctx: JobContext) -> Result:
        """All virtual networks as ``{"networks": [...]}``."""

    @abstractmethod
    def define_network(self, params: m.VmNetworkDefine, ctx: JobContext) -> Result:
        """Define (or create transient) a NAT, routed or isolated network, then start and
        autostart it as asked. The same spec again returns the existing network; another of
        that name is ``Conflict``. A network this call defined is removed if starting fails."""

    @abstractmethod
    def network_info(self, params: m.VmNetworkRef, ctx: JobContext) -> Result:
        """Mode, bridge, subnet, gateway, DHCP range, active, persistent, autostart."""

    @abstractmethod
    def start_network(self, params: m.VmNetworkRef, ctx: JobContext) -> Result:
        """Activate an inactive network."""

    @abstractmethod
    def destroy_network(self, params: m.VmNetworkRef, ctx: JobContext) -> Result:
        """Deactivate a network (a transient one is gone afterwards)."""

    @abstractmethod
    def undefine_network(self, params: m.VmNetworkRef, ctx: JobContext) -> Result:
        """Remove an inactive network's definition (an active one is ``Conflict``)."""

    @abstractmethod
    def set_network_autostart(self, params: m.VmNetworkAutostart, ctx: JobContext) -> Result:
        """Turn a persistent network's autostart on or off."""

    @abstractmethod
    def network_leases(self, params: m.VmNetworkRef, ctx: JobContext) -> Result:
        """An active network's DHCP leases as ``{"leases": [...]}``."""
