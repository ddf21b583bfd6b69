"""Virtual machine operations (libvirt), served by the ``vms`` queue.

Domains, their snapshots, storage pools and volumes, and virtual networks. Operations that are
``pinned`` act on an existing VM, which lives on one node (its representation's ``node``); the
agent routes them to ``vms.<node>``. Pool and network changes need ``admin``: they are node
infrastructure shared by every tenant, and libvirt keeps no owner on them.
"""

from __future__ import annotations

from nube.catalog import NoParams, Operation, Params
from nube.catalog import vm_models as m

__all__ = ["OPERATIONS"]


def _op(
    action: str,
    params: type[Params],
    method: str,
    path: str,
    summary: str,
    handler: str,
    **extra: object,
) -> Operation:
    """An operation of the ``vms`` service; reads get the ``read`` scope."""
    scope = "read" if method == "GET" else "write"
    options: dict[str, object] = {"scope": scope, "time_limit": 60}
    if "name" in params.model_fields:
        options["target"] = "name"
    options.update(extra)
    return Operation(
        f"vms.{action}",
        params,
        method,
        path,
        summary,
        handler,
        **options,  # type: ignore[arg-type]
    )


def _vm(*args: object, **extra: object) -> Operation:
    """An operation on an existing VM: pinned to the node where it lives."""
    return _op(*args, **{"pinned": True, **extra})  # type: ignore[arg-type]


VM = "/v1/vms/<name>"
POOL = "/v1/storage-pools/<name>"
VOL = "/v1/storage-pools/<pool>/volumes"
NET = "/v1/vm-networks/<name>"

_NODE = [
    _op(
        "hypervisor_info",
        NoParams,
        "GET",
        "/v1/hypervisors",
        "Hypervisor and node information of the VM worker's libvirt connection",
        "hypervisor_info",
        time_limit=30,
    ),
]

