"""Error texts are for the job's owner only (issue 8, item 2).

A backend's error message may quote the operation's parameters (Docker quotes the missing
executable of a container's command; a registry error names the registry host). The owner reads
the full message and details through the API; Redis (every key, and its append-only file), the
stack's log files and Celery's events (shown by Flower) hold only the error's code and title.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.conftest import docker_available, need
from tests.leaks import all_key_dumps, aof_files, files_holding

IMAGE = "busybox:latest"
TERMINAL = ("succeeded", "failed", "cancelled")
DOCKERFILE = "FROM busybox:latest\nCOPY hello.txt /hello.txt\n"


@pytest.fixture(scope="module")
def engine(stack: Stack) -> None:
    need(docker_available(), "the Docker engine")
    image = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True)
    need(image.returncode == 0, f"the {IMAGE} image")


@pytest.fixture(scope="module")
def flower(stack: Stack, engine: None) -> Iterator[str]:
    stack.start_flower()
    url = stack.flower_url
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthcheck", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    time.sleep(1)  # its event receiver connects after the web server answers
    yield url
    stack.stop("flower")


def finished(api: NubeClient, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    job = api.submit(method, path, body, wait=30)
    deadline = time.monotonic() + 120
    while job["status"] not in TERMINAL and time.monotonic() < deadline:
        job = api.job(job["id"], wait=30)
    return job


def flower_task(stack: Stack, url: str, task_id: str, state: str) -> dict[str, Any]:
    """The task as Flower shows it, once Flower has seen it reach ``state``; also asserts that
    Flower's whole task listing is the same for every task field."""
    auth = ("admin", stack.flower_password)
    deadline = time.monotonic() + 30
    while True:
        tasks = requests.get(url + "/api/tasks", auth=auth, timeout=10)
        assert tasks.ok, tasks.text
        task = tasks.json().get(task_id)
        if task and task.get("state") == state:
            return dict(task, listing=tasks.text)
        assert time.monotonic() < deadline, f"Flower never showed {task_id} as {state}: {task}"
        time.sleep(0.3)


def assert_nowhere_but_the_api(stack: Stack, marker: str, job_id: str) -> None:
    """``marker`` is in no Redis key, no append-only file and no log file of the stack."""
    time.sleep(1)  # let results, events and late log lines land
    assert marker.encode() not in all_key_dumps(stack)
    aofs = aof_files(stack)
    assert aofs, f"no append-only file under {stack.workdir}"
    assert [p for p in aofs if marker.encode() in p.read_bytes()] == []
    assert files_holding(stack.workdir, marker, "*.log") == []
    # the logs do tell that the job failed, by code and class
    assert files_holding(stack.workdir, f"job {job_id} failed", "*.log"), "no failure logged"


def test_a_failed_commands_path_is_readable_by_its_owner_only(
    stack: Stack, api: NubeClient, flower: str
) -> None:
    marker = f"MARKER{secrets.token_hex(8)}"
    command = [f"/nonexistent-{marker}/run"]
    job = finished(api, "POST", "/v1/containers", {"image": IMAGE, "command": command})

    # the owner reads Docker's full message, which quotes the path
    assert job["status"] == "failed", job
    error = job["error"]
    assert marker in error["message"], error
    assert job["attempts"] == 1 and error["retryable"] is False
    assert_nowhere_but_the_api(stack, marker, job["id"])

    # the record keeps the code, HTTP status, retryable and the error's title readable; the
    # rest is sealed
    stored = json.loads(stack.redis().get(f"nube:job:{job['id']}") or "{}")
    readable = {k: v for k, v in stored["error"].items() if k != "$sealed"}
    assert set(readable) == {"code", "status", "message", "retryable"}, stored["error"]
    assert readable["code"] == error["code"] and readable["retryable"] is False
    assert readable["status"] == error["status"] == 422
    assert stored["error"]["$sealed"] and marker not in readable["message"]
    assert [e["detail"] for e in job["history"] if e["event"] == "failed"] == [error["code"]]

    # Celery's task-failed event (Flower) names the error, not its text nor its cause
    task = flower_task(stack, flower, job["id"], "FAILURE")
    assert marker not in task["listing"]
    assert task["exception"], task
    assert "APIError" not in (task.get("traceback") or ""), task["traceback"]


def test_a_retried_errors_details_are_readable_by_its_owner_only(
    stack: Stack, api: NubeClient, flower: str
) -> None:
    """A push to a registry that does not resolve retries with backoff, then fails; the
    registry's name (a parameter, quoted by Docker's error) is in the details only."""
    marker = f"nubemarker{secrets.token_hex(6)}"
    tag = f"errtexts-{secrets.token_hex(4)}:v1"
    registry = f"{marker}.invalid:5000"
    files = {"hello.txt": base64.b64encode(b"hi").decode()}
    try:
        built = finished(
            api, "POST", "/v1/images/build", {"dockerfile": DOCKERFILE, "files": files, "tag": tag}
        )
        assert built["status"] == "succeeded", built
        job = finished(
            api, "POST", f"/v1/images/{tag}/push", {"registry": registry, "repository": "nube/x"}
        )
        assert job["status"] == "failed", job
        error = job["error"]
        assert error["code"] == "backend_unavailable" and error["retryable"] is True, error
        assert marker in json.dumps(error["details"]), error  # the owner reads Docker's text
        assert_nowhere_but_the_api(stack, marker, job["id"])
        retries = [e["detail"] for e in job["history"] if e["event"] == "retrying"]
        assert retries and len(retries) == job["attempts"] - 1, job["history"]
        for number, detail in enumerate(retries, 1):
            assert detail.startswith(f"backend_unavailable; retry {number} in "), detail
            assert detail.endswith(" s"), detail

        stored = json.loads(stack.redis().get(f"nube:job:{job['id']}") or "{}")
        assert "details" not in stored["error"] and stored["error"]["$sealed"], stored["error"]

        task = flower_task(stack, flower, job["id"], "FAILURE")
        assert marker not in task["listing"]
    finally:
        subprocess.run(
            ["docker", "rmi", "-f", tag, f"{registry}/nube/x:latest"], capture_output=True
        )
