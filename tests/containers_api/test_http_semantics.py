"""HTTP semantics of the container service over a real stack (issue 12, item 1): a read answers
``200`` with the resource, ``202`` with the job only on ``Prefer: respond-async`` or when its
wait runs out; a job that failed within the wait answers its error's own status as
problem+json linking the job; ``GET /v1/jobs/<id>`` is always ``200``. And a name another
tenant holds tells nothing about their resource (docs/containers.md, "Names")."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.conftest import ClientFactory, need
from tests.containers_api.conftest import IMAGE, inspect, ok
from workers.drivers.names import backend_name

Name = Callable[[str], str]
PROBLEM = "application/problem+json"


def http(client: NubeClient, method: str, path: str, **kw: Any) -> requests.Response:
    """One raw request with the client's token (no status makes it raise)."""
    return client.session.request(method, client.url + path, timeout=60, **kw)


def job_link(response: requests.Response) -> str:
    """The job a ``200`` read or a problem links (``Link: <...>; rel="related"``)."""
    link = response.links["related"]["url"]
    assert link.startswith("/v1/jobs/"), link
    return str(link)


def assert_job_problem(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """A problem+json of a failed job: the error's status and code, the job linked three ways
    (the ``job`` member, ``Location`` and ``Link``); returns the problem."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM), response.headers
    problem = dict(response.json())
    assert problem["status"] == status and problem["code"] == code, problem
    assert problem["job"].startswith("/v1/jobs/"), problem
    assert response.headers["Location"] == problem["job"] == job_link(response)
    return problem


def test_a_read_answers_200_with_the_resource(api: NubeClient, name: Name) -> None:
    box = ok(api, "POST", "/v1/containers/create", {"image": IMAGE, "name": name("read")})
    response = http(api, "GET", "/v1/containers")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert [c["id"] for c in response.json()["containers"]] == [box["id"]]
    assert "Location" not in response.headers and "Preference-Applied" not in response.headers
    assert response.headers["Vary"] == "Prefer"
    # the job it ran is linked, and holds the same result
    job = http(api, "GET", job_link(response))
    assert job.status_code == 200 and job.json()["status"] == "succeeded"
    assert job.json()["operation"] == "containers.list"
    assert job.json()["result"] == response.json()
    # an inspect too; Prefer: wait=N sets the wait and says so
    seen = http(api, "GET", f"/v1/containers/{box['id']}", headers={"Prefer": "wait=20"})
    assert seen.status_code == 200 and seen.json()["id"] == box["id"]
    assert seen.headers["Preference-Applied"] == "wait=20"


def test_respond_async_answers_202_with_the_job(api: NubeClient) -> None:
    response = http(api, "GET", "/v1/containers", headers={"Prefer": "respond-async"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert response.headers["Preference-Applied"] == "respond-async"
    assert job["operation"] == "containers.list" and job["status"] in ("queued", "running")
    done = http(api, "GET", f"/v1/jobs/{job['id']}", params={"wait": 20})
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    assert done.json()["result"] == {"containers": []}


@pytest.fixture(scope="module")
def agentless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A private Redis and API (no agent, no worker: every job stays queued) whose reads wait
    1 s (``NUBE_READ_WAIT_SECONDS=1``)."""
    need(shutil.which("redis-server") is not None, "redis-server")
    stack = Stack(
        workdir=tmp_path_factory.mktemp("agentless"), extra_env={"NUBE_READ_WAIT_SECONDS": "1"}
    )
    try:
        stack.start_redis()
        stack.start_api()
        yield stack
    finally:
        stack.stop_all()


def test_a_read_whose_wait_runs_out_answers_202(agentless: Stack) -> None:
    secret, _ = TokenStore(agentless.redis()).create("slow", [Scope.READ])
    client = NubeClient(agentless.api_url, secret)
    started = time.monotonic()
    response = http(client, "GET", "/v1/containers")
    waited = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert 1.0 <= waited < 5, waited  # NUBE_READ_WAIT_SECONDS, not the default 5 s
    assert "Preference-Applied" not in response.headers  # nothing was asked
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and "no live agent" in job["waiting"]
    # Prefer: wait=N sets the wait of a read, and the answer says it was honoured
    asked = http(client, "GET", "/v1/containers", headers={"Prefer": "wait=2"})
    assert asked.status_code == 202 and asked.headers["Preference-Applied"] == "wait=2"
    # respond-async does not wait at all
    started = time.monotonic()
    at_once = http(client, "GET", "/v1/containers", headers={"Prefer": "respond-async"})
    assert at_once.status_code == 202 and time.monotonic() - started < 1
    # and a job is read with 200 whatever its state
    assert http(client, "GET", f"/v1/jobs/{job['id']}").status_code == 200


def test_a_failed_create_answers_the_errors_status_and_links_the_job(api: NubeClient) -> None:
    response = http(
        api,
        "POST",
        "/v1/containers",
        json={"image": "nube-no-such-image:1", "command": ["true"]},
        headers={"Prefer": "wait=30"},
    )
    problem = assert_job_problem(response, 404, "not_found")
    assert response.headers["Preference-Applied"] == "wait=30"
    assert "nube-no-such-image" in problem["detail"] and problem["retryable"] is False
    assert problem["instance"] == "/v1/containers"
    for params in ({"wait": 20}, {}):  # the job itself reads 200, waited on or not
        job = http(api, "GET", problem["job"], params=params)
        assert job.status_code == 200, job.text
        assert job.json()["status"] == "failed"
        assert job.json()["error"]["code"] == "not_found"
        assert job.json()["error"]["status"] == 404


def test_a_failed_read_is_404_with_the_job(api: NubeClient, name: Name) -> None:
    response = http(api, "GET", f"/v1/containers/{name('nobody')}")
    problem = assert_job_problem(response, 404, "not_found")
    assert http(api, "GET", problem["job"]).json()["operation"] == "containers.inspect"


def test_a_state_conflict_is_409(api: NubeClient, name: Name) -> None:
    box = ok(api, "POST", "/v1/containers/create", {"image": IMAGE, "name": name("idle")})
    response = http(
        api, "POST", f"/v1/containers/{box['id']}/stop", json={}, headers={"Prefer": "wait=30"}
    )
    assert_job_problem(response, 409, "conflict")


def test_writes_answer_202_unless_asked_to_wait(api: NubeClient, name: Name) -> None:
    body = {"image": IMAGE, "name": name("write"), "command": ["sleep", "30"]}
    accepted = http(api, "POST", "/v1/containers/create", json=body)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    assert accepted.headers["Location"] == f"/v1/jobs/{job_id}"
    # the finished create read as a job: 200 (not 201), with or without ?wait
    assert http(api, "GET", f"/v1/jobs/{job_id}", params={"wait": 20}).status_code == 200
    assert http(api, "GET", f"/v1/jobs/{job_id}").status_code == 200
    # a waited change: 200 with the job (201 only where it creates)
    started = http(
        api, "POST", f"/v1/containers/{body['name']}/start", json={}, headers={"Prefer": "wait=30"}
    )
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "succeeded"
    assert started.headers["Preference-Applied"] == "wait=30"
    made = http(
        api,
        "POST",
        "/v1/container-volumes",
        json={"name": f"{body['name']}-vol"},
        headers={"Prefer": "wait=30"},
    )
    assert made.status_code == 201, made.text


def test_a_name_the_caller_holds_is_409_and_another_tenants_is_free(
    make_client: ClientFactory, name: Name
) -> None:
    """Names are per tenant (tests/containers_api/test_tenancy_api.py has the whole of it): a
    create with a name the caller holds answers 409 naming only the name; another tenant's
    create with it answers 201."""
    a, b = make_client(), make_client()
    box, net, vol = name("held"), name("net"), name("vol")
    held = ok(a, "POST", "/v1/containers/create", {"image": IMAGE, "name": box})
    ok(a, "POST", "/v1/container-networks", {"name": net})
    ok(a, "POST", "/v1/container-volumes", {"name": vol})
    wait = {"Prefer": "wait=30"}
    creates = (
        ("/v1/containers/create", {"image": IMAGE, "name": box}),
        ("/v1/containers", {"image": IMAGE, "name": box, "detach": True}),
        ("/v1/container-networks", {"name": net}),
        ("/v1/container-volumes", {"name": vol}),
    )
    details = []
    for path, body in creates:
        answer = http(a, "POST", path, json=body, headers=wait)
        problem = assert_job_problem(answer, 409, "conflict")
        details.append(problem["detail"])
        assert held["id"][:12] not in json.dumps(problem)
    assert details == [
        f"the container name '{box}' is already in use",
        f"the container name '{box}' is already in use",
        f"the network name '{net}' is already in use",
        f"the volume name '{vol}' is already in use",
    ]
    for path, body in (creates[0], *creates[2:]):
        made = http(b, "POST", path, json=body, headers=wait)
        assert made.status_code == 201, made.text
    found = inspect("container", backend_name(a.tenant, box))  # type: ignore[attr-defined]
    assert found is not None and found["Id"] == held["id"]
