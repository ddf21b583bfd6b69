"""The domain life cycle as one state table.

States: ``undefined`` (no such domain), ``defined`` (shut off), ``running``, ``paused`` and
``saved`` (shut off with a managed save image). Each action lists the states it may start from
and whether it needs a persistent domain; anything else is a :class:`~nube.errors.Conflict`.
Part of the :class:`~workers.drivers.hypervisor.HypervisorDriver` contract: every hypervisor
driver (libvirt, the fake) decides its actions and ``allowed_actions`` with this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from nube.errors import Conflict


class VmState(StrEnum):
    UNDEFINED = "undefined"
    DEFINED = "defined"
    RUNNING = "running"
    PAUSED = "paused"
    SAVED = "saved"


class VmAction(StrEnum):
    DEFINE = "define"
    START = "start"
    SHUTDOWN = "shutdown"
    DESTROY = "destroy"
    REBOOT = "reboot"
    SUSPEND = "suspend"
    RESUME = "resume"
    SAVE = "save"
    RESTORE = "restore"
    UNDEFINE = "undefine"
    AUTOSTART = "autostart"
    SNAPSHOT_CREATE = "snapshot_create"
    SNAPSHOT_REVERT = "snapshot_revert"
    SNAPSHOT_DELETE = "snapshot_delete"
    RESIZE = "resize"
    DISK_ATTACH = "disk_attach"
    DISK_DETACH = "disk_detach"
    NIC_ATTACH = "nic_attach"
    NIC_DETACH = "nic_detach"
    RENAME = "rename"
    CLONE = "clone"
    MIGRATE = "migrate"


@dataclass(frozen=True)
class Transition:
    """Where an action may start, where it leads (``None``: unchanged), persistent-only."""

    sources: frozenset[VmState]
    target: VmState | None
    persistent_only: bool = False


S = VmState
_LIVE = frozenset({S.RUNNING, S.PAUSED})
_EXISTING = frozenset({S.DEFINED, S.RUNNING, S.PAUSED, S.SAVED})

TABLE: dict[VmAction, Transition] = {
    VmAction.DEFINE: Transition(frozenset({S.UNDEFINED}), S.DEFINED),
    VmAction.START: Transition(frozenset({S.DEFINED, S.SAVED}), S.RUNNING, True),
    VmAction.SHUTDOWN: Transition(frozenset({S.RUNNING}), S.DEFINED),
    VmAction.DESTROY: Transition(_LIVE, S.DEFINED),
    VmAction.REBOOT: Transition(frozenset({S.RUNNING}), S.RUNNING),
    VmAction.SUSPEND: Transition(frozenset({S.RUNNING}), S.PAUSED),
    VmAction.RESUME: Transition(frozenset({S.PAUSED}), S.RUNNING),
    VmAction.SAVE: Transition(_LIVE, S.SAVED, True),
    VmAction.RESTORE: Transition(frozenset({S.SAVED}), S.RUNNING, True),
    VmAction.UNDEFINE: Transition(frozenset({S.DEFINED, S.SAVED}), S.UNDEFINED, True),
    VmAction.AUTOSTART: Transition(_EXISTING, None, True),
    VmAction.SNAPSHOT_CREATE: Transition(frozenset({S.DEFINED, S.RUNNING, S.PAUSED}), None),
    VmAction.SNAPSHOT_REVERT: Transition(frozenset({S.DEFINED, S.RUNNING, S.PAUSED}), None),
    VmAction.SNAPSHOT_DELETE: Transition(_EXISTING, None),
    VmAction.RESIZE: Transition(frozenset({S.DEFINED, S.RUNNING, S.PAUSED}), None),
    VmAction.DISK_ATTACH: Transition(frozenset({S.DEFINED, S.RUNNING}), None),
    VmAction.DISK_DETACH: Transition(frozenset({S.DEFINED, S.RUNNING}), None),
    VmAction.NIC_ATTACH: Transition(frozenset({S.DEFINED, S.RUNNING}), None),
    VmAction.NIC_DETACH: Transition(frozenset({S.DEFINED, S.RUNNING}), None),
    VmAction.RENAME: Transition(frozenset({S.DEFINED}), None, True),
    VmAction.CLONE: Transition(frozenset({S.DEFINED}), None, True),
    VmAction.MIGRATE: Transition(frozenset({S.DEFINED, S.RUNNING, S.PAUSED}), None, True),
}
"""The whole life cycle. A transient domain that stops becomes ``undefined``."""


def allowed(action: VmAction, state: VmState, persistent: bool) -> bool:
    """Whether ``action`` may run on a domain in ``state``."""
    rule = TABLE[action]
    return state in rule.sources and (persistent or not rule.persistent_only)


def allowed_actions(state: VmState, persistent: bool) -> list[str]:
    """The actions a VM in ``state`` accepts, in table order (its ``allowed_actions``)."""
    return [a.value for a in TABLE if allowed(a, state, persistent)]


def require(action: VmAction, state: VmState, persistent: bool, name: str) -> None:
    """Raise :class:`Conflict` unless ``action`` is allowed; the error lists what is."""
    if allowed(action, state, persistent):
        return
    kind = "persistent" if persistent else "transient"
    raise Conflict(
        f"cannot {action.value} VM '{name}': it is {state.value} ({kind})",
        name=name,
        state=state.value,
        allowed_actions=allowed_actions(state, persistent),
    )


def target_state(action: VmAction, before: VmState, persistent: bool) -> VmState:
    """The state after ``action``: a transient domain that stops is gone."""
    target = TABLE[action].target or before
    if not persistent and target is VmState.DEFINED:
        return VmState.UNDEFINED
    return target