_DOMAINS = [
    _op(
        "list",
        m.VmList,
        "GET",
        "/v1/vms",
        "List the caller's virtual machines",
        "list_domains",
        time_limit=30,
        counted_kind="vms",
        lists_all=m.VmList(state="all"),
    ),
    _op(
        "define",
        m.VmDefine,
        "POST",
        "/v1/vms",
        "Define (persistent) or create (transient) a virtual machine from a spec",
        "define_domain",
        creates=True,
        counted_kind="vms",
        time_limit=300,
        places=True,
    ),
    _vm(
        "info",
        m.VmInfo,
        "GET",
        VM,
        "State, memory, vCPUs, CPU time and allowed actions",
        "domain_info",
        time_limit=30,
    ),
    _vm(
        "xml",
        m.VmRef,
        "GET",
        f"{VM}/xml",
        "The domain's libvirt XML (admins only)",
        "domain_xml",
        scope="admin",
        time_limit=30,
    ),
    _vm("start", m.VmRef, "POST", f"{VM}/start", "Start a defined (or saved) VM", "start_domain"),
    _vm(
        "shutdown",
        m.VmShutdown,
        "POST",
        f"{VM}/shutdown",
        "Graceful shutdown with a timeout, then optionally destroy",
        "shutdown_domain",
        time_limit=330,
    ),
    _vm("destroy", m.VmRef, "POST", f"{VM}/destroy", "Power off at once", "destroy_domain"),
    _vm("reboot", m.VmReboot, "POST", f"{VM}/reboot", "Reboot (ACPI) or reset", "reboot_domain"),
    _vm("suspend", m.VmRef, "POST", f"{VM}/suspend", "Pause a running VM", "suspend_domain"),
    _vm("resume", m.VmRef, "POST", f"{VM}/resume", "Resume a paused VM", "resume_domain"),
    _vm(
        "save",
        m.VmRef,
        "POST",
        f"{VM}/save",
        "Save memory to a managed file and stop",
        "save_domain",
        time_limit=300,
    ),
    _vm(
        "restore",
        m.VmRef,
        "POST",
        f"{VM}/restore",
        "Restore a saved VM from its managed file",
        "restore_domain",
        time_limit=300,
    ),
    _vm(
        "undefine",
        m.VmUndefine,
        "DELETE",
        VM,
        "Remove a stopped VM, optionally its storage",
        "undefine_domain",
        time_limit=120,
        releases=True,
    ),
    _vm(
        "autostart",
        m.VmAutostart,
        "POST",
        f"{VM}/autostart",
        "Autostart on or off",
        "set_domain_autostart",
    ),
    _vm(
        "console",
        m.VmConsole,
        "GET",
        f"{VM}/console",
        "The serial console's output (the last lines)",
        "domain_console",
        time_limit=30,
    ),
    _vm(
        "stats",
        m.VmRef,
        "GET",
        f"{VM}/stats",
        "CPU, memory, block and network counters",
        "domain_stats",
        time_limit=30,
    ),
    _vm(
        "resize",
        m.VmResize,
        "POST",
        f"{VM}/resize",
        "Change memory and vCPUs (live up to the maximum, and the definition)",
        "resize_domain",
    ),
    _vm(
        "disk_attach",
        m.VmDiskAttach,
        "POST",
        f"{VM}/disks",
        "Attach a disk (live and persistent)",
        "attach_disk",
        time_limit=120,
    ),
    _vm(
        "disk_detach",
        m.VmDiskDetach,
        "DELETE",
        f"{VM}/disks/<target>",
        "Detach a disk (its volume stays)",
        "detach_disk",
        time_limit=120,
    ),
    _vm(
        "nic_attach",
        m.VmNicAttach,
        "POST",
        f"{VM}/nics",
        "Attach a network interface (live and persistent)",
        "attach_nic",
    ),
    _vm(
        "nic_detach",
        m.VmNicDetach,
        "DELETE",
        f"{VM}/nics/<mac>",
        "Detach a network interface",
        "detach_nic",
    ),
    _vm(
        "snapshot_create",
        m.SnapshotCreate,
        "POST",
        f"{VM}/snapshots",
        "Take an internal snapshot (qcow2 disks)",
        "create_snapshot",
        creates=True,
        time_limit=300,
    ),
    _vm(
        "snapshot_list",
        m.VmRef,
        "GET",
        f"{VM}/snapshots",
        "List a VM's snapshots",
        "list_snapshots",
        time_limit=30,
    ),
    _vm(
        "snapshot_revert",
        m.SnapshotRef,
        "POST",
        f"{VM}/snapshots/<snapshot>/revert",
        "Revert a VM to a snapshot",
        "revert_snapshot",
        time_limit=300,
    ),
    _vm(
        "snapshot_delete",
        m.SnapshotRef,
        "DELETE",
        f"{VM}/snapshots/<snapshot>",
        "Delete a snapshot",
        "delete_snapshot",
        time_limit=300,
    ),
]

