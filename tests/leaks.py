"""Where a test looks for a value that must never be readable outside the API: every Redis key,
the Redis append-only file, and the stack's log files."""

from __future__ import annotations

from pathlib import Path

import redis

from nube.tools.devstack import Stack


def all_key_dumps(stack: Stack) -> bytes:
    """Every key's name, its ``DUMP`` and its readable value (``DUMP`` may LZF-compress a long
    string, so strings are also read with ``GET``, hashes with ``HGETALL`` and so on)."""
    raw = redis.Redis(port=stack.redis_port, password=stack.redis_password)
    out: list[bytes] = []
    for key in raw.scan_iter(count=500):
        out += [key, raw.dump(key) or b""]
        kind = raw.type(key)
        if kind == b"string":
            out.append(raw.get(key) or b"")
        elif kind == b"hash":
            for field, value in raw.hgetall(key).items():
                out += [field, value]
        elif kind == b"list":
            out += raw.lrange(key, 0, -1)
        elif kind == b"set":
            out += list(raw.smembers(key))
        elif kind == b"zset":
            out += [member for member, _ in raw.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            for entry_id, fields in raw.xrange(key):
                out.append(entry_id)
                for field, value in fields.items():
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
