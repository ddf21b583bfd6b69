"""The brokers the message-path, agent and fault suites run on: ``redis`` (each stack's own
Redis, as always) and ``rabbitmq`` (a private RabbitMQ node for the test session).

The node is Debian's ``rabbitmq-server`` (installed by ``scripts/setup.sh``) run by this module,
never the system service: its own node name, AMQP port, distribution port and epmd port (so it
meets no other Erlang node on the machine), its Erlang cookie, Mnesia and log directories in a
tmp dir, no plugins. Its definitions file makes one user and :data:`VHOSTS` virtual hosts up
front; each stack takes a fresh one (:meth:`RabbitNode.take_vhost`), so no message of one test
reaches another's services (adding a vhost with ``rabbitmqctl`` costs a second or two each).

A test takes the ``broker`` fixture (parametrized ``redis``/``rabbitmq``) and starts its stack with
``**broker.env()``; the ``rabbitmq`` half skips locally without ``rabbitmq-server`` and fails on
CI (like every other real service, :func:`tests.conftest.need`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue

from nube.tools.devstack import Stack, free_port

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
EPMD = shutil.which("epmd") or "/usr/bin/epmd"
BROKERS = ["redis", "rabbitmq"]
#: Virtual hosts made at boot: one per stack a session starts on RabbitMQ.
VHOSTS = 24


def rabbitmq_available() -> bool:
    return (RABBIT_BIN / "rabbitmq-server").exists()


@dataclass
class RabbitNode:
    """A private RabbitMQ node whose AMQP listener is on ``host`` (127.0.0.1, or the mesh's
    bridge address); ``start``/``stop`` it. Its Erlang distribution stays on 127.0.0.1.

    Nodes that share ``epmd_port``, ``cookie`` and ``password`` can form a cluster (see
    :class:`RabbitCluster`)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(12), repr=False)
    user: str = "nube"
    host: str = "127.0.0.1"
    cookie: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    #: Node names this node joins at its first boot (RabbitMQ's classic peer discovery).
    peers: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    taken: int = 0

    @property
    def nodename(self) -> str:
        return f"nube-test-{self.port}@localhost"

    def url(self, vhost: str) -> str:
        return f"amqp://{self.user}:{self.password}@{self.host}:{self.port}/{vhost}"

    def take_vhost(self) -> str:
        """The URL of a virtual host no stack has used."""
        if self.taken >= VHOSTS:
            raise RuntimeError(f"all {VHOSTS} test vhosts are taken; raise tests.brokers.VHOSTS")
        self.taken += 1
        return self.url(f"t{self.taken}")

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return base | {
            "HOME": str(self.workdir / "home"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.workdir / "rabbitmq.pid"),
        }

    def _write_config(self) -> None:
        for sub in ("home", "mnesia", "log"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        cookie = self.workdir / "home" / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)
        (self.workdir / "enabled_plugins").write_text("[].\n")
        vhosts = [f"t{i}" for i in range(1, VHOSTS + 1)]
        definitions = {
            "users": [{"name": self.user, "password": self.password, "tags": ["administrator"]}],
            "vhosts": [{"name": v} for v in vhosts],
            "permissions": [
                {"user": self.user, "vhost": v, "configure": ".*", "write": ".*", "read": ".*"}
                for v in vhosts
            ],
        }
        defs = self.workdir / "definitions.json"
        defs.write_text(json.dumps(definitions))
        defs.chmod(0o600)
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.host}:{self.port}\n"
            f"load_definitions = {defs}\n"
            "loopback_users = none\n"
            # nube's longest operation (900 s) plus its retries' countdowns hold a delivery well
            # under an hour; RabbitMQ's default would close a channel holding one for 30 min.
            "consumer_timeout = 3600000\n"
            "disk_free_limit.absolute = 50MB\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        if self.peers:
            with (self.workdir / "rabbitmq.conf").open("a") as conf:
                conf.write("cluster_formation.peer_discovery_backend = classic_config\n")
                for i, peer in enumerate(self.peers, 1):
                    conf.write(f"cluster_formation.classic_config.nodes.{i} = {peer}\n")

    def start(self, timeout: float = 90) -> None:
        self.launch()
        self.wait_started(timeout)

    def launch(self) -> None:
        """Start ``rabbitmq-server`` (:meth:`wait_started` waits for it)."""
        self._write_config()
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env(),
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_started(self, timeout: float = 90) -> None:
        """Until the node takes an AMQP connection (it fails when the node exits first)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Connection(self.url("t1"), connect_timeout=2) as conn:
                    conn.connect()
                return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"rabbitmq-server did not start:\n{tail}") from None
                time.sleep(0.2)

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl -n <node> args...`` (an Erlang VM of its own: a second or two)."""
        done = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.nodename, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def queues(self, url: str) -> dict[str, dict[str, str]]:
        """The queues of ``url``'s vhost: name → type, durable, auto_delete, messages,
        messages_unacknowledged, consumers (as rabbitmqctl prints them)."""
        vhost = url.rsplit("/", 1)[1]
        columns = [
            "name",
            "type",
            "durable",
            "auto_delete",
            "exclusive",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
        ]
        out = self.ctl("list_queues", "-q", "--no-table-headers", "-p", vhost, *columns)
        rows = [line.split("\t") for line in out.splitlines() if line.strip()]
        return {row[0]: dict(zip(columns[1:], row[1:], strict=True)) for row in rows}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # the node started its own epmd (on its private port): it outlives the node
        subprocess.run(
            [EPMD, "-kill"],
            env={**os.environ, "ERL_EPMD_PORT": str(self.epmd_port)},
            capture_output=True,
            timeout=10,
        )


