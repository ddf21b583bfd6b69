"""Virtual machine operations (libvirt), served by the ``vms`` queue.

Domains, their snapshots, storage pools and volumes, and virtual networks. Operations that are
``pinned`` act on an existing VM, which lives on one node (its representation's ``node``); the
agent routes them to ``vms.<node>``. Pool and network changes need ``admin``: they are node
infrastructure shared by every tenant, and libvirt keeps no owner on them.
"""

from __future__ import annotations

from nube.catalog import NoParams, Operation, Params
from nube.catalog.vm_models import (
    PoolAutostart,
    PoolDefine,
    PoolRef,
    PoolUndefine,
    SnapshotCreate,
    SnapshotRef,
    StorageVolumeCreate,
    StorageVolumeList,
    StorageVolumeRef,
    VmAutostart,
    VmDefine,
    VmList,
    VmNetworkAutostart,
    VmNetworkDefine,
    VmNetworkRef,
    VmReboot,
    VmRef,
    VmShutdown,
    VmUndefine,
)

__all__ = ["OPERATIONS", "VmList"]


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
        VmList,
        "GET",
        "/v1/vms",
        "List the caller's virtual machines",
        "list_domains",
        time_limit=30,
        counted_kind="vms",
        lists_all=VmList(state="all"),
    ),
    _op(
        "define",
        VmDefine,
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
        VmRef,
        "GET",
        VM,
        "State, memory, vCPUs, CPU time and allowed actions",
        "domain_info",
        time_limit=30,
    ),
    _vm(
        "xml",
        VmRef,
        "GET",
        f"{VM}/xml",
        "The domain's libvirt XML (admins only)",
        "domain_xml",
        scope="admin",
        time_limit=30,
    ),
    _vm("start", VmRef, "POST", f"{VM}/start", "Start a defined (or saved) VM", "start_domain"),
    _vm(
        "shutdown",
        VmShutdown,
        "POST",
        f"{VM}/shutdown",
        "Graceful shutdown with a timeout, then optionally destroy",
        "shutdown_domain",
        time_limit=330,
    ),
    _vm("destroy", VmRef, "POST", f"{VM}/destroy", "Power off at once", "destroy_domain"),
    _vm("reboot", VmReboot, "POST", f"{VM}/reboot", "Reboot (ACPI) or reset", "reboot_domain"),
    _vm("suspend", VmRef, "POST", f"{VM}/suspend", "Pause a running VM", "suspend_domain"),
    _vm("resume", VmRef, "POST", f"{VM}/resume", "Resume a paused VM", "resume_domain"),
    _vm(
        "save",
        VmRef,
        "POST",
        f"{VM}/save",
        "Save memory to a managed file and stop",
        "save_domain",
        time_limit=300,
    ),
    _vm(
        "restore",
        VmRef,
        "POST",
        f"{VM}/restore",
        "Restore a saved VM from its managed file",
        "restore_domain",
        time_limit=300,
    ),
    _vm(
        "undefine",
        VmUndefine,
        "DELETE",
        VM,
        "Remove a stopped VM, optionally its storage",
        "undefine_domain",
        time_limit=120,
        releases=True,
    ),
    _vm(
        "autostart",
        VmAutostart,
        "POST",
        f"{VM}/autostart",
        "Autostart on or off",
        "set_domain_autostart",
    ),
    _vm(
        "snapshot_create",
        SnapshotCreate,
        "POST",
        f"{VM}/snapshots",
        "Take an internal snapshot (qcow2 disks)",
        "create_snapshot",
        creates=True,
        time_limit=300,
    ),
    _vm(
        "snapshot_list",
        VmRef,
        "GET",
        f"{VM}/snapshots",
        "List a VM's snapshots",
        "list_snapshots",
        time_limit=30,
    ),
    _vm(
        "snapshot_revert",
        SnapshotRef,
        "POST",
        f"{VM}/snapshots/<snapshot>/revert",
        "Revert a VM to a snapshot",
        "revert_snapshot",
        time_limit=300,
    ),
    _vm(
        "snapshot_delete",
        SnapshotRef,
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
        PoolDefine,
        "POST",
        "/v1/storage-pools",
        "Define (or create) a directory pool, build and start it",
        "define_pool",
        creates=True,
        scope="admin",
    ),
    _op(
        "pool_info",
        PoolRef,
        "GET",
        POOL,
        "State, capacity, allocation, available, volumes",
        "pool_info",
        time_limit=30,
    ),
    _op(
        "pool_build",
        PoolRef,
        "POST",
        f"{POOL}/build",
        "Create the pool's directory",
        "build_pool",
        scope="admin",
    ),
    _op(
        "pool_start", PoolRef, "POST", f"{POOL}/start", "Start a pool", "start_pool", scope="admin"
    ),
    _op(
        "pool_destroy",
        PoolRef,
        "POST",
        f"{POOL}/destroy",
        "Stop a pool (keeps its data)",
        "destroy_pool",
        scope="admin",
    ),
    _op(
        "pool_undefine",
        PoolUndefine,
        "DELETE",
        POOL,
        "Remove an inactive pool",
        "undefine_pool",
        scope="admin",
    ),
    _op(
        "pool_autostart",
        PoolAutostart,
        "POST",
        f"{POOL}/autostart",
        "Autostart on or off",
        "set_pool_autostart",
        scope="admin",
    ),
    _op(
        "pool_refresh",
        PoolRef,
        "POST",
        f"{POOL}/refresh",
        "Rescan the pool's volumes",
        "refresh_pool",
    ),
    _op(
        "volume_list",
        StorageVolumeList,
        "GET",
        VOL,
        "List a pool's volumes",
        "list_volumes",
        time_limit=30,
        target="pool",
    ),
    _op(
        "volume_create",
        StorageVolumeCreate,
        "POST",
        VOL,
        "Create a qcow2 or raw volume",
        "create_volume",
        creates=True,
        time_limit=300,
    ),
    _op(
        "volume_info",
        StorageVolumeRef,
        "GET",
        f"{VOL}/<name>",
        "Capacity, allocation, format, path",
        "volume_info",
        time_limit=30,
    ),
    _op(
        "volume_delete",
        StorageVolumeRef,
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
        VmNetworkDefine,
        "POST",
        "/v1/vm-networks",
        "Define (or create) a NAT, routed or isolated network",
        "define_network",
        creates=True,
        scope="admin",
    ),
    _op(
        "network_info",
        VmNetworkRef,
        "GET",
        NET,
        "Mode, bridge, addresses, state",
        "network_info",
        time_limit=30,
    ),
    _op(
        "network_start",
        VmNetworkRef,
        "POST",
        f"{NET}/start",
        "Start a network",
        "start_network",
        scope="admin",
    ),
    _op(
        "network_destroy",
        VmNetworkRef,
        "POST",
        f"{NET}/destroy",
        "Stop a network",
        "destroy_network",
        scope="admin",
    ),
    _op(
        "network_undefine",
        VmNetworkRef,
        "DELETE",
        NET,
        "Remove an inactive network",
        "undefine_network",
        scope="admin",
    ),
    _op(
        "network_autostart",
        VmNetworkAutostart,
        "POST",
        f"{NET}/autostart",
        "Autostart on or off",
        "set_network_autostart",
        scope="admin",
    ),
    _op(
        "network_leases",
        VmNetworkRef,
        "GET",
        f"{NET}/leases",
        "DHCP leases of a network",
        "network_leases",
        time_limit=30,
    ),
]

OPERATIONS = _NODE + _DOMAINS + _POOLS + _NETWORKS
