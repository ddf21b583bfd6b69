"""Reliability row 29 on Redis: the broker's primary SIGKILLed during a burst (Sentinel).

A primary and two replicas, three sentinels (:mod:`nube.tools.sentinel`); nube's services find
the primary through the sentinels (``NUBE_REDIS_SENTINELS``) and every job-store write waits for
a replica (``NUBE_REDIS_WAIT_REPLICAS=1``). Clients submit detached busybox containers, each
with its own ``Idempotency-Key``, and resubmit with the same key while the API answers anything
but ``202`` (as a client does through an outage). The primary is SIGKILLed once a third of the
jobs are accepted: a replica is promoted, the services go on without a restart, and every
accepted job ends, with one container each.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from nube.tools.sentinel import SentinelStack
from tests.conftest import Report, remove_docker_resources
from tests.faults.test_message_path_faults import _container_creations
from tests.faults.test_worker_and_redis_faults import client_for, records
from tests.ha.conftest import sentinel_stack

JOBS = 36
THREADS = 4
KILL_AFTER = JOBS // 3
TERMINAL = {"succeeded", "failed", "cancelled"}
#: Keyed by the job id: a second delivery of a job makes no second container.
DETACHED = {"image": "busybox:latest", "command": ["sleep", "1"], "detach": True}


class Burst:
    """``JOBS`` submissions from ``THREADS`` clients, each retried with its key until ``202``."""

    def __init__(self, stack: SentinelStack, token: str) -> None:
        self.stack, self.token = stack, token
        self.lock = threading.Lock()
        self.accepted: dict[str, str] = {}  # idempotency key -> job id
        self.accepted_at: list[tuple[float, float]] = []  # (sent, answered) of each 202
        self.refused: Counter[str] = Counter()
        self.local = threading.local()

    def submit(self, _: int) -> None:
        key = secrets.token_hex(8)
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.headers["Authorization"] = f"Bearer {self.token}"
            self.local.session.headers["Prefer"] = "respond-async"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                r = self.local.session.post(
                    self.stack.api_url + "/v1/containers",
                    json=DETACHED,
                    headers={"Idempotency-Key": key},
                    timeout=30,
                )
                status = str(r.status_code)
                if r.status_code == 202:
                    with self.lock:
                        self.accepted[key] = r.json()["id"]
                        self.accepted_at.append((sent, time.monotonic()))
                    return
            except requests.RequestException as e:
                status = type(e).__name__
            with self.lock:
                self.refused[status] += 1
            time.sleep(0.3)  # the client backs off, then resubmits with the same key

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)


def all_terminal(stack: SentinelStack, ids: list[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            jobs = records(stack, ids)
        except Exception:
            jobs = {}
        done = jobs and all(j.get("status") in TERMINAL for j in jobs.values())
        if done or time.monotonic() > deadline:
            return jobs or records(stack, ids)
        time.sleep(0.5)


def test_primary_sigkilled_mid_burst_loses_no_job(tmp_path: Path, report: Report) -> None:
    with sentinel_stack(tmp_path, NUBE_RECONCILE_SECONDS="2") as stack:
        stack.start_agent()
        stack.start_worker("containers", concurrency=2)
        stack.start_api()
        stack.wait_ready(["nube.ingress", "containers"])
        api = client_for(stack)
        pids = {name: proc.pid for name, proc in stack.services().items()}
        since = time.time() - 1
        try:
            burst = Burst(stack, api.token)  # type: ignore[attr-defined]
            with ThreadPoolExecutor(THREADS) as pool:
                running = pool.map(burst.submit, range(JOBS))
                deadline = time.monotonic() + 60
                while burst.count() < KILL_AFTER and time.monotonic() < deadline:
                    time.sleep(0.05)
                killed_at = time.monotonic()
                old = stack.kill_primary()
                new, promotion = stack.wait_promoted(old)
                list(running)
            after = [end - killed_at for sent, end in burst.accepted_at if sent > killed_at]
            back = min(after) if after else float("nan")
            report(
                f"row 29 (Sentinel): primary {old} SIGKILLed after {KILL_AFTER} accepted; "
                f"{new} promoted {promotion:.1f} s later; the first POST sent after the kill "
                f"accepted {back:.1f} s after it; refused answers: {dict(burst.refused)}"
            )
            ids = list(burst.accepted.values())
            jobs = all_terminal(stack, ids, 150)
            statuses = Counter(str(j.get("status", "missing")) for j in jobs.values())
            lost = sorted(i for i, j in jobs.items() if j.get("status") not in TERMINAL)
            duplicates = sorted(i for i in ids if _container_creations(i, since) > 1)
            counts = {
                "submitted": JOBS,
                "accepted": len(ids),
                "terminal": sum(statuses[s] for s in TERMINAL),
                "lost": len(lost),
                "duplicates": len(duplicates),
                "statuses": dict(statuses),
            }
            report(f"row 29 (Sentinel) counts: {counts}")
            alive = {n: p.pid for n, p in stack.services().items() if p.poll() is None}
            assert alive == pids, "every service runs on, none restarted"
            assert new != old
            assert len(ids) == JOBS and len(set(ids)) == JOBS
            assert not lost, {i: jobs[i].get("status") for i in lost}
            assert not duplicates
            assert statuses == {"succeeded": JOBS}, statuses

            # after the failover: a waited request (the API's job waiters on the new primary)
            waits_before = _wait_calls(stack)
            for _ in range(3):
                done = api.submit("POST", "/v1/containers", DETACHED, wait=30)
                assert done["status"] == "succeeded", done
            per_job = (_wait_calls(stack) - waits_before) / 3
            report(f"row 29 (Sentinel): {per_job:.0f} WAITs per job (all writes of all services)")
        finally:
            remove_docker_resources(api.tenant)  # type: ignore[attr-defined]


def _wait_calls(stack: SentinelStack) -> int:
    stats = stack.redis().info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))
