"""Test knobs of the fake container driver: effects counted across processes, stalled creates.

The fake driver keeps its state in the worker process, so a second run of one job in another
process (a twin) would make a second container nobody could see from outside. With
``NUBE_FAKE_EFFECTS=<key>`` every container the fake driver really makes adds 1 to the field
``<job id>`` of the Redis hash ``<key>`` (the worker's own Redis, ``NUBE_REDIS_URL``): the fault
tests count effects per job there, not messages.

With ``NUBE_FAKE_STALL_SECONDS=<s>``, a create whose container is labelled ``fake.stall`` holds
the call that long after the container is made, like a backend call that hangs:

- ``fake.stall=soft``: an ordinary wait, which the task's soft time limit interrupts;
- ``fake.stall=hard``: a wait with the soft limit's signal (``SIGUSR1``) blocked, as a call stuck
  in C code (libvirt waiting on a hung QEMU monitor) is deaf to it: only the hard limit, which
  kills the pool child, ends it.

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
    return redis.Redis.from_url(load_settings().broker_url, socket_timeout=10)


def container_made(labels: Mapping[str, str]) -> None:
    """Count the container of job ``labels['nube.job']`` (if counting), then stall if asked."""
    key = os.environ.get(EFFECTS_ENV)
    job_id = labels.get(JOB_LABEL)
    if key and job_id:
        _redis(os.getpid()).hincrby(key, job_id, 1)
    seconds = float(os.environ.get(STALL_ENV) or 0)
    mode = labels.get(STALL_LABEL)
    if seconds > 0 and mode in ("soft", "hard"):
        stall(seconds, deaf=mode == "hard")


def stall(seconds: float, deaf: bool) -> None:
    """Wait ``seconds``; with ``deaf``, with ``SIGUSR1`` (the soft time limit) blocked."""
    if not deaf:
        time.sleep(seconds)
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        time.sleep(seconds)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
