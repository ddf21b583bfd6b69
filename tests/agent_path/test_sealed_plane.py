"""The whole plane sealed (issue 8; rows 20, 24-26 of reliability.md), black-box on a real stack.

A private stack (Redis, agent, API, Flower on nube's app, a container worker whose engine is
unreachable and then a good one) runs jobs that succeed, fail with a marker in the failing path,
and retry, while a client subscribed to every pub/sub channel (``PSUBSCRIBE *``) records all
that crosses Redis (and, on RabbitMQ, its firehose records every message published and
delivered). Then: no marker in that traffic, in any key, the AOF, the logs or Flower; Flower
lists the workers' registered tasks; plaintext broadcasts are refused and audited once per
receiver; sealed copies under another task id or name are refused and audited, and the original
still runs; an idle stack writes no audit record. The module runs on each broker.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import amqp  # type: ignore[import-untyped]
import pytest
import redis
import requests
from celery import Celery
from kombu import Connection

from nube.broker import INGRESS_QUEUE, relay_task_id
from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.brokers import AmqpTap, Broker, broker_url
from tests.conftest import (
    broken_engine_stack,
    docker_available,
    need,
    remove_docker_resources,
)
from tests.leaks import all_key_dumps, aof_files, files_holding
from tests.redis_replies import entries, one

IMAGE = "busybox:latest"
BROKEN = "worker-containers-broken"


class Published(threading.Thread):
    """Everything published on any channel (``PSUBSCRIBE *``) until stopped."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.pubsub = redis.Redis(port=stack.redis_port, password=stack.redis_password).pubsub()
        self.pubsub.psubscribe("*")
        self.pubsub.get_message(timeout=2)  # the subscription's confirmation
        self.seen: list[bytes] = []
        self.channels: set[bytes] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message and message["type"] == "pmessage":
                self.channels.add(message["channel"])
                self.seen.append(message["channel"] + b"\n" + message["data"])

    def stop(self) -> bytes:
        self._halt.set()
        self.join(5)
        self.pubsub.close()
        return b"\n".join(self.seen)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, module_broker: Broker) -> Iterator[Stack]:
    need(docker_available(), "the Docker engine")
    stack = broken_engine_stack(tmp_path_factory.mktemp("plane"), BROKEN, **module_broker.env())
    try:
        stack.start_flower()
        stack.wait_ready(["nube.ingress", "containers"], timeout=90)
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def owner(plane: Stack) -> Iterator[NubeClient]:
    tenant = f"t{secrets.token_hex(4)}"
    secret, _ = TokenStore(plane.redis()).create(tenant, [Scope.READ, Scope.WRITE])
    yield NubeClient(plane.api_url, secret)
    remove_docker_resources(tenant)


def _flower(stack: Stack, path: str) -> requests.Response:
    return requests.get(stack.flower_url + path, auth=("admin", stack.flower_password), timeout=30)


def _refusals(stack: Stack) -> list[dict[str, Any]]:
    records = []
    for _, fields in entries(stack.redis().xrange("nube:audit"), str):
        record = json.loads(next(iter(fields.values())))
        if record.get("outcome") == "refused":
            records.append(record)
    return records


def _log_sizes(stack: Stack) -> dict[Path, int]:
    return {p: p.stat().st_size for p in stack.workdir.glob("*.log")}


