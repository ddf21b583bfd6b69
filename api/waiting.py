"""``Prefer: wait=N`` (RFC 7240) and ``?wait=N``: how long a request may wait for its job."""

from __future__ import annotations

import re

from flask import request

from nube.errors import InvalidRequest

_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)


def requested_wait(limit: int) -> int | None:
    """Seconds asked by ``Prefer: wait=N`` or ``?wait=N``, capped at ``limit``; None if absent."""
    raw = request.args.get("wait")
    if raw is None:
        match = _PREFER_WAIT.search(request.headers.get("Prefer", ""))
        raw = match.group(1) if match else None
    if raw is None:
        return None
    if not raw.isdigit():
        raise InvalidRequest("wait: must be a whole number of seconds", field="wait")
    return min(int(raw), limit)
