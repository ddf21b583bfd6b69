"""Test knobs of the fake container driver: effects counted across processes, stalled creates.

The fake driver keeps its state in the worker process, so a second run of one job in another
process (a twin) would make a second container nobody could see from outside. With
``NUBE_FAKE_EFFECTS=<key>`` every container the fake driver really makes appends
``<job id> <pid>`` to the Redis list ``<key>`` (the worker's own Redis, ``NUBE_REDIS_URL``): the
fault tests count effects per job there, not messages (:func:`read_effects`), and the pid tells
a job made again after its maker was killed (its in-memory container died with it) from a twin.

With ``NUBE_FAKE_STALL_SECONDS=<s>``, a create whose container is labelled ``fake.stall`` holds
the call that long after the container is made, like a backend call that hangs:

- ``fake.stall=soft``: an ordinary wait, which the task's soft time limit interrupts;
- ``fake.stall=hard``: a wait with every signal blocked, as a call stuck in C code (libvirt
  waiting on a hung QEMU monitor) runs no Python signal handler: neither the soft limit's
  ``SIGUSR1`` nor the ``SIGTERM`` the pool sends first at the hard limit interrupts it; only the
  ``SIGKILL`` that follows ends it.

Both are off unless their variable is set; nothing here runs in production configurations.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from functools import cache

import redis

from nube.settings import load_settings

EFFECTS_ENV = "NUBE_FAKE_EFFECTS"
STALL_ENV = "NUBE_FAKE_STALL_SECONDS"
STALL_LABEL = "fake.stall"
JOB_LABEL = "nube.job"


@cache
def _redis(pid: int) -> redis.Redis:
    """A client of the worker's Redis, one per process (a connection does not cross a fork)."""
    return redis.Redis.from_url(load_settings().redis_dsn, socket_timeout=10)


def container_made(labels: Mapping[str, str]) -> None:
    """Count the container of job ``labels['nube.job']`` (if counting), then stall if asked."""
    key = os.environ.get(EFFECTS_ENV)
    job_id = labels.get(JOB_LABEL)
    if key and job_id:
        _redis(os.getpid()).rpush(key, f"{job_id} {os.getpid()}")
    seconds = float(os.environ.get(STALL_ENV) or 0)
    mode = labels.get(STALL_LABEL)
    if seconds > 0 and mode in ("soft", "hard"):
        stall(seconds, deaf=mode == "hard")


def stall(seconds: float, deaf: bool) -> None:
    """Wait ``seconds``; with ``deaf``, with every signal blocked (``SIGKILL`` cannot be)."""
    if not deaf:
        time.sleep(seconds)
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        time.sleep(seconds)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def read_effects(client: redis.Redis, key: str) -> dict[str, list[int]]:
    """Each job's effects in ``key``: the pids of the processes that made its containers."""
    made: dict[str, list[int]] = {}
    for entry in client.lrange(key, 0, -1):
        job_id, pid = (entry.decode() if isinstance(entry, bytes) else str(entry)).split()
        made.setdefault(job_id, []).append(int(pid))
    return made
