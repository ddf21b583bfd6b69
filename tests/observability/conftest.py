"""A private stack that exports everything: JSON logs, spans to a file, metrics on ports."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from nube.tokens import Scope, TokenStore
from nube.tools.devstack import Stack
from tests.conftest import docker_available, need


@pytest.fixture(scope="package")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis, the agent, a container worker (the real Docker) and the API, with
    ``NUBE_LOG_FORMAT=json``, ``NUBE_TRACE_PATH=<workdir>/spans.jsonl`` and metrics ports."""
    need(shutil.which("redis-server") is not None, "redis-server")
    need(docker_available(), "docker")
    workdir = tmp_path_factory.mktemp("observed")
    env = {"NUBE_LOG_FORMAT": "json", "NUBE_TRACE_PATH": str(workdir / "spans.jsonl")}
    stack = Stack(workdir=workdir, extra_env=env, metrics=True)
    try:
        stack.start_redis()
        stack.start_agent()
        stack.start_worker("containers")
        stack.start_api()
        stack.wait_ready(["nube.ingress", "containers"], timeout=90)
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="package")
def token(observed: Stack) -> str:
    secret, _ = TokenStore(observed.redis()).create(
        f"obs{secrets.token_hex(3)}", [Scope.READ, Scope.WRITE]
    )
    return secret


def submit(stack: Stack, token: str, headers: dict[str, str] | None = None) -> requests.Response:
    """``GET /v1/containers`` answered at once (202 with its job)."""
    return requests.get(
        stack.api_url + "/v1/containers",
        headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async", **(headers or {})},
        timeout=10,
    )


def finished(stack: Stack, token: str, job_id: str, timeout: float = 30) -> dict[str, Any]:
    """The job once it ended."""
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(
            f"{stack.api_url}/v1/jobs/{job_id}",
            params={"wait": 5},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        if job["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return dict(job)


#: What Celery prints itself, not through logging, when a worker stops.
SHUTDOWN_NOTICE = "worker: "


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` (any other line fails the test, but Celery's shutdown
    notices)."""
    return [
        json.loads(line)
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith(SHUTDOWN_NOTICE)
    ]


def eventually(check: Callable[[], Any], timeout: float = 10) -> Any:
    """``check()`` once it is truthy (a span or log line may be written a moment late)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)
