"""Where a test looks for a value that must never be readable outside the API: every Redis key,
the Redis append-only file, and the stack's log files."""

from __future__ import annotations

from pathlib import Path

import redis

from nube.tools.devstack import Stack
from tests.redis_replies import each, entries, fields, one


def all_key_dumps(stack: Stack) -> bytes:
    """Every key's name, its ``DUMP`` and its readable value (``DUMP`` may LZF-compress a long
    string, so strings are also read with ``GET``, hashes with ``HGETALL`` and so on)."""
    raw = redis.Redis(port=stack.redis_port, password=stack.redis_password)
    out: list[bytes] = []
    for key in each(raw.scan_iter(count=500), bytes):
        out += [key, one(raw.dump(key) or b"", bytes)]
        kind = raw.type(key)
        if kind == b"string":
            out.append(one(raw.get(key) or b"", bytes))
        elif kind == b"hash":
            for field, value in fields(raw.hgetall(key), bytes).items():
                out += [field, value]
        elif kind == b"list":
            out += each(raw.lrange(key, 0, -1), bytes)
        elif kind == b"set":
            out += each(raw.smembers(key), bytes)
        elif kind == b"zset":
            out += each(raw.zrange(key, 0, -1), bytes)
        elif kind == b"stream":
            for entry_id, values in entries(raw.xrange(key), bytes):
                out.append(entry_id)
                for field, value in values.items():
                    out += [field, value]
    return b"\n".join(out)


def files_holding(root: Path, needle: str, pattern: str = "*") -> list[Path]:
    """The files under ``root`` (recursively) matching ``pattern`` whose bytes hold ``needle``."""
    return [
        path
        for path in sorted(root.rglob(pattern))
        if path.is_file() and needle.encode() in path.read_bytes()
    ]


def aof_files(stack: Stack) -> list[Path]:
    """Redis's append-only files in the stack's workdir (``appendonlydir/`` on Redis 7)."""
    return [p for p in stack.workdir.rglob("*.aof*") if p.is_file()]
