"""A 10,000-job burst while one of two workers is SIGKILLed at random moments and restarted
(shared/reliability.md #22): accepted = terminal, lost 0, unexpected 0, one effect per job.

The jobs are ``containers.create`` through the HTTP API on the fake container driver, whose
effects are counted across processes (:mod:`workers.drivers.fake.effects`: each container made
is ``<job id> <pid>`` in a Redis list). Worker ``a`` is never touched; worker ``b`` (its parent
and pool children, the whole process group, as a cold kill) is SIGKILLed at a random moment
0.5-6 s after it said it is ready (seeded: the seed is printed, ``NUBE_TEST_SEED`` repeats a
run), so mostly while it runs jobs, and started again 0.2-2 s later.

A container made by a process that was killed died with it (the fake keeps containers in
memory), so its job legitimately makes another when it is delivered again: effects are counted
per job among processes never killed, and a job with two of those is a twin (a duplicate).

A cold-killed worker's delivered, unacknowledged messages wait in Redis' ``unacked`` hash; the
agent's reconciler (every 5 s here) hands back those no live service holds and relays again a job
whose messages are nowhere. Should anything still be held once nothing moves, the test
fast-forwards the visibility timeout (kombu's own ``restore_by_tag``, as in #3 and #8) and says
how many messages needed it.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.faults.test_worker_and_redis_faults import (
    TERMINAL,
    _PrivateStack,
    client_for,
    expire_visibility,
    private_stack,
    records,
    wait_for,
    wait_terminal,
    whereabouts,
)
from tests.redis_replies import each
from workers.drivers.fake.effects import EFFECTS_ENV, read_effects

N = int(os.environ.get("NUBE_TEST_BURST", "10000"))
DRAIN_SECONDS = 1800  # after the submissions, at most
QUIET = 45  # seconds without a change that end a wait (the reconciler runs every 5 s)
EFFECTS = "test:effects"
CREATE = {"image": "busybox:latest"}


def submit_all(stack: _PrivateStack, token: str, n: int, threads: int) -> list[tuple[int, Any]]:
    """``n`` container creates over HTTP from ``threads`` threads: (status, job id or body)."""
    local = threading.local()

    def one(_: int) -> tuple[int, Any]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers["Authorization"] = f"Bearer {token}"
            local.session.headers["Prefer"] = "respond-async"
        try:
            r = local.session.post(stack.api_url + "/v1/containers/create", json=CREATE, timeout=30)
            body = r.json()
        except (requests.RequestException, ValueError) as e:
            return 0, repr(e)
        return r.status_code, body.get("id") if r.status_code == 202 else body

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


class Killer(threading.Thread):
    """SIGKILLs worker ``b``'s process group at random moments and starts it again."""

    def __init__(self, stack: _PrivateStack, seed: int, env: dict[str, str]) -> None:
        super().__init__(name="killer", daemon=True)
        self.stack, self.random, self.env = stack, random.Random(seed), env
        self.killed_pids: set[int] = set()
        self.kills = 0
        self.ready_before = 0
        self.done = threading.Event()

    def start_b(self) -> None:
        self.ready_before = self.readies()
        self.stack.start_worker("containers", "worker-b", concurrency=2, **self.env)

    def readies(self) -> int:
        """How many times worker ``b`` said it is ready (its log is appended to by each start)."""
        log = self.stack.workdir / "worker-b.log"
        return log.read_text(errors="replace").count(" ready.") if log.exists() else 0

    def run(self) -> None:
        while not self.done.is_set():
            while self.readies() <= self.ready_before and not self.done.wait(0.2):
                pass
            if self.done.wait(self.random.uniform(0.5, 6)):
                return
            proc = self.stack.procs["worker-b"]
            try:
                group = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(True))]
            except psutil.NoSuchProcess:
                group = [proc.pid]
            self.killed_pids.update(group)
            self.stack.stop("worker-b", signal.SIGKILL)
            self.kills += 1
            time.sleep(self.random.uniform(0.2, 2))
            self.start_b()


