"""The relay's middleware chain: an unexpected failure refuses the message, isolated."""

from __future__ import annotations

import pytest

from agents.middleware import Chain, Middleware, RelayMessage
from nube.errors import MiddlewareFailed, NubeError


class Record(Middleware):
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def before_relay(self, message: RelayMessage) -> None:
        self.seen.append("before")

    def after_relay(self, message: RelayMessage, error: NubeError | None) -> None:
        self.seen.append(f"after:{error.code if error else None}")


class Broken(Middleware):
    def before_relay(self, message: RelayMessage) -> None:
        raise RuntimeError("bug")

    def after_relay(self, message: RelayMessage, error: NubeError | None) -> None:
        raise RuntimeError("bug in an after-hook")


def test_an_unexpected_failure_is_a_named_refusal_and_after_hooks_still_run() -> None:
    seen: list[str] = []
    chain = Chain([Record(seen), Broken(), Record(["never"])])
    message = RelayMessage(job_id="j", operation="vms.list", tenant="t", params={})
    with pytest.raises(MiddlewareFailed) as raised:
        chain.before(message)
    assert raised.value.code == "internal" and "Broken" in raised.value.message
    chain.after(message, raised.value)  # the broken after-hook is logged, not raised
    assert seen == ["before", "after:internal"]
