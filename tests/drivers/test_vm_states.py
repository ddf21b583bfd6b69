"""The domain life-cycle table every hypervisor driver shares (workers/drivers/vm_states.py)."""

from __future__ import annotations

import pytest

from nube.errors import Conflict
from workers.drivers.vm_states import (
    TABLE,
    VmAction,
    VmState,
    allowed,
    allowed_actions,
    require,
    target_state,
)

S, A = VmState, VmAction


def test_every_action_has_a_rule() -> None:
    assert set(TABLE) == set(VmAction)


@pytest.mark.parametrize(
    ("action", "state", "persistent", "ok"),
    [
        (A.START, S.DEFINED, True, True),
        (A.START, S.RUNNING, True, False),
        (A.START, S.SAVED, True, True),
        (A.SUSPEND, S.DEFINED, True, False),
        (A.SUSPEND, S.RUNNING, False, True),
        (A.RESUME, S.PAUSED, True, True),
        (A.RESUME, S.RUNNING, True, False),
        (A.SAVE, S.RUNNING, False, False),
        (A.SAVE, S.PAUSED, True, True),
        (A.RESTORE, S.DEFINED, True, False),
        (A.UNDEFINE, S.RUNNING, True, False),
        (A.UNDEFINE, S.SAVED, True, True),
        (A.DESTROY, S.DEFINED, True, False),
        (A.SHUTDOWN, S.PAUSED, True, False),
        (A.AUTOSTART, S.RUNNING, False, False),
        (A.DEFINE, S.UNDEFINED, True, True),
        (A.DEFINE, S.DEFINED, True, False),
    ],
)
def test_allowed(action: VmAction, state: VmState, persistent: bool, ok: bool) -> None:
    assert allowed(action, state, persistent) is ok


def test_allowed_actions_of_a_running_vm() -> None:
    assert allowed_actions(S.RUNNING, True) == [
        "shutdown",
        "destroy",
        "reboot",
        "suspend",
        "save",
        "autostart",
        "snapshot_create",
        "snapshot_revert",
        "snapshot_delete",
        "resize",
        "disk_attach",
        "disk_detach",
        "nic_attach",
        "nic_detach",
        "migrate",
    ]
    assert "save" not in allowed_actions(S.RUNNING, False)
    # a paused VM may be resized (up to its maximum) but takes no new devices
    paused = allowed_actions(S.PAUSED, True)
    assert "resize" in paused and "disk_attach" not in paused and "nic_detach" not in paused
    assert "resize" not in allowed_actions(S.SAVED, True)
    assert allowed_actions(S.UNDEFINED, True) == ["define"]


def test_require_names_the_allowed_actions() -> None:
    with pytest.raises(Conflict) as err:
        require(A.SUSPEND, S.DEFINED, True, "vm1")
    assert err.value.status == 409
    assert "start" in err.value.details["allowed_actions"]


def test_transient_domains_vanish_when_stopped() -> None:
    assert target_state(A.DESTROY, S.RUNNING, False) is S.UNDEFINED
    assert target_state(A.DESTROY, S.RUNNING, True) is S.DEFINED
    assert target_state(A.AUTOSTART, S.PAUSED, True) is S.PAUSED
