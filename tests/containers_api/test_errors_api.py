"""Errors over HTTP (issue 3): bad input is a 422 problem+json naming the field, with nothing
queued; Docker's refusals fail the job with a stable code, without retries."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.containers_api.conftest import IMAGE, events, failed, inspect, ok, state

Name = Callable[[str], str]

RUN = {"image": IMAGE, "command": ["true"]}

#: (method, path, body or query, the field path the problem must name)
BAD_INPUT: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/v1/containers", {"image": "Bad Image!!"}, "image"),
    ("POST", "/v1/containers", {"image": "busybox:latest@sha256:abc"}, "image"),
    ("POST", "/v1/images/pull", {"image": "busybox:bad tag"}, "image"),
    ("POST", "/v1/containers/create", {**RUN, "ports": ["70000"]}, "ports.0.container_port"),
    ("POST", "/v1/containers", {**RUN, "ports": [{"container_port": 0}]}, "ports.0.container_port"),
    ("POST", "/v1/containers", {**RUN, "ports": ["127.0.0.1:65536:80"]}, "ports.0.host_port"),
    ("POST", "/v1/containers", {**RUN, "env": {"1BAD": "x"}}, "env.1BAD.[key]"),
    ("POST", "/v1/containers", {**RUN, "env": {"BAD-NAME": "x"}}, "env.BAD-NAME.[key]"),
    ("POST", "/v1/containers/x/exec", {"command": ["true"], "env": {"A B": "x"}}, "env.A B.[key]"),
    ("POST", "/v1/containers", {**RUN, "name": "-bad name"}, "name"),
    ("POST", "/v1/containers/x/rename", {"name": "has/slash"}, "name"),
    ("POST", "/v1/containers/x/kill", {"signal": "SIGFOO"}, "signal"),
    ("POST", "/v1/containers/x/kill", {"signal": 99}, "signal"),
    ("POST", "/v1/containers", {**RUN, "memory": "-1"}, "memory"),
    ("POST", "/v1/containers", {**RUN, "memory": -5}, "memory"),
    ("POST", "/v1/containers", {**RUN, "cpus": -1}, "cpus"),
    ("POST", "/v1/containers", {**RUN, "pids_limit": -1}, "pids_limit"),
    ("POST", "/v1/containers", {**RUN, "restart_max_retries": -1}, "restart_max_retries"),
    ("POST", "/v1/containers/x/stop", {"timeout": -1}, "timeout"),
    ("GET", "/v1/containers/x/logs", {"tail": "-1"}, "tail"),
    ("POST", "/v1/containers", {**RUN, "privileged": True}, "privileged"),
    ("POST", "/v1/containers", {**RUN, "labels": {"nube.tenant": "other"}}, "labels.nube.tenant"),
]


@pytest.mark.parametrize(
    ("method", "path", "params", "field"),
    BAD_INPUT,
    ids=[f"{c[3]}-{i}" for i, c in enumerate(BAD_INPUT)],
)
def test_bad_input_is_422_with_the_field_and_nothing_queued(
    stack: Stack, api: NubeClient, method: str, path: str, params: dict[str, Any], field: str
) -> None:
    kw: dict[str, Any] = {"params": params} if method == "GET" else {"json": params}
    response = api.session.request(
        method, stack.api_url + path, headers={"Prefer": "wait=5"}, timeout=30, **kw
    )
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "invalid_request" and problem["status"] == 422
    fields = [e["field"] for e in problem["errors"]]
    assert any(f == field or f.startswith(field) for f in fields), (field, problem)
    assert problem["detail"].startswith(fields[0])
    assert stack.redis().zcard(f"nube:jobs:{api.tenant}") == 0  # type: ignore[attr-defined]


def assert_failed_once(job: dict[str, Any], code: str) -> None:
    assert job["status"] == "failed" and job["error"]["code"] == code, job
    assert job["attempts"] == 1 and "retrying" not in events(job), job
    assert job["error"]["retryable"] is False


def test_docker_errors_fail_the_job_without_retry(api: NubeClient, name: Name) -> None:
    missing = f"nube-no-such-image-{uuid.uuid4().hex[:8]}:1"
    job = failed(api, "POST", "/v1/containers", {"image": missing, "command": ["true"]})
    assert_failed_once(job, "not_found")
    assert job["error"]["details"]["kind"] == "image"
    assert_failed_once(failed(api, "GET", f"/v1/containers/{name('nobody')}"), "not_found")

    taken = name("taken")
    body = {"image": IMAGE, "name": taken, "command": ["sleep", "300"]}
    created = ok(api, "POST", "/v1/containers/create", body)
    assert_failed_once(failed(api, "POST", "/v1/containers/create", body), "conflict")
    assert_failed_once(failed(api, "POST", "/v1/containers", {**body, "detach": True}), "conflict")

    c = f"/v1/containers/{taken}"
    # not running: stop, kill, pause and exec are refused; the container stays as it was
    for action, action_body in [
        ("stop", {"timeout": 0}),
        ("kill", {}),
        ("pause", {}),
        ("exec", {"command": ["true"]}),
    ]:
        assert_failed_once(failed(api, "POST", f"{c}/{action}", action_body), "conflict")
    assert state(created["id"]) == "created"
    ok(api, "POST", f"{c}/start", {})
    assert_failed_once(failed(api, "POST", f"{c}/unpause", {}), "conflict")
    assert_failed_once(failed(api, "DELETE", c, {}), "conflict")  # running, no force
    assert state(created["id"]) == "running"

    net = ok(api, "POST", "/v1/container-networks", {"name": name("busy")})["name"]
    ok(api, "POST", f"/v1/container-networks/{net}/connect", {"container": taken})
    assert_failed_once(failed(api, "DELETE", f"/v1/container-networks/{net}", {}), "conflict")
    assert inspect("network", net) is not None
    assert_failed_once(failed(api, "POST", "/v1/container-networks", {"name": net}), "conflict")


def test_port_already_allocated_is_conflict(api: NubeClient) -> None:
    body = {"image": IMAGE, "detach": True, "command": ["sleep", "300"], "ports": ["127.0.0.1::9"]}
    first = ok(api, "POST", "/v1/containers", body)
    port = ok(api, "GET", f"/v1/containers/{first['id']}/port")["ports"][0]["host_port"]
    taken = {**body, "ports": [f"127.0.0.1:{port}:9"]}
    assert_failed_once(failed(api, "POST", "/v1/containers", taken), "conflict")
    # the refused container was not left behind
    listed = ok(api, "GET", "/v1/containers")["containers"]
    assert [c["id"] for c in listed] == [first["id"]]
