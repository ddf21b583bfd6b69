"""TLS on every broker and job-store link, with real servers (issue 11, item 5).

Jobs run end to end (API → agent → worker, fake drivers) against a redis-server that listens on
a TLS port only and a RabbitMQ node with a TLS listener only, both requiring a client
certificate, with the certificates ``nube certs create`` makes. tcpdump captures the servers'
ports meanwhile: the Redis and RabbitMQ passwords, a job's parameter and the queue names never
cross the link in clear, while the same capture of a plaintext stack shows all of them (so the
check can fail). A plaintext client is refused; a client with another deployment's CA stops at
start-up with one line naming the setting.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from kombu import Connection
from typer.testing import CliRunner

from nube.broker import make_celery
from nube.redis_client import connect
from nube.settings import SettingsError, load_settings
from nube.tokens import Scope, TokenStore
from nube.tools.cli_audit import audit_app
from nube.tools.client import NubeClient
from nube.tools.devstack import ROOT, Stack
from tests.brokers import RabbitNode, rabbitmq_available
from tests.conftest import TEST_POLICY, need
from tests.tls.harness import Capture, Certs, TlsRabbitNode, amqp_ssl

#: The queues every run uses; their names are on the wire in every plaintext message.
QUEUE_NAMES = (b"nube.ingress", b"containers")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs.make(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Another deployment's CA and certificates."""
    return Certs.make(tmp_path_factory.mktemp("other-certs"))


def _fake_env(workdir: Path, **env: str) -> dict[str, str]:
    (workdir / "policy.yaml").write_text(TEST_POLICY)
    return {
        "NUBE_POLICY_FILE": str(workdir / "policy.yaml"),
        "NUBE_CONTAINER_DRIVER": "fake",
        "NUBE_DOCKER_HOST": "unix:///nonexistent/docker.sock",
        "NUBE_RECONCILE_SECONDS": "2",  # the reconciler runs (and talks) during the capture
        **env,
    }


def _need_tools() -> None:
    need(shutil.which("redis-server") is not None, "redis-server")
    need(shutil.which("tcpdump") is not None, "tcpdump")


def run_captured(
    stack: Stack, ports: list[int], flower: bool = False
) -> tuple[bytes, dict[str, bytes]]:
    """Start ``stack`` (agent, container worker, API) with tcpdump on ``ports`` from before the
    services connect; make a container named by a fresh marker and inspect it (the marker is
    the parameter of both jobs, and the target in the second's record), as a tenant named by
    another; the capture and the markers (the job records keep target and tenant readable in
    Redis: only TLS hides them on the link)."""
    marker = f"marker{secrets.token_hex(6)}"
    tenant = f"tenant{secrets.token_hex(6)}"
    stack.start_redis()
    capture = Capture(stack.workdir / "capture.pcap", ports)
    try:
        stack.start_agent()
        stack.start_worker("containers", concurrency=1)  # the fake's state is per process
        stack.start_api()
        stack.wait_ready(["nube.ingress", "containers"], timeout=90)
        if flower:
            stack.start_flower()
            _wait_for_log(stack.workdir / "flower.log", "Connected to")  # its event consumer
        secret, _ = TokenStore(stack.redis()).create(tenant, [Scope.READ, Scope.WRITE])
        client = NubeClient(stack.api_url, secret)
        body = {"image": "busybox:latest", "name": marker, "command": ["sleep", "60"]}
        made = client.run("POST", "/v1/containers", {**body, "detach": True})
        listed = client.run("GET", "/v1/containers")["containers"]
        assert [c["id"] for c in listed] == [made["id"]]
        inspected = client.run("GET", f"/v1/containers/{marker}")
        assert inspected["id"] == made["id"]  # the jobs really ran, on the marker
        if flower:  # Flower took the jobs' events from the broker, over the same TLS
            _wait_for_flower_task(stack, marker)
        time.sleep(2.5)  # a reconciler pass, over the same links
    finally:
        data = capture.stop()
    for log in stack.workdir.glob("*.log"):  # every service's links worked: nothing failed
        text = log.read_text(errors="replace")
        assert '"level": "ERROR"' not in text and "Traceback" not in text, f"{log.name}: {text}"
    return data, {"marker": marker.encode(), "tenant": tenant.encode()}


