"""Domain life cycle: list, info, XML, start, shutdown, destroy, reboot, suspend, resume, save,
restore, undefine, autostart. Every action checks the state table first (``Conflict``)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import libvirt
from libvirt import virDomain as Dom

from nube.catalog import vm_models as m
from nube.errors import Forbidden, Timeout
from workers.drivers.base import JobContext
from workers.drivers.libvirt.base import LibvirtBase, error_code
from workers.drivers.libvirt.guests import (
    describe,
    gone,
    owned_domain,
    owner_of,
    state_of,
)
from workers.drivers.libvirt.provision import CONSOLE_LOG_DIR, SEED_TAG
from workers.drivers.libvirt.xml import parse_domain
from workers.drivers.names import user_name
from workers.drivers.vm_states import VmAction, VmState, require

_LIST_FLAGS = {
    "all": 0,
    "active": libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE,
    "inactive": libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE,
    "persistent": libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT,
    "transient": libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT,
    "running": libvirt.VIR_CONNECT_LIST_DOMAINS_RUNNING,
    "paused": libvirt.VIR_CONNECT_LIST_DOMAINS_PAUSED,
    "shutoff": libvirt.VIR_CONNECT_LIST_DOMAINS_SHUTOFF,
}
_UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
)
_NO_VOLUME = (libvirt.VIR_ERR_NO_STORAGE_POOL, libvirt.VIR_ERR_NO_STORAGE_VOL)
POLL_SECONDS = 0.1


class DomainsMixin(LibvirtBase):
    """The domain operations of :class:`~workers.drivers.hypervisor.HypervisorDriver`."""

    # --- reads -----------------------------------------------------------------------------------

    def list_domains(self, params: m.VmList, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.list_domains`."""
        return self._run(lambda c: {"vms": self._list(c, params.state, ctx)})

    def _list(self, conn: libvirt.virConnect, state: str, ctx: JobContext) -> list[Any]:
        vms = []
        for dom in conn.listAllDomains(_LIST_FLAGS[state]):
            try:
                owner = owner_of(dom)
                if owner is not None and owner.tenant == ctx.tenant:
                    vms.append(describe(dom, owner, self.node))
            except libvirt.libvirtError as err:
                if error_code(err) != libvirt.VIR_ERR_NO_DOMAIN:  # vanished meanwhile
                    raise
        return sorted(vms, key=lambda vm: vm["name"])

    def domain_info(self, params: m.VmInfo, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.domain_info`."""
        found = self._run(lambda c: describe(*owned_domain(c, params.name, ctx), self.node))
        if params.stats:
            stats = self.domain_stats(m.VmRef(name=params.name), ctx)  # type: ignore[attr-defined]
            found["stats"] = {k: v for k, v in stats.items() if k not in ("name", "state")}
        return found

    def domain_xml(self, params: m.VmRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.domain_xml`."""
        if not ctx.admin:
            raise Forbidden(scope="admin")
        dom_xml = self._run(lambda c: owned_domain(c, params.name, ctx)[0].XMLDesc(0))
        return {"name": params.name, "xml": dom_xml}

    # --- actions ---------------------------------------------------------------------------------

    def _act(
        self, name: str, ctx: JobContext, action: VmAction, fn: Callable[[Dom], object]
    ) -> dict[str, Any]:
        """Check ``action`` against the state table, run ``fn``, describe the result."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            dom, owner = owned_domain(conn, name, ctx)
            persistent = bool(dom.isPersistent())
            require(action, state_of(dom), persistent, name)
            fn(dom)
            return self._after(dom, owner)

        return self._run(call)

    def _after(self, dom: Dom, owner: Any) -> dict[str, Any]:
        """Describe ``dom`` after an action; a stopped transient or undefined domain is gone."""
        try:
            return describe(dom, owner, self.node)
        except libvirt.libvirtError as err:
            if error_code(err) != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            tenant = owner.tenant if owner else None
            return gone(user_name(dom.name(), tenant), self.node, tenant)

    def start_domain(self, params: m.VmRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.start_domain`."""
        return self._act(params.name, ctx, VmAction.START, lambda d: d.create())

    def destroy_domain(self, params: m.VmRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.destroy_domain`."""
        return self._act(params.name, ctx, VmAction.DESTROY, lambda d: d.destroy())

    def suspend_domain(self, params: m.VmRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.suspend_domain`."""
        return self._act(params.name, ctx, VmAction.SUSPEND, lambda d: d.suspend())

    def resume_domain(self, params: m.VmRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.resume_domain`."""
        return self._act(params.name, ctx, VmAction.RESUME, lambda d: d.resume())

    def save_domain(self, params: m.VmRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.save_domain`."""
        # SAVE_RUNNING: a VM saved while paused restores running, as the state table says
        flag = libvirt.VIR_DOMAIN_SAVE_RUNNING
        return self._act(params.name, ctx, VmAction.SAVE, lambda d: d.managedSave(flag))

    def restore_domain(self, params: m.VmRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.restore_domain`."""
        return self._act(params.name, ctx, VmAction.RESTORE, lambda d: d.create())

    def reboot_domain(self, params: m.VmReboot, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.reboot_domain`."""
        if params.hard:
            return self._act(params.name, ctx, VmAction.REBOOT, lambda d: d.reset(0))
        return self._act(params.name, ctx, VmAction.REBOOT, lambda d: d.reboot(0))

    def set_domain_autostart(self, params: m.VmAutostart, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.set_domain_autostart`."""
        flag = int(params.enabled)
        return self._act(params.name, ctx, VmAction.AUTOSTART, lambda d: d.setAutostart(flag))

    def shutdown_domain(self, params: m.VmShutdown, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.shutdown_domain`."""
        outcome: dict[str, bool] = {}

        def shutdown(dom: Dom) -> None:
            outcome.update(self._shutdown(dom, params, ctx))

        return {**self._act(params.name, ctx, VmAction.SHUTDOWN, shutdown), **outcome}

    def _shutdown(self, dom: Dom, params: m.VmShutdown, ctx: JobContext) -> dict[str, bool]:
        dom.shutdown()
        if _wait_off(dom, params.timeout, ctx):
            return {"graceful": True, "forced": False}
        if not params.force:
            raise Timeout(
                f"VM '{params.name}' did not power off within {params.timeout} s; "
                "pass force=true to destroy it after the timeout",
                limit=params.timeout,
            )
        dom.destroy()
        return {"graceful": False, "forced": True}

    def undefine_domain(self, params: m.VmUndefine, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.undefine_domain`."""
        removed: list[str] = []

        def undefine(dom: Dom) -> None:
            spec = parse_domain(dom.XMLDesc(0))
            all_disks = spec.disks
            disks = [d for d in all_disks if d.device == "disk"]
            seeds = [d for d in all_disks if d.device == "cdrom" and SEED_TAG in d.volume]
            dom.undefineFlags(_UNDEFINE_FLAGS)
            _delete_volumes(dom.connect(), seeds)  # the cloud-init seed goes with the VM
            _remove_console_log(spec.console_log)
            if params.remove_storage:
                removed.extend(_delete_volumes(dom.connect(), disks))

        after = self._act(params.name, ctx, VmAction.UNDEFINE, undefine)
        return {**after, "removed_volumes": removed}


def _remove_console_log(path: str | None) -> None:
    """The console log goes with the VM (nube's own file under the log directory, on this
    host; a remote connection's is left to its host)."""
    if path and path.startswith(f"{CONSOLE_LOG_DIR}/") and path.endswith("-console.log"):
        with contextlib.suppress(OSError):
            os.remove(path)


def _wait_off(dom: Dom, timeout: float, ctx: JobContext) -> bool:
    """Poll until ``dom`` is off (or gone, when transient); ``False`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if state_of(dom) in (VmState.DEFINED, VmState.SAVED):
                return True
        except libvirt.libvirtError as err:
            if error_code(err) == libvirt.VIR_ERR_NO_DOMAIN:
                return True
            raise
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ctx.report_progress({"waiting_for": "power-off", "seconds_left": round(left, 1)})
        time.sleep(min(POLL_SECONDS, left))


def _delete_volumes(conn: libvirt.virConnect, disks: list[Any]) -> list[str]:
    """Delete the volumes of ``disks`` that still exist; their ``pool/volume`` names."""
    removed = []
    for disk in disks:
        try:
            conn.storagePoolLookupByName(disk.pool).storageVolLookupByName(disk.volume).delete(0)
            removed.append(f"{disk.pool}/{disk.volume}")
        except libvirt.libvirtError as err:
            if error_code(err) not in _NO_VOLUME:
                raise
    return removed
