"""Faults on the message path (shared/reliability.md #1, #9, #10): no job answered 202 is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest

from api.app import create_app
from nube.settings import load_settings
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack, free_port
from tests.conftest import docker_available, need


def test_redis_down_during_post_is_503_and_leaves_no_job(stack: Stack) -> None:
    """An API whose Redis is unreachable answers 503 problem+json within its timeout."""
    settings = load_settings(
        {
            "NUBE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "NUBE_PUBLISH_TIMEOUT": "1",
            "NUBE_KEYS": stack.keys,
        }
    )
    client = create_app(settings).test_client()
    started = time.monotonic()
    r = client.post(
        "/v1/containers", json={"image": "busybox"}, headers={"Authorization": "Bearer nube_x"}
    )
    assert r.status_code == 503, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == "backend_unavailable"
    assert time.monotonic() - started < 10


def test_agent_down_jobs_wait_then_complete(stack: Stack, api: NubeClient) -> None:
    stack.stop("agent")
    try:
        _wait_for(lambda: not stack.redis().keys("nube:service:agent.*"), 15, "the agent to go")
        job = api.submit("GET", "/v1/vms")
        time.sleep(1)
        job = api.job(job["id"])
        assert job["status"] == "queued"
        assert "no live agent serves queue 'nube.ingress'" in job["waiting"]
    finally:
        stack.start_agent()
    done = api.job(job["id"], wait=60)
    assert done["status"] == "succeeded", done
    assert [e["event"] for e in done["history"]][:2] == ["queued", "relayed"]


def _container_creations(job_id: str, since: float) -> int:
    out = subprocess.run(
        [
            "docker",
            "events",
            "--since",
            str(int(since)),
            "--until",
            str(int(time.time()) + 1),
            "--filter",
            "type=container",
            "--filter",
            "event=create",
            "--filter",
            f"label=nube.job={job_id}",
            "--format",
            "{{.ID}}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return len(out.stdout.split())


def test_worker_child_killed_mid_create_makes_one_container(stack: Stack, api: NubeClient) -> None:
    """SIGKILL the worker child while it runs a container: redelivered, one container, succeeded."""
    need(docker_available(), "the Docker engine")
    started = time.time() - 1
    job = api.submit(
        "POST", "/v1/containers", {"image": "busybox:latest", "command": ["sleep", "3"]}
    )
    _wait_for(lambda: _container_creations(job["id"], started) == 1, 30, "the container")
    parent = psutil.Process(stack.procs["worker-containers"].pid)
    for child in parent.children():  # the child running the job is one of them
        os.kill(child.pid, signal.SIGKILL)
    done = api.job(job["id"], wait=60)
    assert done["status"] == "succeeded", done
    assert done["attempts"] >= 2
    assert _container_creations(job["id"], started) == 1


def _wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")