@dataclass
class RabbitCluster:
    """Three (``size``) RabbitMQ nodes on 127.0.0.1 clustered together: distinct node names,
    AMQP and distribution ports and data directories; one epmd (its own port), one Erlang cookie,
    one user. The first node starts with the definitions; the others, started blank, join it at
    boot (RabbitMQ's classic-config peer discovery), so every quorum queue declared afterwards
    has a replica on each node."""

    workdir: Path
    size: int = 3
    nodes: list[RabbitNode] = field(default_factory=list)

    def start(self, timeout: float = 120) -> None:
        epmd, cookie = free_port(), secrets.token_hex(16)
        password = secrets.token_hex(12)
        self.nodes = [
            RabbitNode(self.workdir / f"r{i}", epmd_port=epmd, cookie=cookie, password=password)
            for i in range(self.size)
        ]
        first, *others = self.nodes
        first.start(timeout)
        for node in others:  # blank nodes: they join the first at boot (classic peer discovery)
            node.peers = [first.nodename]
            node.launch()
        for node in others:
            node.wait_started(timeout)
        running = self.running_nodes(first)
        if sorted(running) != sorted(n.nodename for n in self.nodes):
            raise RuntimeError(f"the cluster did not form: running {running}")

    def running_nodes(self, via: RabbitNode) -> list[str]:
        status = json.loads(via.ctl("cluster_status", "--formatter", "json"))
        return [str(n) for n in status.get("running_nodes", [])]

    def url(self, vhost: str = "t1") -> str:
        """kombu's failover URL: every node's, first to last (a client tries them in turn)."""
        return ";".join(node.url(vhost) for node in self.nodes)

    def node_named(self, nodename: str) -> RabbitNode:
        return next(n for n in self.nodes if n.nodename == nodename)

    def quorum_queues(self, vhost: str = "t1") -> dict[str, dict[str, Any]]:
        """The vhost's quorum queues: name → ``leader`` and ``members`` (node names), asked of
        the first node still running."""
        alive = next(n for n in self.nodes if n.proc is not None and n.proc.poll() is None)
        out = alive.ctl(
            "list_queues", "-p", vhost, "name", "type", "leader", "members", "--formatter", "json"
        )
        return {
            str(q["name"]): {"leader": q.get("leader"), "members": q.get("members")}
            for q in json.loads(out)
            if q.get("type") == "quorum"
        }

    def kill(self, node: RabbitNode) -> None:
        """SIGKILL ``node``'s Erlang VM (its process group): a host's death, no goodbye."""
        assert node.proc is not None
        os.killpg(node.proc.pid, signal.SIGKILL)
        node.proc.wait(10)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


