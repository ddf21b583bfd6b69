"""``python -m tests.faults.outage_service agents|workers [options]``: the agent (``python -m
agents``) or a worker (``python -m workers vms ...``) that SIGKILLs the stack's Redis (the job
store and the replay guard's nonces) once, at the moment ``OUTAGE_AT`` names in the first
delivery it sees:

- ``received``: the consumer has opened the message; the pool has not run it yet;
- ``prerun``: the pool is about to run the task's body.

``OUTAGE_REDIS_PID`` is the pid to kill; ``OUTAGE_FLAG`` a path made when the cut is made (so
it happens once across the service's processes); the cut waits until the test makes the path
``OUTAGE_GO`` (once the API has answered: Redis gone before that would fail the request).
``OUTAGE_CLAIM_PATIENCE_S`` shortens how long the replay guard waits for Redis (15 s), so that
the test waits less.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from celery import signals

from nube.sealing import replay

MOMENTS = {"received": signals.task_received, "prerun": signals.task_prerun}


def cut(**_: Any) -> None:
    try:
        flag = os.open(os.environ["OUTAGE_FLAG"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(flag)
    go = Path(os.environ["OUTAGE_GO"])
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = int(os.environ["OUTAGE_REDIS_PID"])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:  # gone before the task goes on
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, not yet reaped by the test, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


if __name__ == "__main__":
    patience = os.environ.get("OUTAGE_CLAIM_PATIENCE_S")
    if patience:
        replay.CLAIM_PATIENCE_S = float(patience)
    MOMENTS[os.environ["OUTAGE_AT"]].connect(cut, weak=False)
    if sys.argv[1] == "agents":
        from agents.__main__ import main
    else:
        from workers.__main__ import main
    main(sys.argv[2:])
