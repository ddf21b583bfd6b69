"""Passive mode (NUBE_AGENT_MODE=passive): signed but readable messages, loudly warned; on
each broker (the relayed message is read where it waits: Redis' ``vms`` list, or RabbitMQ's
``vms`` queue with ``basic.get``, then requeued)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.brokers import Broker, broker_url
from tests.conftest import agent_stack
from tests.redis_replies import one


@pytest.fixture
def passive_stack(tmp_path: Path, broker: Broker) -> Iterator[Stack]:
    with agent_stack(tmp_path, NUBE_AGENT_MODE="passive", **broker.env()) as stack:
        yield stack


def waiting_body(stack: Stack, queue: str) -> str | None:
    """The JSON body (Celery's envelope of the task) of the first message waiting in ``queue``
    (left there); None while there is none."""
    url = broker_url(stack)
    if not url.startswith("amqp"):
        raw = stack.redis().lindex(queue, 0)
        return None if raw is None else str(json.loads(one(raw, str))["body"])
    with Connection(url) as conn:
        channel = conn.channel()
        try:
            got = channel.basic_get(queue)
        except conn.channel_errors:  # not declared yet: the agent has not relayed it
            return None
        if got is None:
            return None
        channel.basic_reject(got.delivery_tag, requeue=True)
        body = got.body if isinstance(got.body, bytes) else str(got.body).encode()
        return base64.b64encode(body).decode()


def test_passive_mode_relays_readable_signed_messages(passive_stack: Stack) -> None:
    secret, _ = TokenStore(passive_stack.redis()).create("debug", [Scope.READ])
    client = NubeClient(passive_stack.api_url, secret)
    job = client.submit("GET", "/v1/vms")
    for _ in range(100):  # no VM worker yet: the relayed message waits, readable, in `vms`
        if (body := waiting_body(passive_stack, "vms")) is not None:
            break
        time.sleep(0.1)
    assert body is not None, "the relayed message never reached the vms queue"
    envelope = json.loads(base64.b64decode(body))
    assert envelope["alg"] == "HS256" and "sig" in envelope  # signed ...
    _, kwargs, _ = json.loads(envelope["body"])  # ... and readable
    assert envelope["task"] == "vms.list" and kwargs["params"] == {}
    passive_stack.start_worker("vms")
    assert client.job(job["id"], wait=60)["status"] == "succeeded"
    log = (passive_stack.workdir / "agent.log").read_text()
    assert "NUBE_AGENT_MODE=passive" in log and "READABLE" in log
