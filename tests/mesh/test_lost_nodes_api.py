"""Lost nodes over HTTP, without a mesh: a real Redis, the agent (its node watch) and the API.

A worker of node ``gone`` heartbeats once and disappears (its registry key is deleted, as when
it expires). A job for a VM placed there waits on ``vms.gone``, and the API names the node and
when it was last heard of; once the agent declares it lost (``NUBE_NODE_LOST_SECONDS``), the job
fails ``node_lost`` and ``GET /v1/nodes`` lists the node lost with its VMs (each tenant sees its
own; an admin every tenant's). A job pinned to a lost node says the node is lost. On both
brokers (the node's queue is a quorum queue on RabbitMQ).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from api.app import create_app
from api.services import Services
from nube.jobs import Job, JobEvent, JobStatus, now_iso
from nube.nodes import LAST_SEEN
from nube.placement import Placements
from nube.registry import PREFIX
from nube.settings import load_settings
from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.brokers import Broker
from tests.conftest import agent_stack
from tests.mesh.conftest import wait_until
from tests.mesh.test_node_watch import beat

#: NUBE_NODE_LOST_SECONDS of this stack: long enough to read the job's reason before it fails.
LIMIT = 6


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory, module_broker: Broker) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("lost-nodes")
    env = {"NUBE_NODE_LOST_SECONDS": str(LIMIT), "NUBE_RATE_LIMIT": "0", **module_broker.env()}
    with agent_stack(workdir, **env) as stack:
        yield stack


def client(stack: Stack, *scopes: Scope) -> NubeClient:
    tenant = f"t{secrets.token_hex(4)}"
    secret, _ = TokenStore(stack.redis()).create(tenant, list(scopes or (Scope.READ, Scope.WRITE)))
    made = NubeClient(stack.api_url, secret, timeout=30)
    made.tenant = tenant  # type: ignore[attr-defined]
    return made


def node_gone(r: redis.Redis, node: str) -> None:
    """A worker of ``node`` heartbeats, the agent records it, then the worker is gone."""
    beat(r, node, time.time())
    wait_until(lambda: r.hget(LAST_SEEN, node), 15, f"the agent to hear of {node}")
    for key in r.scan_iter(match=f"{PREFIX}*@{node}"):
        r.delete(key)


def listed(api: NubeClient, node: str) -> dict[str, object]:
    nodes = api.request("GET", "/v1/nodes").json()["nodes"]
    return next(n for n in nodes if n["name"] == node)


def test_a_silent_node_is_named_then_listed_lost_with_its_vms(watched: Stack) -> None:
    r = watched.redis()
    owner, other = client(watched), client(watched)
    admin = client(watched, Scope.ADMIN)
    node = f"gone-{secrets.token_hex(3)}"
    Placements(r).record("vms", owner.tenant, "web", node)  # type: ignore[attr-defined]
    node_gone(r, node)

    job_id = owner.submit("GET", "/v1/vms/web")["id"]

    def pinned_reason() -> str | None:  # once relayed to the node's queue
        waiting = owner.job(job_id).get("waiting")
        return waiting if waiting and f"queue 'vms.{node}'" in waiting else None

    waiting = wait_until(pinned_reason, 10, "the reason of the relayed job")
    assert f"node '{node}' was last heard of at" in waiting, waiting
    assert f"fails node_lost if the node stays silent for NUBE_NODE_LOST_SECONDS ({LIMIT} s)" in (
        waiting
    )

    failed = owner.job(job_id, wait=LIMIT + 20)
    assert failed["status"] == "failed" and failed["error"]["code"] == "node_lost", failed
    seen = listed(owner, node)
    assert seen["state"] == "lost" and seen["services"] == [], seen
    assert seen["vms"] == [{"tenant": owner.tenant, "name": "web"}]  # type: ignore[attr-defined]
    assert str(seen["last_seen"]).endswith("Z") and str(seen["lost_since"]).endswith("Z")
    assert listed(other, node)["vms"] == []  # another tenant's VMs are not shown
    assert {"tenant": owner.tenant, "name": "web"} in listed(admin, node)["vms"]  # type: ignore[attr-defined,operator]


def test_a_job_pinned_to_a_lost_node_says_the_node_is_lost(watched: Stack) -> None:
    r = watched.redis()
    owner = client(watched)
    node = f"gone-{secrets.token_hex(3)}"
    node_gone(r, node)
    wait_until(lambda: node in [n["name"] for n in _lost(owner)], LIMIT + 15, "the node lost")
    # A job just relayed to the lost node's queue (the agent fails it within a scan: it is not
    # in the relay's pending set here, so it stays queued for the test to read).
    svc: Services = create_app(load_settings(watched.env())).extensions["nube"]
    job = Job(
        id=str(uuid.uuid4()),
        operation="vms.info",
        tenant=owner.tenant,  # type: ignore[attr-defined]
        queue=f"vms.{node}",
        target="web",
        submitted_at=now_iso(),
        status=JobStatus.QUEUED,
        history=[JobEvent(event="relayed", at=now_iso())],
    )
    svc.jobs.create(job)
    waiting = owner.job(job.id)["waiting"]
    assert f"node '{node}' is lost (silent since" in waiting and "declared lost at" in waiting
    assert waiting.endswith("the job fails node_lost"), waiting


def _lost(api: NubeClient) -> list[dict[str, object]]:
    nodes = api.request("GET", "/v1/nodes").json()["nodes"]
    return [n for n in nodes if n.get("state") == "lost"]
