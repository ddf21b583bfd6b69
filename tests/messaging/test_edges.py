"""Bad input at the edge: each gets its status and problem+json code, and nothing is queued.

Messages put straight into the ingress queue (bypassing the API) are refused or fail their job
on each broker: on Redis through the session stack, on RabbitMQ through a private agent's.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from nube.broker import INGRESS_QUEUE
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.brokers import Broker
from tests.conftest import ClientFactory, agent_stack


def queued_jobs(stack: Stack, tenant: str) -> int:
    return int(stack.redis().zcard(f"nube:jobs:{tenant}"))


def assert_problem(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and body["status"] == status and body["detail"]
    return body


def test_no_token_is_401(stack: Stack) -> None:
    assert_problem(requests.get(stack.api_url + "/v1/jobs"), 401, "unauthorized")


def test_wrong_token_is_401(stack: Stack) -> None:
    r = requests.get(stack.api_url + "/v1/jobs", headers={"Authorization": "Bearer nube_wrong"})
    assert_problem(r, 401, "unauthorized")


def test_read_token_cannot_write(stack: Stack, make_client: ClientFactory) -> None:
    reader = make_client(scopes=("read",))
    r = reader.session.post(stack.api_url + "/v1/containers", json={"image": "busybox"})
    assert_problem(r, 403, "forbidden")
    assert queued_jobs(stack, reader.tenant) == 0  # type: ignore[attr-defined]


def test_non_admin_cannot_manage_tokens(stack: Stack, api: NubeClient) -> None:
    assert_problem(api.session.get(stack.api_url + "/v1/tokens"), 403, "forbidden")


def test_other_tenants_job_is_404(stack: Stack, make_client: ClientFactory) -> None:
    alice, bob = make_client(), make_client()
    job = alice.submit("GET", "/v1/vms")
    body = assert_problem(
        bob.session.get(stack.api_url + f"/v1/jobs/{job['id']}"), 404, "not_found"
    )
    assert alice.tenant not in json.dumps(body)  # type: ignore[attr-defined]
    assert_problem(bob.session.delete(stack.api_url + f"/v1/jobs/{job['id']}"), 404, "not_found")
    assert job["id"] not in json.dumps(bob.request("GET", "/v1/jobs").json())


def test_unknown_job_is_404(stack: Stack, api: NubeClient) -> None:
    assert_problem(api.session.get(stack.api_url + f"/v1/jobs/{uuid.uuid4()}"), 404, "not_found")


def test_oversized_body_is_413(stack: Stack, api: NubeClient) -> None:
    body = {"image": "busybox", "env": {"BIG": "x" * (2 << 20)}}
    assert_problem(
        api.session.post(stack.api_url + "/v1/containers", json=body), 413, "invalid_request"
    )
    assert queued_jobs(stack, api.tenant) == 0  # type: ignore[attr-defined]


def test_malformed_json_is_400(stack: Stack, api: NubeClient) -> None:
    r = api.session.post(
        stack.api_url + "/v1/containers",
        data="{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_problem(r, 400, "invalid_request")
    assert queued_jobs(stack, api.tenant) == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image": "busybox", "command": "echo hi"}, "command"),
        ({"image": "busybox", "command": ["echo", 3]}, "command.1"),
        ({"image": "busybox", "env": {"1BAD": "x"}}, "env.1BAD.[key]"),
        ({"image": "busybox", "env": ["A=1"]}, "env"),
        ({"image": "Not An Image!"}, "image"),
        ({"command": ["true"]}, "image"),
        ({"image": "busybox", "privileged": True}, "privileged"),
    ],
)
def test_schema_errors_are_422_with_the_field(
    stack: Stack, api: NubeClient, body: dict, field: str
) -> None:
    r = api.session.post(stack.api_url + "/v1/containers", json=body)
    problem = assert_problem(r, 422, "invalid_request")
    assert field in [e["field"] for e in problem["errors"]], problem
    assert queued_jobs(stack, api.tenant) == 0  # type: ignore[attr-defined]


def test_bad_query_value_is_422(stack: Stack, api: NubeClient) -> None:
    r = api.session.get(stack.api_url + "/v1/vms", params={"state": "<bogus>"})
    assert_problem(r, 422, "invalid_request")
    r = api.session.get(stack.api_url + "/v1/jobs", params={"limit": "many"})
    assert_problem(r, 422, "invalid_request")


def test_unknown_route_and_method_are_problems(stack: Stack, api: NubeClient) -> None:
    assert_problem(api.session.get(stack.api_url + "/v1/nothing"), 404, "not_found")
    assert_problem(api.session.put(stack.api_url + "/v1/jobs"), 405, "method_not_allowed")


@pytest.fixture(scope="module")
def ingress_stack(
    module_broker: Broker, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """The session stack on Redis; on RabbitMQ a private one (Redis, agent, API)."""
    if not module_broker.amqp:
        yield request.getfixturevalue("stack")
        return
    with agent_stack(tmp_path_factory.mktemp("ingress"), **module_broker.env()) as stack:
        yield stack


@pytest.fixture
def ingress_api(ingress_stack: Stack) -> NubeClient:
    from nube.tokens import Scope, TokenStore

    tenant = f"t{secrets.token_hex(4)}"
    secret, _ = TokenStore(ingress_stack.redis()).create(tenant, [Scope.READ, Scope.WRITE])
    client = NubeClient(ingress_stack.api_url, secret)
    client.tenant = tenant  # type: ignore[attr-defined]
    return client


def _push(stack: Stack, request: dict, task_id: str | None = None, sealed: bool = True) -> None:
    """Publish a relay message straight into the ingress queue, bypassing the API, through a
    Celery app made as nube makes it (on RabbitMQ the queue must be declared as it is: quorum)."""
    from nube.broker import make_celery
    from nube.sealing.setup import load_security, secure_app
    from nube.settings import load_settings

    settings = load_settings(stack.env())
    app = make_celery(settings, "test-push")
    if sealed:
        secure_app(app, load_security(settings, stack.redis()))
    job = request.get("job_id")
    headers = {"nube": {"tenant": request.get("tenant", "-"), "job": job or "-"}} if sealed else {}
    app.send_task(
        "agent.relay",
        args=(request,),
        queue=INGRESS_QUEUE,
        task_id=task_id or (f"relay-{job}" if job else None),
        headers=headers,
    )


def _job_record(stack: Stack, tenant: str) -> dict:
    from nube.jobs import Job, JobStore, new_job_id, now_iso

    job = Job(
        id=new_job_id(),
        operation="containers.run",
        tenant=tenant,
        queue="containers",
        submitted_at=now_iso(),
    )
    return JobStore(stack.redis()).create(job).model_dump(mode="json")


def test_invalid_message_in_ingress_fails_its_job(
    ingress_stack: Stack, ingress_api: NubeClient
) -> None:
    stack, api = ingress_stack, ingress_api
    tenant = api.tenant  # type: ignore[attr-defined]
    job = _job_record(stack, tenant)
    _push(
        stack,
        {
            "job_id": job["id"],
            "operation": "containers.run",
            "tenant": tenant,
            "params": {"image": "busybox", "privileged": True},
        },
    )
    done = api.job(job["id"], wait=30)
    assert done["status"] == "failed" and done["error"]["code"] == "invalid_request"
    assert "running" not in [e["event"] for e in done["history"]]  # never reached a worker


def test_unknown_operation_in_ingress_fails_its_job(
    ingress_stack: Stack, ingress_api: NubeClient
) -> None:
    stack, api = ingress_stack, ingress_api
    tenant = api.tenant  # type: ignore[attr-defined]
    job = _job_record(stack, tenant)
    _push(
        stack,
        {
            "job_id": job["id"],
            "operation": "containers.format_disk",
            "tenant": tenant,
            "params": {},
        },
    )
    done = api.job(job["id"], wait=30)
    assert done["status"] == "failed" and done["error"]["code"] == "not_found"


def test_plaintext_message_in_ingress_is_refused(
    ingress_stack: Stack, ingress_api: NubeClient
) -> None:
    stack, api = ingress_stack, ingress_api
    tenant = api.tenant  # type: ignore[attr-defined]
    job = _job_record(stack, tenant)
    _push(
        stack,
        {
            "job_id": job["id"],
            "operation": "containers.run",
            "tenant": tenant,
            "params": {"image": "busybox"},
        },
        sealed=False,
    )
    done = api.job(job["id"], wait=30)
    assert done["status"] == "failed" and done["error"]["code"] == "message_rejected"
    assert "running" not in [e["event"] for e in done["history"]]


def test_message_without_job_is_dropped_and_logged(ingress_stack: Stack) -> None:
    stack = ingress_stack
    # sealed for job "-" under a random task id: refused before decoding, as a misbound copy
    _push(stack, {"operation": "containers.run", "params": {"image": "busybox"}})
    log = stack.workdir / "agent.log"
    for _ in range(100):
        if "reason=misbound_task_id" in log.read_text():
            return
        time.sleep(0.1)
    raise AssertionError("the agent did not log the dropped message")


def test_health_and_readiness(stack: Stack) -> None:
    assert requests.get(stack.api_url + "/healthz").json() == {"status": "ok"}
    ready = requests.get(stack.api_url + "/readyz").json()
    assert ready["redis"] == "ok" and ready["queues"]["nube.ingress"]


def test_openapi_covers_every_operation(stack: Stack) -> None:
    from nube.catalog import CATALOG

    doc = requests.get(stack.api_url + "/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    ids = {spec["operationId"] for methods in doc["paths"].values() for spec in methods.values()}
    assert {op.name for op in CATALOG} <= ids
    page = requests.get(stack.api_url + "/docs")
    assert (
        page.status_code == 200 and "containers.run" in page.text and "cdn" not in page.text.lower()
    )
