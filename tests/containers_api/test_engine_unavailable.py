"""An engine the worker cannot reach (issue 3): the job retries with backoff, then fails
``backend_unavailable`` (never stuck running); with the engine back, jobs succeed again.

This runs on a private stack (its own Redis, agent, API and container workers), so the shared
``stack`` is never disturbed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.conftest import broken_engine_stack, remove_docker_resources
from tests.containers_api.conftest import IMAGE, events

BROKEN = "worker-containers-broken"


@pytest.fixture
def private(tmp_path: Path, engine_ready: None) -> Iterator[Stack]:
    """Redis, agent, API and a container worker whose engine socket does not exist."""
    stack = broken_engine_stack(tmp_path, BROKEN)
    try:
        stack.wait_ready(["nube.ingress", "containers"], timeout=60)
        yield stack
    finally:
        stack.stop_all()


def test_unreachable_engine_retries_then_fails_and_recovers(private: Stack) -> None:
    tenant = f"t{secrets.token_hex(4)}"
    secret, _ = TokenStore(private.redis()).create(tenant, [Scope.READ, Scope.WRITE])
    client = NubeClient(private.api_url, secret)
    body = {"image": IMAGE, "command": ["echo", "engine back"]}
    try:
        started = time.monotonic()
        job = client.submit("POST", "/v1/containers", body, wait=30)
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "backend_unavailable" and job["error"]["retryable"]
        history = events(job)
        assert job["attempts"] > 1
        assert history.count("retrying") == job["attempts"] - 1, history
        backoffs = [e["detail"] for e in job["history"] if e["event"] == "retrying"]
        assert all(" in " in d and d.endswith(" s") for d in backoffs), backoffs
        assert history.count("running") == job["attempts"]
        assert history[-1] == "failed" and history[-2] == "running"
        assert time.monotonic() - started < 20
        time.sleep(1.5)  # no late redelivery revives it
        again = client.job(job["id"])
        assert (again["status"], again["attempts"]) == ("failed", job["attempts"])

        # the engine reachable again: a worker with the real socket serves the next job
        private.stop(BROKEN)
        private.start_worker("containers", name="worker-containers")
        fixed = client.submit("POST", "/v1/containers", body, wait=30)
        if fixed["status"] in ("queued", "running"):  # the new worker was still starting
            fixed = client.job(fixed["id"], wait=30)
        assert fixed["status"] == "succeeded", fixed
        assert fixed["attempts"] == 1 and "retrying" not in events(fixed)
        assert fixed["result"]["stdout"] == "engine back\n"
    finally:
        remove_docker_resources(tenant)
