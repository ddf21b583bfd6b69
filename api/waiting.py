"""``Prefer`` (RFC 7240) and ``?wait=N``: how long a request may wait for its job.

- ``Prefer: wait=N`` (or ``?wait=N``): wait up to N s (capped at ``NUBE_MAX_WAIT_SECONDS``).
- ``Prefer: respond-async``: answer ``202`` with the job at once (a read waits by default);
  with ``wait=N`` as well, wait up to N s first (RFC 7240, section 4.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import request

from nube.errors import InvalidRequest

_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)
_RESPOND_ASYNC = re.compile(r"(?:^|[,\s])respond-async\s*(?:$|[,;])", re.IGNORECASE)


@dataclass(frozen=True)
class Preferences:
    """What the request asked about waiting."""

    wait: int | None
    """Seconds asked by ``Prefer: wait=N`` or ``?wait=N`` (capped); None if not asked."""
    respond_async: bool
    """``Prefer: respond-async`` was sent."""

    def applied(self) -> str | None:
        """The ``Preference-Applied`` value when the answer honours what was asked."""
        honoured = []
        if self.respond_async:
            honoured.append("respond-async")
        if self.wait is not None:
            honoured.append(f"wait={self.wait}")
        return ", ".join(honoured) or None


def preferences(limit: int) -> Preferences:
    """The request's ``Prefer`` header and ``?wait``; waits capped at ``limit`` seconds."""
    prefer = ", ".join(request.headers.getlist("Prefer"))
    return Preferences(
        wait=requested_wait(limit), respond_async=bool(_RESPOND_ASYNC.search(prefer))
    )


def requested_wait(limit: int) -> int | None:
    """Seconds asked by ``Prefer: wait=N`` or ``?wait=N``, capped at ``limit``; None if absent."""
    raw = request.args.get("wait")
    if raw is None:
        match = _PREFER_WAIT.search(", ".join(request.headers.getlist("Prefer")))
        raw = match.group(1) if match else None
    if raw is None:
        return None
    if not raw.isdigit():
        raise InvalidRequest("wait: must be a whole number of seconds", field="wait")
    return min(int(raw), limit)
