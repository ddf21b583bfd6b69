"""``/readyz`` checks RabbitMQ when it is the broker: a connection to a node of
``NUBE_BROKER_URL`` within a short timeout; ``503`` (naming the node by host and port, never the
password) when none takes one. On Redis the answer has no ``broker`` field (Redis is checked)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from nube.tools.devstack import Stack, free_port
from tests.brokers import RabbitNode, rabbitmq_available
from tests.conftest import need


@pytest.fixture
def rabbit(tmp_path: Path) -> Iterator[RabbitNode]:
    need(rabbitmq_available(), "rabbitmq-server")
    node = RabbitNode(tmp_path / "rabbitmq")
    node.start()
    try:
        yield node
    finally:
        node.stop()


def api_only(workdir: Path, **env: str) -> Stack:
    need(shutil.which("redis-server") is not None, "redis-server")
    stack = Stack(workdir=workdir, extra_env=env)
    stack.start_redis()
    stack.start_api()
    return stack


def test_readyz_follows_the_rabbitmq_node(rabbit: RabbitNode, tmp_path: Path) -> None:
    dead = f"amqp://nube:{rabbit.password}@127.0.0.1:{free_port()}/t1"
    stack = api_only(tmp_path / "stack", NUBE_BROKER_URL=f"{dead};{rabbit.url('t1')}")
    try:
        # the first node of the failover list refuses; the second takes the connection
        body = requests.get(stack.api_url + "/readyz", timeout=10).json()
        assert body["status"] == "ready" and body["broker"] == "ok", body
        assert "nube.ingress" in body["queues"]

        rabbit.stop()
        started = time.monotonic()
        answer = requests.get(stack.api_url + "/readyz", timeout=10)
        took = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["status"] == "unavailable" and body["redis"] == "ok", body
        assert body["broker"].startswith(f"unreachable: 127.0.0.1:{rabbit.port}: "), body
        assert rabbit.password not in answer.text
        assert took < 5, f"/readyz took {took:.1f} s"
    finally:
        stack.stop_all()


def test_readyz_on_redis_has_no_broker_field(tmp_path: Path) -> None:
    stack = api_only(tmp_path / "stack")
    try:
        body = requests.get(stack.api_url + "/readyz", timeout=10).json()
        assert body["status"] == "ready" and "broker" not in body, body
    finally:
        stack.stop_all()
