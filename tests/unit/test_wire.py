"""The wire models: what crosses the broker round-trips, and a malformed message is refused
naming the field, never quoting a value; the publish helper sends them in the shape the tasks
and the sealing binding read; the Docker driver alone maps the policy's hardening to its names."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from celery import Celery
from pydantic import ValidationError

from agents.middleware import RelayMessage
from agents.relay import Relay
from nube.broker import INGRESS_QUEUE, RELAY_TASK, relay_task_id
from nube.jobs import Job, JobStore, now_iso
from nube.publish import publish_operation, publish_request
from nube.sealing.celery_hooks import PUBLISH_HEADER, bind_and_redact
from nube.sealing.serializer import BINDING_KEY
from nube.settings import Settings
from nube.wire import Hardening, JobMeta, RelayRequest, field_error
from workers.drivers.docker.specs import hardening_kwargs

SECRET = "s3cret-value"
REQUEST = RelayRequest(
    job_id="j1",
    operation="containers.run",
    tenant="acme",
    params={"image": "busybox", "env": {"TOKEN": SECRET}},
    token_id="t1",
    admin=True,
)
HARDENED = Hardening(
    drop_all_capabilities=True, no_new_privileges=True, memory=512 * 1024**2, cpus=2, pids_limit=256
)


def through_json(data: Any) -> Any:
    return json.loads(json.dumps(data))


def test_a_relay_request_round_trips() -> None:
    assert RelayRequest.model_validate(through_json(REQUEST.model_dump(mode="json"))) == REQUEST
    assert RelayRequest.model_validate_json(REQUEST.model_dump_json()) == REQUEST


def test_job_meta_round_trips_with_its_hardening() -> None:
    meta = JobMeta(tenant="acme", admin=False, hardening=HARDENED)
    assert JobMeta.model_validate(through_json(meta.model_dump(mode="json"))) == meta
    assert JobMeta.model_validate({"tenant": "acme"}).hardening == Hardening()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"tenant": None}, "tenant"),
        ({"job_id": 7}, "job_id"),
        ({"params": [SECRET]}, "params"),
        ({"admin": SECRET}, "admin"),
        ({"token_id": {"x": SECRET}}, "token_id"),
        ({SECRET: 1}, SECRET),  # an unknown field: named (it is a key), refused
    ],
)
def test_a_malformed_request_is_refused_naming_the_field(change: dict, field: str) -> None:
    raw = {**REQUEST.model_dump(mode="json"), **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ValidationError) as e:
        RelayRequest.model_validate(raw)
    why = field_error(e.value)
    assert why.startswith(f"{field}: ")
    assert SECRET not in why.removeprefix(f"{field}: ")


def test_hardening_is_refused_when_it_is_not_a_limit() -> None:
    with pytest.raises(ValidationError) as e:
        JobMeta.model_validate({"tenant": "a", "hardening": {"pids_limit": 0}})
    assert field_error(e.value).startswith("hardening.pids_limit: ")


def test_hardening_maps_to_docker_py_keywords() -> None:
    assert hardening_kwargs(HARDENED) == {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "mem_limit": 512 * 1024**2,
        "nano_cpus": 2_000_000_000,
        "pids_limit": 256,
    }
    assert hardening_kwargs(Hardening()) == {}


class Jobs:
    """The few job store calls the relay and the publish helper make, recorded."""

    def __init__(self) -> None:
        self.failed: dict[str, dict[str, Any]] = {}
        self.kept: dict[str, RelayRequest] = {}

    def fail(self, job_id: str, error: dict[str, Any]) -> None:
        self.failed[job_id] = error

    def keep_request(self, job: Job, request: RelayRequest) -> None:
        self.kept[job.id] = request


class Sent:
    """A Celery app's ``send_task``, recorded."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def send_task(self, name: str, **options: Any) -> None:
        self.calls.append({"name": name, **options})


@pytest.mark.parametrize(
    "raw, why",
    [
        ({"job_id": "j9", "operation": "vms.list"}, "tenant: Field required"),
        ({"job_id": "j9", "operation": "vms.list", "tenant": "a", "params": SECRET}, "params: "),
    ],
)
def test_the_relay_fails_the_job_of_a_malformed_request(raw: dict[str, Any], why: str) -> None:
    jobs = Jobs()
    Relay(cast(Celery, Sent()), cast(JobStore, jobs), [], Settings()).relay(raw)
    error = jobs.failed["j9"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith(f"malformed request: {why}")
    assert SECRET not in json.dumps(error)


def test_a_relay_request_is_sent_to_the_ingress_queue_and_kept() -> None:
    app, jobs = Sent(), Jobs()
    job = Job(
        id="j1",
        operation="containers.run",
        tenant="acme",
        queue="containers",
        target="busybox",
        submitted_at=now_iso(),
    )
    publish_request(cast(Celery, app), cast(JobStore, jobs), job, REQUEST)
    [sent] = app.calls
    assert sent["name"] == RELAY_TASK and sent["queue"] == INGRESS_QUEUE
    assert sent["task_id"] == relay_task_id("j1")
    assert RelayRequest.model_validate(through_json(sent["args"][0])) == REQUEST
    assert sent["headers"][PUBLISH_HEADER] == {
        "tenant": "acme",
        "job": "j1",
        "op": "containers.run",
        "target": "busybox",
    }
    assert jobs.kept == {"j1": REQUEST}


def test_an_operation_carries_its_job_meta_and_binds_to_its_tenant() -> None:
    app = Sent()
    message = RelayMessage.of(REQUEST)
    message.hardening = HARDENED
    publish_operation(
        cast(Celery, app), "j1", "containers.run", "containers", message.params, message.job_meta()
    )
    [sent] = app.calls
    assert sent["task_id"] == "j1" and sent["queue"] == "containers"
    assert sent["kwargs"]["params"] == REQUEST.params
    meta = JobMeta.model_validate(through_json(sent["kwargs"]["job"]))
    assert meta == JobMeta(tenant="acme", admin=True, hardening=HARDENED, sent_at=meta.sent_at)
    assert sent["headers"][PUBLISH_HEADER]["target"] == "busybox"
    # the binding the sealed serializer seals: from the header, else from kwargs["job"]
    headers = {"task": "containers.run", "id": "j1"}
    body: tuple[Any, ...] = ((), sent["kwargs"], {})
    bind_and_redact(body, headers)
    assert body[2][BINDING_KEY] == {"task": "containers.run", "job": "j1", "tenant": "acme"}
    assert SECRET not in json.dumps(headers)