def _logged_since(stack: Stack, sizes: dict[Path, int]) -> str:
    text = []
    for path in stack.workdir.glob("*.log"):
        with path.open("rb") as f:
            f.seek(sizes.get(path, 0))
            text.append(f.read().decode(errors="replace"))
    return "".join(text)


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_no_marker_crosses_or_rests_in_the_broker(
    plane: Stack, owner: NubeClient, module_broker: Broker
) -> None:
    env_marker, cmd_marker, path_marker = (f"M{secrets.token_hex(8)}" for _ in range(3))
    body = {
        "image": IMAGE,
        "command": ["sh", "-c", f'echo "$SECRET" # {cmd_marker}'],
        "env": {"SECRET": env_marker},
    }
    published = Published(plane)
    published.start()
    tap = AmqpTap(module_broker.node, broker_url(plane)) if module_broker.node else None
    if tap:
        tap.start()
    # 1. retried: the only worker cannot reach its engine, so the job retries...
    retried = owner.submit("POST", "/v1/containers", body)
    _wait(
        lambda: "retrying" in [e["event"] for e in owner.job(retried["id"])["history"]],
        60,
        "a retry",
    )
    # ...until the broken worker is gone (its pending retry goes back to the queue) and a good
    # one serves the queue
    plane.stop(BROKEN)
    plane.start_worker("containers")
    succeeded = owner.submit("POST", "/v1/containers", body)
    failed = owner.submit(
        "POST", "/v1/containers", {"image": IMAGE, "command": [f"/{path_marker}"]}
    )
    done = {j["id"]: owner.job(j["id"], wait=90) for j in (retried, succeeded, failed)}
    time.sleep(1)  # the last events
    traffic = published.stop() + (tap.stop() if tap else b"")

    assert done[retried["id"]]["status"] == "succeeded", done[retried["id"]]
    assert done[retried["id"]]["attempts"] >= 2
    assert done[succeeded["id"]]["result"]["stdout"].strip() == env_marker
    assert done[failed["id"]]["status"] == "failed"
    assert path_marker in json.dumps(done[failed["id"]]["error"])  # the owner reads it
    # the events were there to be read
    routes = tap.routes if tap else {c.decode() for c in published.channels}
    assert any("celeryev" in route for route in routes), routes
    delayed = [  # a retry's countdown has full jitter: 0 s is published at once, not delayed
        e["detail"]
        for e in done[retried["id"]]["history"]
        if e["event"] == "retrying" and not str(e["detail"]).endswith(" in 0 s")
    ]
    if tap and delayed:
        assert any(r.startswith("publish.celery_delayed") for r in routes), "delayed retries"
    tasks = _flower(plane, "/api/tasks").text
    assert retried["id"] in tasks  # Flower shows the task...
    for marker in (env_marker, cmd_marker, path_marker):
        assert marker.encode() not in traffic, f"{marker} published on a channel"
        assert marker.encode() not in all_key_dumps(plane), f"{marker} in a Redis key"
        assert not [p for p in aof_files(plane) if marker.encode() in p.read_bytes()]
        assert not files_holding(plane.workdir, marker, "*.log"), f"{marker} in a log"
        assert marker not in tasks  # ...but none of its arguments or error text


def test_flower_lists_the_workers_registered_tasks(plane: Stack) -> None:
    def listed() -> bool:
        workers = _flower(plane, "/api/workers?refresh=1").json()
        registered = [t for w in workers.values() for t in w.get("registered", [])]
        return "containers.run" in registered and "agent.relay" in registered

    _wait(listed, 30, "Flower listing the registered tasks")


def test_flower_controls_reach_the_workers(plane: Stack) -> None:
    workers = _flower(plane, "/api/workers?refresh=1").json()
    # the live container worker (Flower also remembers the broken one, stopped earlier)
    log = (plane.workdir / "worker-containers.log").read_text()
    name = next(w for w in workers if w.startswith("containers.") and f"{w} ready." in log)
    before = len(workers[name]["stats"]["pool"]["processes"])
    grown = requests.post(
        f"{plane.flower_url}/api/worker/pool/grow/{name}?n=1",
        auth=("admin", plane.flower_password),
        timeout=30,
    )
    assert grown.status_code == 200, grown.text

    def processes() -> int:
        stats = _flower(plane, "/api/workers?refresh=1").json()[name]["stats"]
        return len(stats["pool"]["processes"])

    _wait(lambda: processes() == before + 1, 20, "the pool grown by Flower")


