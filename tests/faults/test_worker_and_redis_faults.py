"""Worker and Redis faults (shared/reliability.md #2, #3, #5, #7, #8): no job answered 202 is lost.

Each test starts its own private stack (Redis on a free port, agent, the workers it needs, API)
in a tmp dir, so it can kill anything without disturbing the session stack. Results are counted
like a queue checker: jobs accepted - jobs in a terminal state = 0, and effects per job ≤ 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from nube.client import NubeClient
from nube.devstack import Stack
from nube.tokens import Scope, TokenStore
from tests.conftest import TEST_POLICY, docker_available, need, remove_docker_resources
from tests.faults.test_message_path_faults import _container_creations

TERMINAL = {"succeeded", "failed", "cancelled"}
SLEEPER = {"image": "busybox:latest", "command": ["sleep", "3"]}


class _PrivateStack(Stack):
    """A :class:`Stack` that remembers every process group it started, to reap them all."""

    groups: list[int]

    def spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
        proc = super().spawn(name, argv, **env)
        self.groups.append(proc.pid)
        return proc

    def reap(self) -> None:
        self.stop_all()
        for pgid in self.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def private_stack(tmp_path: Path, **env: str) -> Iterator[_PrivateStack]:
    """A private Redis (AOF ``always``) in ``tmp_path``; the test starts the rest."""
    need(shutil.which("redis-server") is not None, "redis-server")
    workdir = tmp_path / "stack"
    workdir.mkdir()
    (workdir / "policy.yaml").write_text(TEST_POLICY)
    extra = {
        "NUBE_POLICY_FILE": str(workdir / "policy.yaml"),
        "NUBE_AUDIT_FILE": str(workdir / "audit.jsonl"),
        "NUBE_RATE_LIMIT": "0",
        **env,
    }
    stack = _PrivateStack(workdir=workdir, libvirt_uri="test:///default", extra_env=extra)
    stack.groups = []
    try:
        stack.start_redis()
        yield stack
    except BaseException:
        for log in sorted(workdir.glob("*.log")):
            print(f"==> {log.name} <==\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        stack.reap()


def client_for(stack: Stack, tenant: str | None = None) -> NubeClient:
    tenant = tenant or f"t{secrets.token_hex(4)}"
    secret, _ = TokenStore(stack.redis()).create(tenant, [Scope.READ, Scope.WRITE])
    client = NubeClient(stack.api_url, secret, timeout=30)
    client.tenant = tenant  # type: ignore[attr-defined]
    return client


def statuses(stack: Stack, ids: list[str]) -> dict[str, str]:
    """Each job's status as stored (``missing`` for a job with no record)."""
    r = stack.redis()
    out: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for job_id, raw in zip(chunk, r.mget([f"nube:job:{i}" for i in chunk]), strict=True):
            out[job_id] = json.loads(raw)["status"] if raw else "missing"
    return out


def wait_terminal(stack: Stack, ids: list[str], timeout: float) -> Counter[str]:
    """Until every job is terminal or ``timeout`` passes; returns the count of each status."""
    deadline = time.monotonic() + timeout
    while True:
        counts = Counter(statuses(stack, ids).values())
        if sum(counts[s] for s in TERMINAL) == len(ids) or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def unacked_holding(stack: Stack, job_id: str) -> list[str]:
    """Delivery tags of the unacked (delivered, not yet acknowledged) messages of ``job_id``."""
    tags = []
    for tag, raw in stack.redis().hgetall("unacked").items():
        message = json.loads(raw)[0]
        if message.get("headers", {}).get("id") == job_id:
            tags.append(tag)
    return tags


def job_of(stack: Stack, job_id: str) -> dict[str, Any]:
    raw = stack.redis().get(f"nube:job:{job_id}")
    return dict(json.loads(raw)) if raw else {}


# --- #2 ------------------------------------------------------------------------------------------


