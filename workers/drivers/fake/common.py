"""What the fake drivers share: one lock per driver, ids, timestamps."""

from __future__ import annotations

import functools
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


def serialized(names: frozenset[str]) -> Callable[[T], T]:
    """Class decorator: run each method named in ``names`` under the instance's ``_lock``.

    A worker may run jobs on threads; the fake's state is plain dicts, so one call at a time.
    """

    def decorate(cls: T) -> T:
        for name in names:
            setattr(cls, name, _locked(getattr(cls, name)))
        return cls

    return decorate


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class FakeBase:
    """The lock every fake driver holds while it runs an operation."""

    def __init__(self) -> None:
        self._lock = threading.RLock()


def hex_id(n: int = 64) -> str:
    """A random lower-case hex id (64 characters, as the engine's ids are)."""
    return secrets.token_hex(n // 2)


def now_iso() -> str:
    """The current time as RFC 3339 with nanosecond digits, like the engine's timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
