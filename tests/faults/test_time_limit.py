"""An operation running past its time limit (shared/reliability.md #6): failed ``timeout``, the
pool child replaced, no twin run.

A real worker (Celery's prefork pool, two children) runs ``containers.create`` (time limit 60 s,
soft limit 55 s) on the fake container driver, whose test knobs
(:mod:`workers.drivers.fake.effects`) stall the create after the container is made and count
each container made, per job, in Redis: the effect, counted across processes. Two jobs run side
by side on one private stack (a module fixture; each test checks one part):

- ``soft``: the stall is an ordinary wait; the soft limit interrupts it and the job fails
  ``timeout`` in the same child;
- ``hard``: the stall is deaf to signals, as a call stuck in C code is (libvirt waiting on a hung
  QEMU monitor): the soft limit's ``SIGUSR1`` and the pool's ``SIGTERM`` run no handler, so only
  the hard limit's ``SIGKILL`` ends it; Celery starts another child. The job must still end
  failed ``timeout`` and never run again, though the agent's reconciler (every 2 s here) looks
  for accepted jobs whose message is gone.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from tests.faults.test_worker_and_redis_faults import (
    TERMINAL,
    client_for,
    job_of,
    private_stack,
    unacked_holding,
    wait_for,
)
from workers.drivers.fake.effects import EFFECTS_ENV, STALL_ENV, STALL_LABEL, read_effects

EFFECTS = "test:effects"
LIMIT = 60  # containers.create's time limit
SCANS = 10  # seconds after the hard limit: five reconciler scans, time for a twin to start


def _children(pid: int) -> set[int]:
    return {p.pid for p in psutil.Process(pid).children()}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run one soft and one hard overrun side by side; what was seen once both limits passed."""
    with private_stack(tmp_path_factory.mktemp("limit"), NUBE_RECONCILE_SECONDS="2") as stack:
        stack.start_agent()
        worker = stack.start_worker(
            "containers",
            concurrency=2,
            NUBE_CONTAINER_DRIVER="fake",
            **{EFFECTS_ENV: EFFECTS, STALL_ENV: str(LIMIT + 60)},
        )
        stack.start_api()
        stack.wait_ready(["nube.ingress", "containers"])
        api = client_for(stack)
        r = stack.redis()
        before = wait_for(lambda: len(_children(worker.pid)) == 2 and _children(worker.pid), 30, "")
        jobs = {
            mode: api.submit(
                "POST",
                "/v1/containers/create",
                {"image": "busybox:latest", "labels": {STALL_LABEL: mode}},
            )["id"]
            for mode in ("soft", "hard")
        }
        started = time.monotonic()
        wait_for(lambda: r.llen(EFFECTS) == 2, 30, "both containers made")
        running = {mode: job_of(stack, i)["status"] for mode, i in jobs.items()}
        wait_for(
            lambda: job_of(stack, jobs["soft"])["status"] in TERMINAL, LIMIT + 15, "the soft job"
        )
        soft_ended = time.monotonic() - started
        wait_for(
            lambda: len(_children(worker.pid)) == 2 and _children(worker.pid) != before,
            LIMIT + 20 - (time.monotonic() - started),
            "a new pool child",
        )
        replaced_after = time.monotonic() - started
        time.sleep(SCANS)
        seen = {
            "running": running,
            "soft_ended": soft_ended,
            "replaced_after": replaced_after,
            "before": before,
            "after": _children(worker.pid),
            "worker_alive": worker.poll() is None,
            "jobs": {mode: api.job(i) for mode, i in jobs.items()},
            "effects": {mode: len(read_effects(r, EFFECTS).get(i, [])) for mode, i in jobs.items()},
            "unacked": {mode: unacked_holding(stack, i) for mode, i in jobs.items()},
        }
        print(
            f"\nsoft job ended after {soft_ended:.1f} s; a pool child was replaced after "
            f"{replaced_after:.1f} s ({sorted(before)} -> {sorted(seen['after'])}); "
            f"{SCANS} s later: "
            + ", ".join(
                f"{mode} {job['status']} {(job.get('error') or {}).get('code')} "
                f"attempts {job['attempts']} effects {seen['effects'][mode]}"
                for mode, job in seen["jobs"].items()
            )
        )
        yield seen
        stack.stop("worker-containers", signal.SIGKILL)  # its deaf twin would hold a SIGTERM 20 s


def _failed_timeout_once(seen: dict[str, Any], mode: str) -> None:
    job = seen["jobs"][mode]
    assert seen["running"][mode] == "running"
    assert job["status"] == "failed", (mode, job["status"], job["history"])
    assert job["error"]["code"] == "timeout", job["error"]
    assert job["attempts"] == 1, job["history"]
    assert [e["event"] for e in job["history"]].count("failed") == 1, job["history"]
    assert seen["effects"][mode] == 1, "the operation ran once"
    assert seen["unacked"][mode] == [], "its message was acknowledged"


def test_soft_limit_fails_the_job_timeout_once(outcome: dict[str, Any]) -> None:
    _failed_timeout_once(outcome, "soft")
    assert outcome["soft_ended"] < LIMIT, "ended at the soft limit"


def test_hard_limit_replaces_the_pool_child(outcome: dict[str, Any]) -> None:
    before, after = outcome["before"], outcome["after"]
    assert len(before & after) == 1 and len(after - before) == 1, (before, after)
    assert LIMIT - 1 < outcome["replaced_after"] < LIMIT + 15
    assert outcome["worker_alive"], "the worker itself lives on"


def test_hard_limit_fails_the_job_timeout_without_a_twin(outcome: dict[str, Any]) -> None:
    _failed_timeout_once(outcome, "hard")
