"""Bytes into and out of a volume through libvirt streams (local and remote connections)."""

from __future__ import annotations

import libvirt

from nube.errors import InvalidRequest

CHUNK = 1 << 20


def upload(conn: libvirt.virConnect, vol: libvirt.virStorageVol, data: bytes) -> None:
    """Write ``data`` into ``vol`` from offset 0 through a libvirt stream."""
    stream = conn.newStream(0)
    vol.upload(stream, 0, len(data), 0)
    try:
        for start in range(0, len(data), CHUNK):
            chunk = data[start : start + CHUNK]
            sent = 0
            while sent < len(chunk):
                sent += stream.send(chunk[sent:])
        stream.finish()
    except Exception:
        stream.abort()
        raise


def download(conn: libvirt.virConnect, vol: libvirt.virStorageVol, limit: int) -> bytes:
    """The bytes of ``vol``; ``InvalidRequest`` beyond ``limit``."""
    stream = conn.newStream(0)
    vol.download(stream, 0, 0, 0)
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            chunk = stream.recv(CHUNK)
            if isinstance(chunk, int) or not chunk:  # -2: would block (not with a blocking stream)
                break
            total += len(chunk)
            if total > limit:
                raise InvalidRequest(f"the volume holds more than {limit} bytes to download")
            parts.append(chunk)
        stream.finish()
    except Exception:
        stream.abort()
        raise
    return b"".join(parts)