def count(jobs: dict[str, dict[str, Any]], made: dict[str, list[int]], killed: set[int]) -> Any:
    """Queue-checker counts over the accepted jobs and the effects their containers left."""
    statuses = Counter(job.get("status", "missing") for job in jobs.values())
    finished = Counter(
        sum(1 for e in job.get("history", []) if e["event"] in TERMINAL) for job in jobs.values()
    )
    survivors = {i: [p for p in made.get(i, []) if p not in killed] for i in jobs}
    return {
        "accepted": len(jobs),
        "terminal": sum(statuses[s] for s in TERMINAL),
        "lost": sorted(i for i, job in jobs.items() if job.get("status") not in TERMINAL),
        "unexpected": sorted(
            i for i, job in jobs.items() if job.get("status") in TERMINAL - {"succeeded"}
        ),
        "finished_twice": sum(n for times, n in finished.items() if times > 1),
        "duplicates": sorted(i for i, pids in survivors.items() if len(pids) > 1),
        "no_effect": sorted(i for i in jobs if not made.get(i)),
        "made_again_after_kill": sum(1 for i in jobs if len(made.get(i, [])) > 1),
        "strangers": sorted(set(made) - set(jobs)),
        "statuses": dict(statuses),
    }


@pytest.mark.timeout(3600)
def test_burst_with_random_worker_kills(tmp_path: Path) -> None:
    seed = int(os.environ.get("NUBE_TEST_SEED") or time.time())
    env = {"NUBE_CONTAINER_DRIVER": "fake", EFFECTS_ENV: EFFECTS}
    with private_stack(tmp_path, NUBE_RECONCILE_SECONDS="5") as stack:
        stack.start_agent()
        stack.start_worker("containers", "worker-a", concurrency=2, **env)
        killer = Killer(stack, seed, env)
        killer.start_b()
        stack.start_api()
        stack.wait_ready(["nube.ingress", "containers"])
        api = client_for(stack)
        r = stack.redis()

        t0 = time.monotonic()
        killer.start()
        answers = submit_all(stack, api.token, N, 8)  # type: ignore[attr-defined]
        submitted = time.monotonic() - t0
        by_status = Counter(status for status, _ in answers)
        assert by_status == {202: N}, [a for a in answers if a[0] != 202][:3]
        ids = [job_id for _, job_id in answers]

        # keep killing while the queue drains; count whatever happened even if it does not
        deadline = time.monotonic() + DRAIN_SECONDS
        while r.llen("nube.ingress") + r.llen("containers") > 50 and time.monotonic() < deadline:
            time.sleep(1)
        killer.done.set()
        killer.join(30)
        wait_for(lambda: "worker-b" in stack.procs, 10, "worker b restarted")
        # quiet long enough for the reconciler (two scans, a record unchanged for two periods)
        wait_terminal(stack, ids, max(60, deadline - time.monotonic()), quiet=QUIET)
        drained = time.monotonic() - t0

        held = each(r.zrange("unacked_index", 0, -1), str)
        restored = len(held)
        if held:
            expire_visibility(stack, held)
            wait_terminal(stack, ids, 120, quiet=QUIET)
        total = time.monotonic() - t0

        result = count(records(stack, ids), read_effects(r, EFFECTS), killer.killed_pids)
        print(
            f"\nseed {seed}: {N} jobs, worker b killed {killer.kills} times; submitted in "
            f"{submitted:.0f} s ({N / submitted:.0f}/s), terminal after {drained:.0f} s, "
            f"{total:.0f} s in all; {restored} held message(s) fast-forwarded past the "
            "visibility timeout"
        )
        print(
            f"accepted {result['accepted']}  terminal {result['terminal']}  "
            f"lost {len(result['lost'])}  unexpected {len(result['unexpected'])}  "
            f"duplicates {len(result['duplicates'])}  finished twice {result['finished_twice']}  "
            f"made again after a kill {result['made_again_after_kill']}  {result['statuses']}"
        )
        assert killer.kills >= 3, "worker b was killed during the burst"
        assert result["lost"] == [], [whereabouts(stack, i) for i in result["lost"][:5]]
        assert result["terminal"] == result["accepted"] == N
        assert result["unexpected"] == [], result["unexpected"][:5]
        assert result["finished_twice"] == 0
        assert result["duplicates"] == [], result["duplicates"][:5]
        assert result["no_effect"] == [], result["no_effect"][:5]
        assert result["strangers"] == []
        wait_for(lambda: r.llen("containers") == 0 and r.hlen("unacked") == 0, 30, "the drain")