@dataclass
class Broker:
    """One of :data:`BROKERS`; :meth:`env` is what a stack needs to use it."""

    name: str
    node: RabbitNode | None = None

    @property
    def amqp(self) -> bool:
        return self.node is not None

    def env(self) -> dict[str, str]:
        """``{}`` on Redis (the stack's own); ``NUBE_BROKER_URL`` of a fresh vhost on RabbitMQ."""
        return {"NUBE_BROKER_URL": self.node.take_vhost()} if self.node else {}

    def __str__(self) -> str:
        return self.name


@pytest.fixture(scope="session")
def rabbitmq_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """The session's private RabbitMQ node (started on first use)."""
    from tests.conftest import need

    need(rabbitmq_available(), "rabbitmq-server")
    node = RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
    started = time.monotonic()
    node.start()
    print(f"\nrabbitmq-server ready in {time.monotonic() - started:.1f} s")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Broker:
    """``redis`` or ``rabbitmq`` (each test that takes it runs on both)."""
    if request.param == "redis":
        return Broker("redis")
    return Broker("rabbitmq", request.getfixturevalue("rabbitmq_node"))


@pytest.fixture(scope="module", params=BROKERS)
def module_broker(request: pytest.FixtureRequest) -> Broker:
    """:func:`broker` for module-scoped stacks (the module's tests run on each in turn)."""
    if request.param == "redis":
        return Broker("redis")
    return Broker("rabbitmq", request.getfixturevalue("rabbitmq_node"))


def broker_url(stack: Stack) -> str:
    """The URL ``stack``'s services send messages through (with its password: in-process only)."""
    return stack.extra_env.get("NUBE_BROKER_URL") or stack.broker_url


class AmqpTap(threading.Thread):
    """Every message published to or delivered from ``url``'s vhost while it runs, with its
    headers and properties: RabbitMQ's firehose (``rabbitmqctl trace_on``) into a queue of its
    own. What :class:`tests.agent_path.test_sealed_plane.Published` sees on Redis."""

    def __init__(self, node: RabbitNode, url: str) -> None:
        super().__init__(daemon=True)
        self.node, self.url, self.vhost = node, url, url.rsplit("/", 1)[1]
        self.seen: list[bytes] = []
        self.routes: set[str] = set()
        self._halt = threading.Event()
        self._ready = threading.Event()

    def start(self) -> None:
        self.node.ctl("trace_on", "-p", self.vhost)
        super().start()
        if not self._ready.wait(10):
            raise RuntimeError("the firehose queue was not bound")

    def run(self) -> None:
        trace = Exchange("amq.rabbitmq.trace", "topic", passive=True)
        queue = Queue(f"tap-{secrets.token_hex(4)}", trace, "#", auto_delete=True, durable=False)
        with Connection(self.url) as conn, conn.Consumer(queue, callbacks=[self._seen]) as c:
            c.consume()
            self._ready.set()
            while not self._halt.is_set():
                with contextlib.suppress(socket.timeout, TimeoutError):
                    conn.drain_events(timeout=0.2)

    def _seen(self, body: object, message: object) -> None:
        info = getattr(message, "delivery_info", {}) or {}
        self.routes.add(str(info.get("routing_key")))
        headers = json.dumps(getattr(message, "headers", {}), default=str).encode()
        raw = getattr(message, "body", b"")
        self.seen.append(headers + b"\n" + (raw if isinstance(raw, bytes) else str(raw).encode()))
        message.ack()  # type: ignore[attr-defined]

    def stop(self) -> bytes:
        self._halt.set()
        self.join(5)
        self.node.ctl("trace_off", "-p", self.vhost)
        return b"\n".join(self.seen)
