"""Redis replies, narrowed to what a test reads.

redis-py declares its replies ``bytes | str`` (``None`` where a key may be missing): which of the
two depends on the client's ``decode_responses``, and its types do not follow it. A test knows its
client: a raw one (``redis.Redis(port=...)``) replies with bytes, :meth:`Stack.redis` and
:func:`nube.redis_client.connect` decode to str. These take that kind and check every value, so
a test that reads through the wrong client fails on the spot instead of comparing bytes to str.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T", bytes, str)


def one(reply: object, kind: type[T]) -> T:
    """A single reply (``GET``, ``LPOP``, ``LINDEX``, an entry id ...) of ``kind``."""
    if not isinstance(reply, kind):
        raise TypeError(f"a Redis reply {reply!r}, not {kind.__name__}")
    return reply


def each(reply: Iterable[object], kind: type[T]) -> list[T]:
    """A list reply (``LRANGE``, ``SMEMBERS``, ``ZRANGE``, ``SCAN`` ...) of ``kind``."""
    return [one(value, kind) for value in reply]


def fields(reply: Mapping[Any, Any] | None, kind: type[T]) -> dict[T, T]:
    """A hash (``HGETALL``) or a stream entry's fields."""
    return {one(key, kind): one(value, kind) for key, value in (reply or {}).items()}


def entries(
    reply: Iterable[tuple[object, Mapping[Any, Any] | None]] | None, kind: type[T]
) -> list[tuple[T, dict[T, T]]]:
    """A stream's entries (``XRANGE``, ``XREVRANGE``): ``(id, fields)``, in the reply's order."""
    return [(one(entry_id, kind), fields(values, kind)) for entry_id, values in reply or []]
