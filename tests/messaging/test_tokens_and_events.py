"""Token management over HTTP and the CLI, and the job event stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.conftest import ClientFactory


def test_admin_creates_lists_and_revokes_tokens(stack: Stack, make_client: ClientFactory) -> None:
    admin = make_client(scopes=("admin",))
    created = admin.request(
        "POST", "/v1/tokens", json={"tenant": "zeta", "scopes": ["read"]}
    ).json()
    assert created["token"].startswith("nube_") and created["tenant"] == "zeta"
    listed = admin.request("GET", "/v1/tokens").json()["tokens"]
    assert created["id"] in [t["id"] for t in listed]
    assert created["token"] not in json.dumps(listed)  # the secret is shown once only
    assert not [k for k in stack.redis().keys("nube:token:*") if created["token"] in k]
    reader = NubeClient(stack.api_url, created["token"])
    assert reader.request("GET", "/v1/jobs").status_code == 200
    assert admin.session.delete(f"{stack.api_url}/v1/tokens/{created['id']}").status_code == 204
    r = reader.session.get(stack.api_url + "/v1/jobs")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"


def test_bad_token_request_is_422(stack: Stack, make_client: ClientFactory) -> None:
    admin = make_client(scopes=("admin",))
    r = admin.session.post(
        stack.api_url + "/v1/tokens", json={"tenant": "Bad Tenant!", "scopes": ["read"]}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "tenant"
    r = admin.session.post(stack.api_url + "/v1/tokens", json={"tenant": "ok", "scopes": ["root"]})
    assert r.status_code == 422


def test_cli_manages_tokens(stack: Stack, tmp_path: Path) -> None:
    # with the stack's Redis settings and no API configured (run away from any .nube/local.env
    # a `make up` left in the checkout), the CLI manages tokens in Redis directly
    env = stack.env()
    create = subprocess.run(
        [
            sys.executable,
            "-m",
            "nube.tools.cli",
            "tokens",
            "create",
            "--tenant",
            "clitenant",
            "--scope",
            "read",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert create.returncode == 0, create.stderr
    secret = create.stdout.split()[0]
    assert requests.get(
        stack.api_url + "/v1/jobs", headers={"Authorization": f"Bearer {secret}"}
    ).ok
    listing = subprocess.run(
        [sys.executable, "-m", "nube.tools.cli", "tokens", "list"],
        env={**env, "COLUMNS": "200"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(row for row in listing.stdout.splitlines() if "clitenant" in row)
    token_id = line.split()[0]  # the first column: ID
    revoke = subprocess.run(
        [sys.executable, "-m", "nube.tools.cli", "tokens", "revoke", token_id],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert revoke.returncode == 0, revoke.stderr
    assert (
        requests.get(
            stack.api_url + "/v1/jobs", headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        == 401
    )


def test_events_stream_follows_the_job(stack: Stack, api: NubeClient) -> None:
    job = api.submit("GET", "/v1/vms")
    with api.session.get(
        f"{stack.api_url}/v1/jobs/{job['id']}/events", stream=True, timeout=60
    ) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = [
            line.split(": ", 1)[1]
            for line in r.iter_lines(decode_unicode=True)
            if line.startswith("event: ")
        ]
    assert events[0] == "job" and events[-1] in ("succeeded", "job")
    assert api.job(job["id"])["status"] == "succeeded"


def test_services_and_nodes_show_live_workers(stack: Stack, api: NubeClient) -> None:
    services = api.request("GET", "/v1/services").json()["services"]
    assert {"agent", "containers", "vms"} <= set(services)
    run = next(op for op in services["containers"]["operations"] if op["name"] == "containers.run")
    assert run["path"] == "/v1/containers" and "image" in run["parameters"]["properties"]
    for kind in ("agent", "containers", "vms"):
        assert services[kind]["instances"], kind
    vms = services["vms"]["instances"][0]
    assert vms["driver"] and vms["backend_version"] and vms["queues"][0] == "vms"
    nodes = api.request("GET", "/v1/nodes").json()["nodes"]
    kinds = {s["kind"] for node in nodes for s in node["services"]}
    assert kinds == {"agent", "containers", "vms"}
