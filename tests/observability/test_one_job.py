"""One job through the real stack: one trace across api → agent → worker, its id in the JSON
logs of all three services, the request id echoed, and no parameter value anywhere."""

from __future__ import annotations

import functools
import secrets
from typing import Any

import requests

from nube.tools.devstack import Stack
from tests.observability.conftest import eventually, finished, json_lines, submit


def spans_of(stack: Stack, trace_id: str) -> list[dict[str, Any]]:
    path = stack.workdir / "spans.jsonl"
    if not path.exists():
        return []
    return [s for s in json_lines(path) if s["trace_id"] == trace_id]


def test_one_job_is_one_trace_from_the_request_to_the_driver(observed: Stack, token: str) -> None:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    answer = submit(observed, token, {"traceparent": f"00-{trace_id}-{client_span}-01"})
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["trace_id"] == trace_id  # the job's representation names its trace
    assert finished(observed, token, job["id"])["status"] == "succeeded"

    def chain() -> list[dict[str, Any]] | None:
        spans = spans_of(observed, trace_id)
        names = {s["name"] for s in spans}
        done = "run containers.list" in names and any(n.startswith("driver ") for n in names)
        return spans if done else None

    spans = eventually(chain)
    assert spans, f"no driver span in trace {trace_id}: {spans_of(observed, trace_id)}"
    by_id = {s["span_id"]: s for s in spans}
    services = {s["service"] for s in spans}
    assert {"nube-api", "nube-agent", "nube-containers"} <= services

    def ancestry(span: dict[str, Any]) -> list[str]:
        names = [f"{span['service']}:{span['name']}"]
        while span["parent_id"] in by_id:
            span = by_id[span["parent_id"]]
            names.append(f"{span['service']}:{span['name']}")
        assert span["parent_id"] == client_span  # the root continues the client's span
        return names

    [driver] = [s for s in spans if s["name"].startswith("driver ")]
    assert ancestry(driver) == [
        f"nube-containers:{driver['name']}",
        "nube-containers:run containers.list",
        "nube-agent:relay containers.list",
        "nube-api:GET /v1/containers",
    ]
    names = {s["name"] for s in spans}
    assert {"queue wait ingress", "queue wait worker"} <= names
    [api_publish] = [s for s in spans if s["name"] == "publish agent.relay"]
    assert ancestry(api_publish)[1:] == ["nube-api:GET /v1/containers"]
    [relay_publish] = [s for s in spans if s["name"] == "publish containers.list"]
    assert ancestry(relay_publish)[1:] == [
        "nube-agent:relay containers.list",
        "nube-api:GET /v1/containers",
    ]
    assert any(n.startswith("middleware PolicyCheck") for n in names)
    waits = [s for s in spans if s["name"].startswith("queue wait")]
    assert all(s["end"] >= s["start"] for s in waits)


def test_a_job_can_be_followed_by_its_id_in_every_services_json_logs(
    observed: Stack, token: str
) -> None:
    request_id = f"req-{secrets.token_hex(4)}"
    answer = submit(observed, token, {"X-Request-ID": request_id})
    assert answer.headers["X-Request-ID"] == request_id  # honoured and echoed
    job = finished(observed, token, answer.json()["id"])
    assert job["status"] == "succeeded"

    def lines_of(name: str) -> list[dict[str, Any]]:
        return json_lines(observed.workdir / f"{name}.log")

    def with_job(name: str) -> list[dict[str, Any]]:
        return [line for line in lines_of(name) if line.get("job_id") == job["id"]]

    for name, service in (("api", "api"), ("agent", "agent"), ("worker-containers", "containers")):
        found = eventually(functools.partial(with_job, name))
        assert found, f"no log line of {name} names job {job['id']}"
        assert {line["service"] for line in found} == {service}
        assert all(line["node"] and line["level"] and line["time"] for line in found)
        if service != "api":
            assert {line["tenant"] for line in found} == {job["tenant"]}
            assert {line["operation"] for line in found} == {"containers.list"}
            assert {line["trace_id"] for line in found} == {job["trace_id"]}
    [access] = [line for line in lines_of("api") if line.get("request_id") == request_id]
    assert access["logger"] == "nube.access" and access["job_id"] == job["id"]
    # Celery's own records are JSON lines too
    assert any(line["logger"].startswith("celery") for line in lines_of("worker-containers"))


def test_a_bad_request_id_is_replaced_and_a_new_one_is_echoed(observed: Stack) -> None:
    answer = requests.get(
        observed.api_url + "/healthz", headers={"X-Request-ID": "bad id\twith spaces"}, timeout=5
    )
    assert answer.headers["X-Request-ID"] not in ("", "bad id\twith spaces")


def test_no_parameter_value_reaches_a_log_or_a_span(observed: Stack, token: str) -> None:
    secret = f"s3cret-{secrets.token_hex(8)}"
    answer = requests.post(
        observed.api_url + "/v1/containers",
        json={"image": "busybox", "command": ["true"], "env": {"TOKEN": secret}},
        headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]

    assert finished(observed, token, job_id)["status"] == "succeeded"
    for path in observed.workdir.glob("*.log"):
        assert secret not in path.read_text(), path.name
    assert secret not in (observed.workdir / "spans.jsonl").read_text()