def test_a_queue_cancelled_through_flower_reads_unserved(plane: Stack) -> None:
    """``cancel_consumer`` (Flower's queue control) stops the worker taking the queue, and
    /readyz says so within a heartbeat; ``add_consumer`` makes it served again."""
    workers = _flower(plane, "/api/workers?refresh=1").json()
    log = (plane.workdir / "worker-containers.log").read_text()
    name = next(w for w in workers if w.startswith("containers.") and f"{w} ready." in log)

    def served() -> bool:
        ready = requests.get(plane.api_url + "/readyz", timeout=10).json()
        return bool(ready["queues"]["containers"])

    def control(action: str) -> None:
        answer = requests.post(
            f"{plane.flower_url}/api/worker/queue/{action}/{name}?queue=containers",
            auth=("admin", plane.flower_password),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    assert served()
    control("cancel-consumer")
    try:
        _wait(lambda: not served(), 20, "/readyz to read the containers queue unserved")
    finally:
        control("add-consumer")
    _wait(served, 20, "/readyz to read the containers queue served again")
    plane.wait_ready(["nube.ingress", "containers"], timeout=10)


def test_plaintext_broadcasts_are_refused_once_per_receiver(plane: Stack) -> None:
    before, logs_before = len(_refusals(plane)), _log_sizes(plane)
    plain = Celery("outsider", broker=broker_url(plane), set_as_current=False)
    for _ in range(5):
        plain.control.broadcast("shutdown")
        plain.control.broadcast("pool_restart")
    time.sleep(3)
    assert all(p.poll() is None for p in plane.procs.values()), "a process exited"
    plane.wait_ready(["nube.ingress", "containers"], timeout=10)
    new = _refusals(plane)[before:]
    control = [r for r in new if r["detail"].get("channel") == "control"]
    # the agent and the container worker each refuse, and audit once for this sender and reason
    assert len(control) == 2, control
    assert {r["detail"]["reason"] for r in control} == {"not_sealed"}
    assert sum(r["detail"]["suppressed"] for r in control) == 0  # the rest comes in the next
    assert "Traceback" not in _logged_since(plane, logs_before)  # one line per refusal


class RedisIngress:
    """The ingress queue as Redis holds it: a list of JSON envelopes."""

    def __init__(self, stack: Stack) -> None:
        self.raw = redis.Redis(port=stack.redis_port, password=stack.redis_password)
        self.original = b""

    def take_original(self) -> None:
        popped = self.raw.lpop(INGRESS_QUEUE)
        assert popped is not None
        self.original = one(popped, bytes)

    def put_copy(self, field: str, value: str) -> None:
        copy = json.loads(self.original)
        copy["headers"][field] = value
        copy["properties"]["delivery_tag"] = secrets.token_hex(8)
        self.raw.lpush(INGRESS_QUEUE, json.dumps(copy))

    def put_original(self) -> None:
        self.raw.lpush(INGRESS_QUEUE, self.original)


class AmqpIngress:
    """The ingress queue on RabbitMQ: the message taken with ``basic.get`` (and acknowledged),
    its copies and itself published again with the same body and properties."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.body, self.properties = b"", dict[str, Any]()

    def take_original(self) -> None:
        with Connection(self.url) as conn:
            channel = conn.channel()
            got = channel.basic_get(INGRESS_QUEUE)
            assert got is not None
            self.body, self.properties = got.body, dict(got.properties)
            channel.basic_ack(got.delivery_tag)

    def _publish(self, properties: dict[str, Any]) -> None:
        with Connection(self.url) as conn:
            message = amqp.Message(self.body, **properties)
            conn.channel().basic_publish(message, INGRESS_QUEUE, INGRESS_QUEUE)

    def put_copy(self, field: str, value: str) -> None:
        headers = dict(self.properties["application_headers"]) | {field: value}
        self._publish(self.properties | {"application_headers": headers})

    def put_original(self) -> None:
        self._publish(self.properties)


def test_sealed_copies_are_refused_audited_and_the_original_runs(
    plane: Stack, owner: NubeClient, module_broker: Broker
) -> None:
    plane.stop("agent")
    job = owner.submit("POST", "/v1/containers", {"image": IMAGE, "command": ["true"]})
    ingress = AmqpIngress(broker_url(plane)) if module_broker.amqp else RedisIngress(plane)
    ingress.take_original()
    other = "00000000-0000-4000-8000-000000000000"
    for field, value in (("id", relay_task_id(other)), ("task", "containers.run")):
        ingress.put_copy(field, value)
    before = len(_refusals(plane))
    plane.start_agent()
    _wait(lambda: len(_refusals(plane)) >= before + 2, 60, "the copies' refusals")
    ingress.put_original()  # the original, after its copies, still runs
    assert owner.job(job["id"], wait=60)["status"] == "succeeded"
    reasons = sorted(r["detail"]["reason"] for r in _refusals(plane)[before:])
    assert reasons == ["misbound_task_id", "misbound_task_name"]


def test_an_idle_stack_writes_no_audit_record(plane: Stack) -> None:
    # first let the earlier tests' last outcomes land (events may trail on a loaded machine)
    length = plane.redis().xlen("nube:audit")
    for _ in range(30):
        time.sleep(2)
        settled, length = length, plane.redis().xlen("nube:audit")
        if settled == length:
            break
    time.sleep(15)  # Flower broadcasts enable_events every 5 s, sealed
    records = entries(plane.redis().xrange("nube:audit"), str)
    assert len(records) == length, records[length:]