_POOLS = [
    _op(
        "pool_list",
        NoParams,
        "GET",
        "/v1/storage-pools",
        "List storage pools",
        "list_pools",
        time_limit=30,
    ),
    _op(
        "pool_define",
        m.PoolDefine,
        "POST",
        "/v1/storage-pools",
        "Define (or create) a directory pool, build and start it",
        "define_pool",
        creates=True,
        scope="admin",
    ),
    _op(
        "pool_info",
        m.PoolRef,
        "GET",
        POOL,
        "State, capacity, allocation, available, volumes",
        "pool_info",
        time_limit=30,
    ),
    _op(
        "pool_build",
        m.PoolRef,
        "POST",
        f"{POOL}/build",
        "Create the pool's directory",
        "build_pool",
        scope="admin",
    ),
    _op(
        "pool_start",
        m.PoolRef,
        "POST",
        f"{POOL}/start",
        "Start a pool",
        "start_pool",
        scope="admin",
    ),
    _op(
        "pool_destroy",
        m.PoolRef,
        "POST",
        f"{POOL}/destroy",
        "Stop a pool (keeps its data)",
        "destroy_pool",
        scope="admin",
    ),
    _op(
        "pool_undefine",
        m.PoolUndefine,
        "DELETE",
        POOL,
        "Remove an inactive pool",
        "undefine_pool",
        scope="admin",
    ),
    _op(
        "pool_autostart",
        m.PoolAutostart,
        "POST",
        f"{POOL}/autostart",
        "Autostart on or off",
        "set_pool_autostart",
        scope="admin",
    ),
    _op(
        "pool_refresh",
        m.PoolRef,
        "POST",
        f"{POOL}/refresh",
        "Rescan the pool's volumes",
        "refresh_pool",
    ),
    _op(
        "volume_list",
        m.StorageVolumeList,
        "GET",
        VOL,
        "List a pool's volumes",
        "list_volumes",
        time_limit=30,
        target="pool",
    ),
    _op(
        "volume_create",
        m.StorageVolumeCreate,
        "POST",
        VOL,
        "Create a qcow2 or raw volume",
        "create_volume",
        creates=True,
        time_limit=300,
    ),
    _op(
        "volume_info",
        m.StorageVolumeRef,
        "GET",
        f"{VOL}/<name>",
        "Capacity, allocation, format, path",
        "volume_info",
        time_limit=30,
    ),
    _op(
        "volume_upload",
        m.StorageVolumeUpload,
        "PUT",
        f"{VOL}/<name>/content",
        "Import raw or qcow2 content into a new volume (size and SHA-256 checked)",
        "upload_volume",
        creates=True,
        time_limit=300,
        binary=("content",),
    ),
    _op(
        "volume_download",
        m.StorageVolumeRef,
        "GET",
        f"{VOL}/<name>/content",
        "A volume's content (base64, at most 16 MiB) with its SHA-256",
        "download_volume",
        time_limit=300,
    ),
    _op(
        "volume_grow",
        m.StorageVolumeGrow,
        "POST",
        f"{VOL}/<name>/grow",
        "Grow a volume (its guest grows its file system itself)",
        "grow_volume",
        time_limit=120,
    ),
    _op(
        "volume_clone",
        m.StorageVolumeClone,
        "POST",
        f"{VOL}/<name>/clone",
        "Copy a volume (a qcow2 overlay backed by it, or a full copy)",
        "clone_volume",
        creates=True,
        time_limit=300,
    ),
    _op(
        "volume_delete",
        m.StorageVolumeRef,
        "DELETE",
        f"{VOL}/<name>",
        "Delete a volume",
        "delete_volume",
        time_limit=120,
    ),
]

_NETWORKS = [
    _op(
        "network_list",
        NoParams,
        "GET",
        "/v1/vm-networks",
        "List virtual networks",
        "list_networks",
        time_limit=30,
    ),
    _op(
        "network_define",
        m.VmNetworkDefine,
        "POST",
        "/v1/vm-networks",
        "Define (or create) a NAT, routed or isolated network",
        "define_network",
        creates=True,
        scope="admin",
    ),
    _op(
        "network_info",
        m.VmNetworkRef,
        "GET",
        NET,
        "Mode, bridge, addresses, state",
        "network_info",
        time_limit=30,
    ),
    _op(
        "network_start",
        m.VmNetworkRef,
        "POST",
        f"{NET}/start",
        "Start a network",
        "start_network",
        scope="admin",
    ),
    _op(
        "network_destroy",
        m.VmNetworkRef,
        "POST",
        f"{NET}/destroy",
        "Stop a network",
        "destroy_network",
        scope="admin",
    ),
    _op(
        "network_undefine",
        m.VmNetworkRef,
        "DELETE",
        NET,
        "Remove an inactive network",
        "undefine_network",
        scope="admin",
    ),
    _op(
        "network_autostart",
        m.VmNetworkAutostart,
        "POST",
        f"{NET}/autostart",
        "Autostart on or off",
        "set_network_autostart",
        scope="admin",
    ),
    _op(
        "network_leases",
        m.VmNetworkRef,
        "GET",
        f"{NET}/leases",
        "DHCP leases of a network",
        "network_leases",
        time_limit=30,
    ),
]

OPERATIONS = _NODE + _DOMAINS + _POOLS + _NETWORKS