def _wait_for_log(path: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{path.name} never said {text!r}"
        time.sleep(0.2)


def _wait_for_flower_task(stack: Stack, text: str, timeout: float = 20) -> None:
    """Until Flower's task list (its events, from the broker) has ``text``."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = requests.get(
            stack.flower_url + "/api/tasks", auth=("admin", stack.flower_password), timeout=10
        )
        if tasks.ok and text in tasks.text:
            return
        assert time.monotonic() < deadline, f"Flower never showed {text}: {tasks.text}"
        time.sleep(0.5)


def _leaks(capture: bytes, secrets_: dict[str, bytes]) -> list[str]:
    return [name for name, value in secrets_.items() if value in capture]


@pytest.mark.parametrize("link", ["redis", "rabbitmq"])
def test_plaintext_capture_shows_what_tls_hides(
    tmp_path: Path, link: str, request: pytest.FixtureRequest
) -> None:
    """The control: without TLS the capture of the Redis link (Redis as the broker), or of the
    RabbitMQ link alone (RabbitMQ as the broker), holds that server's password, the markers
    and the queue names, so the TLS tests' absence checks would see them."""
    _need_tools()
    env = _fake_env(tmp_path)
    if link == "rabbitmq":
        node: RabbitNode = request.getfixturevalue("rabbitmq_node")  # plaintext, the session's
        env["NUBE_BROKER_URL"] = node.take_vhost()
    stack = Stack(workdir=tmp_path, extra_env=env)
    try:
        ports = [node.port] if link == "rabbitmq" else [stack.redis_port]
        data, markers = run_captured(stack, ports)
    finally:
        stack.stop_all()
    password = node.password if link == "rabbitmq" else stack.redis_password
    wanted = {"password": password.encode(), **markers, **{q.decode(): q for q in QUEUE_NAMES}}
    assert sorted(_leaks(data, wanted)) == sorted(wanted)


def test_a_job_over_tls_redis_leaks_nothing(tmp_path: Path, certs: Certs) -> None:
    _need_tools()
    stack = Stack(workdir=tmp_path, extra_env=_fake_env(tmp_path), tls_dir=certs.dir)
    try:
        data, markers = run_captured(stack, [stack.redis_port], flower=True)
        logs = {p.name: p.read_text() for p in tmp_path.glob("*.log")}
        # an operator's `nube audit verify --redis-url rediss://…` reaches it with the TLS files
        verified = CliRunner().invoke(
            audit_app, ["verify", "--redis-url", stack.broker_url], env=stack.tls_env()
        )
    finally:
        stack.stop_all()
    assert verified.exit_code == 0, verified.output
    assert re.search(r"redis: ok, [1-9]\d* records, chain intact", verified.output), verified.output
    assert len(data) > 20_000, "the capture saw the stack's traffic"
    assert b"\x16\x03\x01" in data, "a TLS handshake record is in the capture"
    secrets_ = {
        "redis password": stack.redis_password.encode(),
        **markers,
        **{q.decode(): q for q in QUEUE_NAMES},
    }
    assert _leaks(data, secrets_) == []
    assert not any("insecure" in log.lower() for log in logs.values())


def test_plaintext_and_unknown_clients_are_refused(
    tmp_path: Path, certs: Certs, other_certs: Certs
) -> None:
    _need_tools()
    stack = Stack(workdir=tmp_path, tls_dir=certs.dir)
    try:
        stack.start_redis()
        assert stack.redis().ping()
        plain = redis.Redis(port=stack.redis_port, password=stack.redis_password)
        with pytest.raises(redis.ConnectionError):
            plain.ping()
        anonymous = redis.Redis(
            port=stack.redis_port,
            password=stack.redis_password,
            ssl=True,
            ssl_ca_certs=str(certs.ca_crt),
        )
        with pytest.raises(redis.ConnectionError):  # no client certificate
            anonymous.ping()
        stranger = redis.Redis(
            port=stack.redis_port,
            password=stack.redis_password,
            ssl=True,
            ssl_ca_certs=str(certs.ca_crt),
            ssl_certfile=str(other_certs.client_crt),
            ssl_keyfile=str(other_certs.client_key),
        )
        with pytest.raises(redis.ConnectionError):  # a client certificate of another CA
            stranger.ping()
        # a service with another deployment's CA stops at once, with one line
        env = stack.env(NUBE_TLS_CA_FILE=str(other_certs.ca_crt))
        done = subprocess.run(
            [sys.executable, "-m", "workers", "containers"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert lines[0].startswith("nube: invalid setting NUBE_TLS_CA_FILE: the certificate of")
        assert "not trusted" in lines[0]
        # ... and without a client certificate, naming that setting
        env = {k: v for k, v in stack.env().items() if k != "NUBE_TLS_CERT_FILE"}
        env.pop("NUBE_TLS_KEY_FILE")
        with pytest.raises(SettingsError) as refused:
            connect(load_settings(env))
        assert str(refused.value).startswith("NUBE_TLS_CERT_FILE: 127.0.0.1:")
        assert "requires a client certificate" in str(refused.value)
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def tls_rabbit(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[TlsRabbitNode]:
    need(rabbitmq_available(), "rabbitmq-server")
    node = TlsRabbitNode(tmp_path_factory.mktemp("rabbitmq-tls"), certs=certs)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def test_a_job_over_tls_rabbitmq_leaks_nothing(
    tmp_path: Path, certs: Certs, tls_rabbit: TlsRabbitNode
) -> None:
    _need_tools()
    url = tls_rabbit.take_vhost()
    stack = Stack(
        workdir=tmp_path,
        extra_env=_fake_env(tmp_path, NUBE_BROKER_URL=url),
        tls_dir=certs.dir,
    )
    try:
        data, markers = run_captured(stack, [stack.redis_port, tls_rabbit.port])
    finally:
        stack.stop_all()
    queues = tls_rabbit.queues(url)
    assert {"nube.ingress", "containers"} <= set(queues), "the messages went through RabbitMQ"
    assert len(data) > 20_000
    secrets_ = {
        "rabbitmq password": tls_rabbit.password.encode(),
        "redis password": stack.redis_password.encode(),
        **markers,
        **{q.decode(): q for q in QUEUE_NAMES},
    }
    assert _leaks(data, secrets_) == []


def test_rabbitmq_refuses_plaintext_and_a_wrong_ca_is_one_line(
    certs: Certs, other_certs: Certs, tls_rabbit: TlsRabbitNode
) -> None:
    url = tls_rabbit.url("t1")
    with Connection(url, ssl=amqp_ssl(certs), connect_timeout=5) as good:
        good.connect()
    plain = url.replace("amqps://", "amqp://")
    with pytest.raises(Exception), Connection(plain, connect_timeout=5) as conn:  # noqa: B017
        conn.connect()
    settings = load_settings({"NUBE_BROKER_URL": url, **other_certs.env()})
    with pytest.raises(SettingsError) as refused:
        make_celery(settings, "tls-check")
    message = str(refused.value)
    assert message.startswith("NUBE_TLS_CA_FILE: the certificate of 127.0.0.1:")
    assert "NUBE_BROKER_URL" in message and "\n" not in message
    anonymous = load_settings({"NUBE_BROKER_URL": url, "NUBE_TLS_CA_FILE": str(certs.ca_crt)})
    with pytest.raises(SettingsError) as refused:
        make_celery(anonymous, "tls-check")
    assert "requires a client certificate" in str(refused.value)
