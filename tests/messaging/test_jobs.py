"""The message path end to end: API → agent → worker → job, on real Redis and processes."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.conftest import docker_available, need


def docker_ps(label: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True
    )
    return out.stdout.split()


def test_container_run_polls_to_succeeded(api: NubeClient) -> None:
    need(docker_available(), "the Docker engine")
    job = api.submit(
        "POST", "/v1/containers", {"image": "busybox:latest", "command": ["echo", "hi"]}
    )
    assert job["status"] in ("queued", "running")
    for _ in range(300):
        job = api.job(job["id"])
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.1)
    assert job["status"] == "succeeded", job
    assert job["result"]["exit_code"] == 0
    assert job["result"]["stdout"] == "hi\n"
    events = [e["event"] for e in job["history"]]
    assert events[:3] == ["queued", "relayed", "running"] and events[-1] == "succeeded"
    assert job["attempts"] == 1 and job["node"]
    # kept until the result was recorded (what a redelivery would collect), then removed
    deadline = time.monotonic() + 10
    while docker_ps(f"nube.job={job['id']}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert docker_ps(f"nube.job={job['id']}") == []


def test_post_answers_202_with_location(stack: Stack, api: NubeClient) -> None:
    response = api.session.post(
        stack.api_url + "/v1/containers", json={"image": "busybox:latest", "command": ["true"]}
    )
    assert response.status_code == 202
    assert response.headers["Location"] == f"/v1/jobs/{response.json()['id']}"
    api.job(response.json()["id"], wait=30)


def test_prefer_wait_returns_the_finished_job(stack: Stack, api: NubeClient) -> None:
    need(docker_available(), "the Docker engine")
    response = api.session.post(
        stack.api_url + "/v1/containers",
        json={
            "image": "busybox:latest",
            "command": ["sh", "-c", "echo $GREETING"],
            "env": {"GREETING": "hello"},
        },
        headers={"Prefer": "wait=30"},
    )
    assert response.status_code == 201
    assert response.headers["Preference-Applied"] == "wait=30"
    assert response.json()["result"]["stdout"].strip() == "hello"


def test_long_poll_wakes_on_completion(api: NubeClient) -> None:
    need(docker_available(), "the Docker engine")
    job = api.submit(
        "POST", "/v1/containers", {"image": "busybox:latest", "command": ["sleep", "1"]}
    )
    started = time.monotonic()
    done = api.job(job["id"], wait=30)
    elapsed = time.monotonic() - started
    assert done["status"] == "succeeded", done
    assert elapsed < 10, f"the wait slept out its period ({elapsed:.1f} s)"


@pytest.mark.parametrize(
    ("path", "key"),
    [("/v1/containers", "containers"), ("/v1/hypervisors", None), ("/v1/vms", "vms")],
)
def test_read_operations_succeed(api: NubeClient, path: str, key: str | None) -> None:
    if path == "/v1/containers":
        need(docker_available(), "the Docker engine")
    job = api.submit("GET", path, wait=30)
    assert job["status"] == "succeeded", job
    if key:
        assert job["result"][key] == []  # a fresh tenant sees nothing of others
    else:
        assert job["result"]["uri"] and job["result"]["hostname"]


def test_list_shows_the_tenants_container(api: NubeClient) -> None:
    need(docker_available(), "the Docker engine")
    run = api.submit(
        "POST",
        "/v1/containers",
        {"image": "busybox:latest", "command": ["sleep", "30"], "detach": True},
        wait=30,
    )
    assert run["status"] == "succeeded", run
    listed = api.submit("GET", "/v1/containers", wait=30)["result"]["containers"]
    assert [c["id"] for c in listed] == [run["result"]["id"]]


def test_hypervisor_info_fields(api: NubeClient) -> None:
    info = api.submit("GET", "/v1/hypervisors", wait=30)["result"]
    for key in (
        "hostname",
        "uri",
        "max_vcpus",
        "hypervisor_version",
        "libvirt_version",
        "node_info",
    ):
        assert key in info, key
    assert info["node_info"]["cpus"] >= 1


def test_idempotency_key_makes_one_job_and_one_container(api: NubeClient) -> None:
    need(docker_available(), "the Docker engine")
    body = {"image": "busybox:latest", "command": ["sleep", "30"], "detach": True}

    def post(_: int) -> str:
        return api.submit("POST", "/v1/containers", body, idempotency_key="same-key")["id"]

    with ThreadPoolExecutor(20) as pool:
        ids = set(pool.map(post, range(20)))
    assert len(ids) == 1
    job = api.job(ids.pop(), wait=30)
    assert job["status"] == "succeeded"
    assert len(docker_ps(f"nube.job={job['id']}")) == 1


def test_idempotency_key_with_another_body_is_422(api: NubeClient) -> None:
    api.submit(
        "POST",
        "/v1/containers",
        {"image": "busybox:latest", "command": ["true"]},
        idempotency_key="k1",
    )
    with pytest.raises(Exception) as raised:
        api.submit(
            "POST",
            "/v1/containers",
            {"image": "busybox:latest", "command": ["false"]},
            idempotency_key="k1",
        )
    assert raised.value.status == 422 and raised.value.code == "idempotency_key_reused"  # type: ignore[attr-defined]


def test_job_list_newest_first_with_cursor(api: NubeClient) -> None:
    ids = [api.submit("GET", "/v1/vms")["id"] for _ in range(5)]
    page1 = api.request("GET", "/v1/jobs", params={"limit": 3}).json()
    assert [j["id"] for j in page1["jobs"]] == ids[::-1][:3]
    page2 = api.request(
        "GET", "/v1/jobs", params={"limit": 3, "cursor": page1["next_cursor"]}
    ).json()
    assert [j["id"] for j in page2["jobs"]] == ids[::-1][3:]
    assert page2["next_cursor"] is None
    for job_id in ids:
        api.job(job_id, wait=30)
    done = api.request(
        "GET", "/v1/jobs", params={"status": "succeeded", "operation": "vms.list"}
    ).json()
    assert {j["id"] for j in done["jobs"]} == set(ids)


def test_cancel_a_queued_job(stack: Stack, api: NubeClient) -> None:
    """With the VM workers stopped the job stays queued; cancelled, it never runs."""
    stack.stop("worker-vms")
    try:
        _wait_queue_unserved(stack, "vms")
        job = api.submit("GET", "/v1/vms")
        cancelled = api.request("DELETE", f"/v1/jobs/{job['id']}").json()
        assert cancelled["status"] == "cancelled"
    finally:
        stack.start_worker("vms")
        stack.wait_ready(["vms"])
    time.sleep(1)
    after = api.job(job["id"])
    assert after["status"] == "cancelled" and after["attempts"] == 0


def test_queued_job_says_no_worker_then_completes(stack: Stack, api: NubeClient) -> None:
    stack.stop("worker-vms")
    try:
        _wait_queue_unserved(stack, "vms")
        job = api.submit("GET", "/v1/vms")
        time.sleep(0.5)
        job = api.job(job["id"])
        assert job["status"] == "queued"
        assert "no live worker serves queue 'vms'" in job["waiting"]
    finally:
        stack.start_worker("vms")
    done = api.job(job["id"], wait=60)
    assert done["status"] == "succeeded", done


def _wait_queue_unserved(stack: Stack, queue: str) -> None:
    for _ in range(150):
        if not requests.get(stack.api_url + "/readyz", timeout=2).json()["queues"][queue]:
            return
        time.sleep(0.1)
    raise AssertionError(f"queue {queue} still looks served")