def test_attempt_cap_fails_worker_lost_and_drains_the_queue(tmp_path: Path) -> None:
    """A job whose worker child dies on every attempt fails ``worker_lost`` after the cap.

    Redis cannot count redeliveries and Celery's prefork parent requeues the message of a dead
    child at once (``task_reject_on_worker_lost``), so without nube's attempt counter this job
    would loop for ever. Here the pool children are SIGKILLed each time the job starts a new
    attempt; with ``NUBE_MAX_ATTEMPTS=2`` the third delivery fails the job, and the message is
    acknowledged: nothing is left in the queue or in the unacked hash.
    """
    need(docker_available(), "the Docker engine")
    with private_stack(tmp_path) as stack:
        stack.start_agent()
        worker = stack.start_worker("containers", concurrency=1, NUBE_MAX_ATTEMPTS="2")
        stack.start_api()
        stack.wait_ready(["nube.ingress", "containers"])
        api = client_for(stack)
        started = time.time() - 1
        try:
            job = api.submit(
                "POST", "/v1/containers", {"image": "busybox:latest", "command": ["sleep", "30"]}
            )
            killed: list[int] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                current = job_of(stack, job["id"])
                if current["status"] in TERMINAL:
                    break
                attempt = current["attempts"]
                if current["status"] == "running" and attempt not in killed and attempt <= 2:
                    # the child is inside the task: wait for its container, then kill the pool
                    wait_for(
                        lambda: _container_creations(job["id"], started) >= 1, 20, "a container"
                    )
                    for child in psutil.Process(worker.pid).children():
                        child.kill()
                    killed.append(attempt)
                time.sleep(0.1)
            done = api.job(job["id"])
            assert killed == [1, 2]
            assert done["status"] == "failed", done
            assert done["error"]["code"] == "worker_lost"
            assert "2 times" in done["error"]["message"]
            assert done["error"]["details"] == {"attempts": 2}
            assert done["attempts"] == 3
            assert _container_creations(job["id"], started) == 1
            wait_for(lambda: not unacked_holding(stack, job["id"]), 10, "the message's ack")
            assert stack.redis().llen("containers") == 0
            assert worker.poll() is None, "the worker itself survived its children"
        finally:
            remove_docker_resources(api.tenant)  # type: ignore[attr-defined]


# --- #3 ------------------------------------------------------------------------------------------


def expire_visibility(stack: Stack, tags: list[str]) -> None:
    """Do what kombu's periodic sweep does once ``visibility_timeout`` has passed: put the
    unacked messages ``tags`` back on their queues (kombu's own ``restore_by_tag``)."""
    from kombu import Connection

    url = stack.redis_url.replace("redis://", f"redis://:{stack.redis_password}@")
    with Connection(url) as conn:
        for tag in tags:
            conn.default_channel.qos.restore_by_tag(tag)


def test_cold_kill_one_of_two_workers_job_completes_on_the_other(tmp_path: Path) -> None:
    """SIGKILL the whole worker (parent and children) running a job: it completes on the other.

    A cold-killed worker cannot requeue anything: its message stays in Redis' unacked hash until
    ``visibility_timeout`` passes, and that is at least 960 s (the longest operation's time limit,
    900 s, plus 60 s; ``check_visibility_timeout``), 3600 s by default. The test checks that the
    message is held there, then fast-forwards that clock with kombu's own restore of the tag (what
    the surviving worker's sweep does after the timeout), instead of waiting 16 minutes.
    """
    need(docker_available(), "the Docker engine")
    with private_stack(tmp_path) as stack:
        stack.start_agent()
        for node in ("node-a", "node-b"):
            stack.start_worker("containers", f"worker-{node}", concurrency=1, NUBE_NODE=node)
        stack.start_api()
        stack.wait_ready(["nube.ingress", "containers"])
        api = client_for(stack)
        started = time.time() - 1
        try:
            job = api.submit("POST", "/v1/containers", SLEEPER)
            wait_for(lambda: _container_creations(job["id"], started) == 1, 30, "the container")
            first = job_of(stack, job["id"])
            assert first["status"] == "running" and first["attempts"] == 1
            victim, survivor = (
                ("node-a", "node-b") if first["node"] == "node-a" else ("node-b", "node-a")
            )
            stack.stop(f"worker-{victim}", signal.SIGKILL)
            tags = unacked_holding(stack, job["id"])
            assert len(tags) == 1, "the dead worker's message waits in the unacked hash"
            time.sleep(1)
            assert job_of(stack, job["id"])["status"] == "running"
            expire_visibility(stack, tags)
            done = api.job(job["id"], wait=60)
            assert done["status"] == "succeeded", done
            assert done["node"] == survivor
            assert done["attempts"] == 2
            assert done["result"]["exit_code"] == 0
            assert _container_creations(job["id"], started) == 1
            assert [e["event"] for e in done["history"]].count("succeeded") == 1
            wait_for(lambda: not unacked_holding(stack, job["id"]), 10, "the message's ack")
            assert stack.redis().llen("containers") == 0
        finally:
            remove_docker_resources(api.tenant)  # type: ignore[attr-defined]
