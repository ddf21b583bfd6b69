"""The agent on the real path (issue 5): nothing readable in Redis or Flower, policy denials
never reach a worker, refused and replayed messages are audited, and the audit chain verifies."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.conftest import ClientFactory, docker_available, need


def all_key_dumps(stack: Stack) -> bytes:
    """Every key's serialized value (like `redis-cli --scan` + `DUMP`)."""
    import redis

    raw = redis.Redis(port=stack.redis_port, password=stack.redis_password)
    return b"".join(k + (raw.dump(k) or b"") for k in raw.scan_iter(count=500))


@pytest.fixture(scope="module")
def flower(stack: Stack) -> Iterator[str]:
    stack.start_flower()
    url = stack.flower_url
    for _ in range(150):
        try:
            if requests.get(url + "/healthcheck", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    yield url
    stack.stop("flower")


def test_marker_secret_is_never_readable(stack: Stack, api: NubeClient, flower: str) -> None:
    need(docker_available(), "the Docker engine")
    marker = f"MARKER{secrets.token_hex(8)}"
    env = {"API_TOKEN": marker}
    run = api.submit(
        "POST", "/v1/containers", {"image": "busybox:latest", "command": ["true"], "env": env}
    )
    dumps_during = all_key_dumps(stack)
    assert api.job(run["id"], wait=30)["status"] == "succeeded"
    made = api.submit(
        "POST",
        "/v1/containers",
        {"image": "busybox:latest", "command": ["sleep", "30"], "env": env, "detach": True},
        wait=30,
    )
    inspected = api.submit(
        "POST",
        f"/v1/containers/{made['result']['id']}/exec",
        {"command": ["sh", "-c", "echo $API_TOKEN"]},
        wait=30,
    )
    assert inspected["status"] == "succeeded", inspected
    assert inspected["result"]["stdout"].strip() == marker  # the owner reads it over the API
    time.sleep(1)  # let events and results land
    assert marker.encode() not in dumps_during
    assert marker.encode() not in all_key_dumps(stack)
    tasks = requests.get(flower + "/api/tasks", auth=("admin", stack.flower_password), timeout=10)
    assert tasks.ok and inspected["id"] in tasks.text
    assert marker not in tasks.text
    assert requests.get(flower + "/api/tasks", timeout=10).status_code == 401


def test_policy_denial_never_reaches_the_engine(stack: Stack, make_client: ClientFactory) -> None:
    need(docker_available(), "the Docker engine")
    client = make_client(tenant="restricted")
    since = int(time.time()) - 1
    cases = [
        ({"image": "alpine:latest", "command": ["true"]}, "images"),
        ({"image": "busybox:latest", "command": ["true"], "memory": "1g"}, "max_memory"),
    ]
    for body, rule in cases:
        job = client.submit("POST", "/v1/containers", body, wait=30)
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "policy_denied" and job["error"]["details"]["rule"] == rule
        assert "running" not in [e["event"] for e in job["history"]]
    events = subprocess.run(
        [
            "docker",
            "events",
            "--since",
            str(since),
            "--until",
            str(int(time.time()) + 1),
            "--filter",
            "label=nube.tenant=restricted",
            "--filter",
            "event=create",
            "--format",
            "{{.ID}}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert events.stdout.split() == []
    audit = (
        make_client(scopes=("admin",))
        .request("GET", "/v1/audit", params={"tenant": "restricted", "limit": 1000})
        .json()["records"]
    )
    denied = [r for r in audit if r["decision"] == "denied"]
    assert {
        json.loads(r["detail"])["rule"] if isinstance(r["detail"], str) else r["detail"]["rule"]
        for r in denied
    } >= {"images", "max_memory"}


def test_container_count_cap(stack: Stack, make_client: ClientFactory) -> None:
    need(docker_available(), "the Docker engine")
    client = make_client(tenant="restricted")
    body = {"image": "busybox:latest", "command": ["sleep", "30"], "detach": True}
    first = client.submit("POST", "/v1/containers", body, wait=30)
    assert first["status"] == "succeeded", first
    second = client.submit("POST", "/v1/containers", body, wait=60)
    assert second["status"] == "failed" and second["error"]["details"]["rule"] == "max_containers"


def test_vm_cap_denied_before_libvirt(stack: Stack, make_client: ClientFactory) -> None:
    client = make_client(tenant="restricted")
    job = client.submit(
        "POST", "/v1/vms", {"name": "nubetest-capped", "memory_mib": 64, "vcpus": 2}, wait=30
    )
    assert job["status"] == "failed" and job["error"]["details"]["rule"] == "max_vcpus"
    assert "running" not in [e["event"] for e in job["history"]]


def test_hardening_defaults_applied(stack: Stack, api: NubeClient) -> None:
    need(docker_available(), "the Docker engine")
    made = api.submit(
        "POST",
        "/v1/containers",
        {"image": "busybox:latest", "command": ["sleep", "30"], "detach": True},
        wait=30,
    )
    host = json.loads(
        subprocess.run(
            ["docker", "inspect", "--format", "{{json .HostConfig}}", made["result"]["id"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["PidsLimit"] == 256


def test_replayed_message_is_refused_and_audited(stack: Stack, api: NubeClient) -> None:
    """Capture a sealed operation message, let it run, push it again: refused, audited."""
    import redis

    raw = redis.Redis(port=stack.redis_port, password=stack.redis_password)
    stack.stop("worker-vms")
    try:
        for _ in range(150):
            if not raw.keys("nube:service:vms.*"):
                break
            time.sleep(0.1)
        job = api.submit("GET", "/v1/vms")
        for _ in range(100):
            if raw.llen("vms"):
                break
            time.sleep(0.1)
        captured = raw.lindex("vms", 0)
        assert captured is not None
        assert b"vms.list" not in json.loads(captured)["body"].encode()  # body sealed
    finally:
        stack.start_worker("vms")
    assert api.job(job["id"], wait=60)["status"] == "succeeded"
    # The nonce is marked done by the worker's post-run hook, just after the job is recorded
    # succeeded; a copy arriving in between is admitted, then skipped (the job is terminal).
    time.sleep(1)
    raw.lpush("vms", captured)
    for _ in range(100):
        records = [r for r in _audit(stack, job["id"]) if r["outcome"] == "refused"]
        if records:
            break
        time.sleep(0.2)
    assert records and "replayed" in json.dumps(records[0])
    assert api.job(job["id"])["attempts"] == 1  # it never ran again


def test_audit_log_records_request_and_outcome_and_verifies(stack: Stack, api: NubeClient) -> None:
    job = api.submit("GET", "/v1/vms", wait=30)
    for _ in range(50):
        outcomes = [r["outcome"] for r in _audit(stack, job["id"])]
        if "succeeded" in outcomes:
            break
        time.sleep(0.2)
    assert "routed" in outcomes and "started" in outcomes and "succeeded" in outcomes
    verify = subprocess.run(
        [sys.executable, "-m", "nube.tools.cli", "audit", "verify"],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _audit(stack: Stack, job_id: str) -> list[dict]:
    from nube.audit.log import AuditLog, Query

    records, _ = AuditLog(stack.redis()).query(Query(job_id=job_id, limit=1000))
    return records
