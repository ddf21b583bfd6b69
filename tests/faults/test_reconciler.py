"""The reconciler republishes accepted jobs whose messages were lost, and only those."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nube.jobs import Job, JobStore, new_job_id, now_iso
from nube.sealing.setup import RecordSealer, load_security
from nube.settings import load_settings
from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from nube.wire import RelayRequest
from tests.conftest import agent_stack


@pytest.fixture
def reconciling(tmp_path: Path) -> Iterator[Stack]:
    with agent_stack(tmp_path, NUBE_RECONCILE_SECONDS="1") as stack:
        yield stack


def jobs_of(stack: Stack) -> JobStore:
    security = load_security(load_settings(stack.env()), stack.redis())
    return JobStore(stack.redis(), RecordSealer(security.sealer))


def test_a_job_whose_message_was_lost_is_relayed_again(reconciling: Stack) -> None:
    store = jobs_of(reconciling)
    job = store.create(
        Job(
            id=new_job_id(), operation="vms.list", tenant="rec", queue="vms", submitted_at=now_iso()
        )
    )
    store.keep_request(
        job, RelayRequest(job_id=job.id, operation="vms.list", tenant="rec", params={})
    )  # accepted, but its message never reached Redis
    reconciling.start_worker("vms")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (done := store.get(job.id)).status.terminal:
        time.sleep(0.2)
    events = [e.event for e in done.history]
    assert done.status == "succeeded", events
    assert events.count("republished") == 1 and events.index("republished") < events.index(
        "relayed"
    )
    assert not reconciling.redis().exists(store.request_key(job.id))  # dropped once it ended


def test_a_job_waiting_in_a_queue_is_left_alone(reconciling: Stack) -> None:
    secret, _ = TokenStore(reconciling.redis()).create("rec", [Scope.READ])
    client = NubeClient(reconciling.api_url, secret)
    job = client.submit("GET", "/v1/vms")  # no VM worker: it waits in the `vms` queue
    time.sleep(6)  # several scans, past the quiet period
    waiting = client.job(job["id"])
    assert waiting["status"] == "queued"
    assert "republished" not in [e["event"] for e in waiting["history"]]
    assert reconciling.redis().llen("vms") == 1
    reconciling.start_worker("vms")
    assert client.job(job["id"], wait=30)["status"] == "succeeded"
