"""Following a VM's serial console for a while: new lines become job progress events.

Shared by the hypervisor drivers. :func:`follow` polls a source of new lines for ``seconds``
and, whenever lines arrived (at most every :data:`REPORT_SECONDS`), reports the progress
``{"first", "lines", "total"}``: the last :data:`WINDOW` lines seen, ``first`` being the index
(from 0, counting from the start of the follow) of the first of them, ``total`` the lines seen
so far. A client following ``GET /v1/jobs/<id>/events`` keeps the lines with indexes it has not
had yet: nothing is lost unless more than :data:`WINDOW` lines arrive between two reports.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers.drivers.base import JobContext

#: The lines a progress report carries (the newest).
WINDOW = 200
#: The lines the result keeps (the newest).
KEPT = 1000
#: Shortest time between two reports, and between two looks at the source.
REPORT_SECONDS = 0.5
POLL_SECONDS = 0.2
#: Longest line kept; the rest is cut.
LINE_LIMIT = 4096


class LogFile:
    """New complete lines appended to a file since the last look (a line still being written
    waits for its end; a file that shrank, a console log started over, is read from its
    start)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = _size(path)
        self.partial = b""

    def new_lines(self) -> list[str]:
        size = _size(self.path)
        if size < self.offset:
            self.offset, self.partial = 0, b""
        if size == self.offset:
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read(size - self.offset)
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        return [c[:LINE_LIMIT].decode("utf-8", "replace").rstrip("\r") for c in complete]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def follow(
    new_lines: Callable[[], list[str]],
    seconds: float,
    ctx: JobContext,
    first: list[str] | None = None,
) -> dict[str, Any]:
    """Poll ``new_lines`` for ``seconds``, reporting progress as the module says; ``first``
    (the console's last lines before the follow) counts as the first lines seen. The result:
    ``{"lines": the newest KEPT lines, "first": the index of the first, "total"}``."""
    seen: deque[str] = deque(first or [], maxlen=KEPT)
    total, reported = len(seen), 0
    deadline = time.monotonic() + seconds
    last_report = 0.0
    while True:
        fresh = new_lines()
        seen.extend(fresh)
        total += len(fresh)
        now = time.monotonic()
        done = now >= deadline
        if total > reported and (done or now - last_report >= REPORT_SECONDS):
            window = list(seen)[-WINDOW:]
            ctx.report_progress({"first": total - len(window), "lines": window, "total": total})
            reported, last_report = total, now
        if done:
            return {"lines": list(seen), "first": total - len(seen), "total": total}
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - now)))
